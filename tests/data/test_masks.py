"""Tests for cogenerate.data.masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cogenerate.data.masks import (
    OPERATORS,
    centre_box,
    make_operator,
    mask_from_file,
    multi_blocks,
    random_box,
    salt_pepper,
    top_half,
)
from cogenerate.operators import Downsample, Mask


def _rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _box_extent(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Heights and widths of the hidden box of each ``(N, 1, H, W)`` mask."""
    hidden = mask[:, 0] == 0
    return hidden.any(2).sum(1), hidden.any(1).sum(1)


def _is_binary(mask: torch.Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


@pytest.mark.parametrize("size, lo, hi", [(28, 7, 13), (32, 8, 15), (64, 15, 30), (128, 30, 60)])
def test_random_box_sides_scale_with_size(size: int, lo: int, hi: int) -> None:
    mask = random_box(1000, size, rng=_rng())
    assert mask.shape == (1000, 1, size, size) and mask.dtype == torch.float32 and _is_binary(mask)
    heights, widths = _box_extent(mask)
    for sides in (heights, widths):
        assert sides.min() == lo and sides.max() == hi  # every integer side in range is drawn
        assert len(torch.unique(sides)) == hi - lo + 1
    # exactly one rectangle: hidden count = height * width
    assert torch.equal((mask == 0).flatten(1).sum(1), heights * widths)
    # the box reaches every border of the image in some masks (positions cover the image)
    hidden = mask[:, 0] == 0
    assert hidden[:, 0].any() and hidden[:, -1].any() and hidden[:, :, 0].any() and hidden[:, :, -1].any()


def test_random_box_determinism_and_explicit_sides() -> None:
    a = random_box(16, 28, rng=_rng(3))
    b = random_box(16, 28, rng=_rng(3))
    c = random_box(16, 28, rng=_rng(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    fixed = random_box(50, (20, 30), rng=_rng(), min_side=5, max_side=5)
    heights, widths = _box_extent(fixed)
    assert fixed.shape == (50, 1, 20, 30)
    assert torch.all(heights == 5) and torch.all(widths == 5)
    with pytest.raises(ValueError):
        random_box(1, 28, rng=_rng(), min_side=10, max_side=5)


def test_centre_box_and_top_half() -> None:
    mask = centre_box(3, 28)
    assert mask.shape == (3, 1, 28, 28)
    assert torch.all(mask[:, :, 7:21, 7:21] == 0)
    assert (mask == 0).sum() == 3 * 14 * 14
    assert (centre_box(1, 28, fraction=0.0) == 1).all()
    top = top_half(2, 28)
    assert torch.all(top[:, :, :14] == 0) and torch.all(top[:, :, 14:] == 1)


@pytest.mark.parametrize("size, side", [(28, 4), (32, 5), (64, 10)])
def test_multi_blocks(size: int, side: int) -> None:
    mask = multi_blocks(500, size, rng=_rng(1))
    assert mask.shape == (500, 1, size, size) and _is_binary(mask)
    hidden = (mask == 0).flatten(1).sum(1)
    assert hidden.max() <= 10 * side * side  # blocks may overlap
    assert hidden.max() == 10 * side * side  # ... but often do not
    assert hidden.min() >= side * side
    one = multi_blocks(200, size, rng=_rng(2), blocks=1)
    assert torch.all((one == 0).flatten(1).sum(1) == side * side)
    assert torch.equal(multi_blocks(4, size, rng=_rng(5)), multi_blocks(4, size, rng=_rng(5)))


@pytest.mark.parametrize("fraction", [0.5, 0.7])
def test_salt_pepper_hides_the_fraction(fraction: float) -> None:
    mask = salt_pepper(64, 28, rng=_rng(2), fraction=fraction)
    assert mask.shape == (64, 1, 28, 28) and _is_binary(mask)
    hidden = (mask == 0).flatten(1).sum(1)
    assert torch.all(hidden == round(fraction * 28 * 28))
    # pixels are hidden uniformly: every position is hidden in about `fraction` of masks
    big = salt_pepper(4000, 8, rng=_rng(3), fraction=fraction)
    per_pixel = (big == 0).float().mean(0)
    assert torch.allclose(per_pixel, torch.full_like(per_pixel, fraction), atol=0.04)
    assert torch.equal(salt_pepper(2, 28, rng=_rng(9), fraction=0.5), salt_pepper(2, 28, rng=_rng(9), fraction=0.5))


def test_mask_from_file(tmp_path: Path) -> None:
    pixels = np.full((40, 60), 255, dtype=np.uint8)  # W=60, H=40
    pixels[10:30, 20:40] = 0  # a black square in the centre
    pixels[0, 0] = 127  # below half intensity: hidden
    pixels[0, 1] = 128  # at half intensity: observed
    Image.fromarray(pixels, mode="L").save(tmp_path / "mask.png")
    full = mask_from_file(tmp_path / "mask.png")
    assert full.shape == (1, 1, 40, 60)
    assert full[0, 0, 0, 0] == 0 and full[0, 0, 0, 1] == 1
    assert (full == 0).sum() == 20 * 20 + 1
    small = mask_from_file(tmp_path / "mask.png", 20)  # centre crop 40x40, then halve
    assert small.shape == (1, 1, 20, 20) and _is_binary(small)
    assert torch.all(small[0, 0, 5:15, 5:15] == 0) and small[0, 0, 0:4].eq(1).all()
    assert (small == 0).sum() == 10 * 10
    Image.fromarray(np.stack([pixels] * 3, -1), mode="RGB").save(tmp_path / "rgb.png")
    assert torch.equal(mask_from_file(tmp_path / "rgb.png"), full)


def test_mask_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        mask_from_file(tmp_path / "none.png")
    (tmp_path / "junk.png").write_text("junk")
    with pytest.raises(ValueError, match="cannot read mask"):
        mask_from_file(tmp_path / "junk.png")
    Image.new("L", (8, 8), color=255).save(tmp_path / "white.png")
    with pytest.raises(ValueError, match="hides no pixel"):
        mask_from_file(tmp_path / "white.png")


def test_make_operator_specs(tmp_path: Path) -> None:
    for spec in ("box", "centre", "center", "top-half", "mb10", "p.5", "p.7", "MB3", "p.25"):
        op = make_operator(spec, n=5, size=28, rng=_rng())
        assert isinstance(op, Mask) and op.mask.shape == (5, 1, 28, 28)
        op.validate(5, (1, 28, 28))
    assert torch.equal(make_operator("box", n=5, size=28, rng=_rng(7)).mask, random_box(5, 28, rng=_rng(7)))
    hidden = (make_operator("p.25", n=2, size=28, rng=_rng()).mask == 0).flatten(1).sum(1)
    assert torch.all(hidden == 196)
    for spec, factor in (("sr4", 4), ("sr2", 2)):
        op = make_operator(spec, n=5, size=32, rng=_rng())
        assert isinstance(op, Downsample) and op.factor == factor
    pixels = np.full((28, 28), 255, dtype=np.uint8)
    pixels[:5] = 0
    Image.fromarray(pixels, mode="L").save(tmp_path / "m.png")
    op = make_operator(f"file:{tmp_path / 'm.png'}", n=5, size=28, rng=_rng())
    assert isinstance(op, Mask) and op.mask.shape == (1, 1, 28, 28) and (op.mask == 0).sum() == 5 * 28
    assert "box" in OPERATORS and "sr4" in OPERATORS


def test_make_operator_errors() -> None:
    with pytest.raises(ValueError, match="valid specs: box, centre, top-half"):
        make_operator("blur", n=1, size=28, rng=_rng())
    with pytest.raises(ValueError, match="not divisible"):
        make_operator("sr3", n=1, size=28, rng=_rng())
