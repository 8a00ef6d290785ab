"""Tests for cogenerate.data.inputs: the one image to complete, at the model's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cogenerate.data.inputs import check_mask_size, image_from_dataset, image_from_file


def test_image_from_file_fits_the_model_and_says_how(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    given = image_from_file(tmp_path / "photo.png", side=28, channels=1)
    assert given.image.shape == (1, 28, 28) and -1 <= given.image.min() and given.image.max() <= 1
    assert given.size == (50, 40) and given.source["original_size"] == [50, 40]
    assert given.changes == ("resized it from 50×40 to 28×28 (centre-cropped to a square)", "converted it to grey")
    Image.fromarray(rgb[:28, :28]).save(tmp_path / "fits.png")
    assert image_from_file(tmp_path / "fits.png", side=28, channels=3).changes == ()
    with pytest.raises(ValueError, match="does not exist"):
        image_from_file(tmp_path / "nope.png", side=28, channels=1)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        image_from_file(tmp_path / "broken.png", side=28, channels=1)


def test_image_from_dataset_checks_the_index() -> None:
    given = image_from_dataset("digits", 3, split="test", side=16, channels=3)
    assert given.image.shape == (3, 16, 16)
    assert given.source == {"dataset": "digits", "split": "test", "index": 3} and given.size == (16, 16)
    with pytest.raises(ValueError, match="out of range.*179 images"):
        image_from_dataset("digits", 179, split="test", side=8, channels=1)


def test_check_mask_size(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "photo-mask.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "model-mask.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    check_mask_size("centre", (50, 40), 28)  # not a file: nothing to check
    check_mask_size(f"file:{tmp_path / 'photo-mask.png'}", (50, 40), 28)
    check_mask_size(f"file:{tmp_path / 'model-mask.png'}", (50, 40), 28)
    with pytest.raises(ValueError, match="10×10 pixels but the image is 50×40.*50×40 or 28×28"):
        check_mask_size(f"file:{tmp_path / 'small.png'}", (50, 40), 28)
    with pytest.raises(ValueError, match="mask file .* does not exist"):
        check_mask_size(f"file:{tmp_path / 'missing.png'}", (28, 28), 28)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read mask image"):
        check_mask_size(f"file:{tmp_path / 'broken.png'}", (28, 28), 28)
