"""Image masks and the observation operators named by short specs.

A mask is a float tensor of shape ``(N, 1, H, W)`` (it broadcasts over channels) with
**1 = observed, 0 = hidden**, the convention of the inpainting lecture
(``x_reconstructed = M ⊙ x + (1 − M) ⊙ G(z)``). Random masks take an explicit
``rng: torch.Generator`` and are created on ``rng.device``; the same seed gives the same masks.

``size`` is the image side ``S`` (square images) or a pair ``(H, W)``.

The occlusion patterns:

- :func:`random_box` — Fang & Schwing (2019, §3.2): "We randomly mask blocks of width and
  height ranging from 30 to 60" on 128×128 CelebA, scaled here to the image size.
- :func:`multi_blocks` (MB10), :func:`salt_pepper` (P.5, P.7) — Han et al., "Divergence
  triangle for joint training of generator model, energy-based model, and inference
  model" (CVPR 2019), recovery experiment on 64×64 CelebA: "salt and pepper noise which
  randomly covers 50% (P.5) and 70% (P.7) of the image", "10 random blocks of size 10×10
  (MB10)".
- :func:`centre_box`, :func:`top_half` — deterministic holes for figures and tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cogenerate.operators import Downsample, Mask, Operator

__all__ = [
    "OPERATORS",
    "random_box",
    "centre_box",
    "top_half",
    "multi_blocks",
    "salt_pepper",
    "mask_from_file",
    "make_operator",
]

OPERATORS: tuple[str, ...] = ("box", "centre", "top-half", "mb10", "p.5", "p.7", "sr2", "sr4", "file:<path>")
"""Specs accepted by :func:`make_operator` (also ``mb<k>``, ``p.<digits>``, ``sr<k>``)."""

# Fang & Schwing (2019, §3.2): box sides from 30 to 60 px on 128 px images.
_BOX_SIDES_AT_128 = (30.0, 60.0)
_BOX_REFERENCE_SIDE = 128.0
# Han et al. (2019), Table III: MB10 is 10 blocks of 10×10 px on 64 px images.
_MB_SIDE_AT_64 = 10.0
_MB_REFERENCE_SIDE = 64.0


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        h = w = size
    else:
        h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {size}")
    return h, w


def _check_n(n: int) -> None:
    if n < 0:
        raise ValueError(f"number of masks must be non-negative, got {n}")


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")


def _box_mask(top: Tensor, left: Tensor, height: Tensor, width: Tensor, h: int, w: int) -> Tensor:
    """Hidden-box indicator ``(N, H, W)`` (bool) for boxes given by ``(N,)`` integer tensors."""
    rows = torch.arange(h, device=top.device)
    cols = torch.arange(w, device=top.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])  # (N, W)
    return in_rows[:, :, None] & in_cols[:, None, :]


def _uniform_int(low: Tensor | int, high: Tensor | int, shape: tuple[int, ...], rng: torch.Generator) -> Tensor:
    """Integers uniform on ``[low, high]`` (inclusive; tensors broadcast), as int64."""
    u = torch.rand(shape, generator=rng, device=rng.device, dtype=torch.float64)
    low_t = torch.as_tensor(low, device=rng.device)
    span = torch.as_tensor(high, device=rng.device) - low_t + 1
    return (low_t + (u * span).floor().long()).clamp(max=torch.as_tensor(high, device=rng.device))


def random_box(
    n: int,
    size: int | tuple[int, int],
    *,
    rng: torch.Generator,
    min_side: int | None = None,
    max_side: int | None = None,
) -> Tensor:
    """One hidden rectangle per image, sides and position uniformly random.

    Height and width are drawn independently and uniformly from the integers
    ``[min_side, max_side]``, which default to Fang & Schwing's 30 and 60 px at 128 px scaled
    to the image and rounded (``round(30·S/128)``, ``round(60·S/128)``: 7 and 13 at 28 px,
    8 and 15 at 32 px, 15 and 30 at 64 px; height scales with H, width with W). The box lies
    entirely inside the image, its top-left corner uniform over the allowed positions.

    Returns:
        ``(n, 1, H, W)`` float mask, 1 = observed, 0 = hidden.
    """
    _check_n(n)
    h, w = _hw(size)

    def bounds(extent: int) -> tuple[int, int]:
        scale = extent / _BOX_REFERENCE_SIDE
        lo = round(_BOX_SIDES_AT_128[0] * scale) if min_side is None else int(min_side)
        hi = round(_BOX_SIDES_AT_128[1] * scale) if max_side is None else int(max_side)
        lo, hi = max(1, min(lo, extent)), max(1, min(hi, extent))
        if lo > hi:
            raise ValueError(f"min_side ({min_side}) must not exceed max_side ({max_side})")
        return lo, hi

    (h_lo, h_hi), (w_lo, w_hi) = bounds(h), bounds(w)
    height = _uniform_int(h_lo, h_hi, (n,), rng)
    width = _uniform_int(w_lo, w_hi, (n,), rng)
    top = _uniform_int(0, h - height, (n,), rng)
    left = _uniform_int(0, w - width, (n,), rng)
    hidden = _box_mask(top, left, height, width, h, w)
    return (~hidden).float().unsqueeze(1)


def centre_box(n: int, size: int | tuple[int, int], *, fraction: float = 0.5) -> Tensor:
    """A centred hidden box whose sides are ``fraction`` of the image's sides.

    Side ``round(fraction·H)`` × ``round(fraction·W)`` at offset ``((H − side) // 2, …)``; the
    default 0.5 hides the central quarter of the area (14×14 of 28×28).

    Returns:
        ``(n, 1, H, W)`` float mask, 1 = observed, 0 = hidden.
    """
    _check_n(n)
    _check_fraction(fraction)
    h, w = _hw(size)
    bh, bw = round(fraction * h), round(fraction * w)
    mask = torch.ones(n, 1, h, w)
    top, left = (h - bh) // 2, (w - bw) // 2
    mask[:, :, top:top + bh, left:left + bw] = 0.0
    return mask


def top_half(n: int, size: int | tuple[int, int]) -> Tensor:
    """Hide the top ``H // 2`` rows, observe the bottom ones.

    Returns:
        ``(n, 1, H, W)`` float mask, 1 = observed, 0 = hidden.
    """
    _check_n(n)
    h, w = _hw(size)
    mask = torch.ones(n, 1, h, w)
    mask[:, :, : h // 2] = 0.0
    return mask


def multi_blocks(
    n: int,
    size: int | tuple[int, int],
    *,
    rng: torch.Generator,
    blocks: int = 10,
    side: int | None = None,
) -> Tensor:
    """``blocks`` square hidden blocks per image at uniformly random positions (MB10).

    Han et al. (2019), Table III, occlude 64×64 CelebA images with "10 random blocks of size
    10×10 (MB10)"; the default ``side`` scales that to the image: ``round(10·min(H, W)/64)``
    (4 at 28 px, 5 at 32 px, 10 at 64 px). Blocks lie entirely inside the image and may
    overlap, so slightly less than ``blocks·side²`` pixels may be hidden.

    Returns:
        ``(n, 1, H, W)`` float mask, 1 = observed, 0 = hidden.
    """
    _check_n(n)
    if blocks < 0:
        raise ValueError(f"blocks must be non-negative, got {blocks}")
    h, w = _hw(size)
    if side is None:
        side = max(1, round(_MB_SIDE_AT_64 * min(h, w) / _MB_REFERENCE_SIDE))
    side = int(side)
    if not 1 <= side <= min(h, w):
        raise ValueError(f"block side must lie in [1, {min(h, w)}], got {side}")
    tops = _uniform_int(0, h - side, (blocks, n), rng)
    lefts = _uniform_int(0, w - side, (blocks, n), rng)
    hidden = torch.zeros(n, h, w, dtype=torch.bool, device=rng.device)
    sides = torch.full((n,), side, device=rng.device)
    for b in range(blocks):  # a loop over blocks, not over images
        hidden |= _box_mask(tops[b], lefts[b], sides, sides, h, w)
    return (~hidden).float().unsqueeze(1)


def salt_pepper(n: int, size: int | tuple[int, int], *, rng: torch.Generator, fraction: float) -> Tensor:
    """Hide ``round(fraction·H·W)`` pixels per image, chosen uniformly without replacement.

    P.5 and P.7 of Han et al. (2019) are ``fraction=0.5`` and ``0.7``. Every image hides
    exactly the same number of pixels; which ones differs per image.

    Returns:
        ``(n, 1, H, W)`` float mask, 1 = observed, 0 = hidden.
    """
    _check_n(n)
    _check_fraction(fraction)
    h, w = _hw(size)
    count = round(fraction * h * w)
    scores = torch.rand(n, h * w, generator=rng, device=rng.device)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return (ranks >= count).float().reshape(n, 1, h, w)


def mask_from_file(path: str | Path, size: int | tuple[int, int] | None = None) -> Tensor:
    """Read a mask drawn as an image: white = observed, black = hidden.

    The file is converted to grey and thresholded at half intensity (grey value ≥ 128, i.e.
    ≥ 0.5 of full scale, is observed). With ``size``, it is first centre-cropped to a square
    and resized with PIL's bilinear filter, exactly like
    :func:`cogenerate.data.images.load_image`, so a mask drawn on the original photograph
    stays aligned with the loaded image; a pair ``(H, W)`` resizes without cropping.

    Returns:
        ``(1, 1, H, W)`` float mask, 1 = observed, 0 = hidden (broadcasts over a batch).

    Raises:
        ValueError: missing or unreadable file, or a mask that hides no pixel.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"mask file {str(path)!r} does not exist")
    try:
        with Image.open(path) as im:
            im.load()
            grey = im.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read mask image {str(path)!r}: {exc}") from None
    if size is not None:
        if isinstance(size, int):
            side = min(grey.size)
            left, top = (grey.size[0] - side) // 2, (grey.size[1] - side) // 2
            grey = grey.crop((left, top, left + side, top + side))
            target = (size, size)
        else:
            hh, ww = _hw(size)
            target = (ww, hh)
        if target[0] < 1 or target[1] < 1:
            raise ValueError(f"mask size must be positive, got {size}")
        if grey.size != target:
            grey = grey.resize(target, Image.Resampling.BILINEAR)
    observed = np.asarray(grey, dtype=np.uint8) >= 128
    if observed.all():
        raise ValueError(
            f"mask {str(path)!r} hides no pixel: paint the hidden region black (white = observed)"
        )
    return torch.from_numpy(observed.astype(np.float32))[None, None]


def make_operator(spec: str, *, n: int, size: int, rng: torch.Generator) -> Operator:
    """Build the observation operator named by ``spec`` for ``n`` images of side ``size``.

    Specs (:data:`OPERATORS`):

    - ``"box"``: :func:`random_box`; ``"centre"`` (or ``"center"``): :func:`centre_box`;
      ``"top-half"``: :func:`top_half`;
    - ``"mb10"``: :func:`multi_blocks` with 10 blocks (``"mb<k>"`` for ``k`` blocks);
    - ``"p.5"``, ``"p.7"``: :func:`salt_pepper` hiding 50 % / 70 % (``"p.<digits>"`` in general);
    - ``"sr2"``, ``"sr4"``: :class:`~cogenerate.operators.Downsample` by 2 or 4 (``"sr<k>"``,
      ``size`` divisible by ``k``);
    - ``"file:<path>"``: :func:`mask_from_file`, one mask shared by all ``n`` images.

    Returns:
        A :class:`~cogenerate.operators.Mask` holding an ``(n, 1, size, size)`` mask
        (``(1, 1, size, size)`` for files), or a ``Downsample``.

    Raises:
        ValueError: unknown spec (the message lists the valid ones) or invalid parameters.
    """
    text = spec.strip()
    key = text.lower()
    if key.startswith("file:"):
        return Mask(mask_from_file(text[5:], size))
    if key == "box":
        return Mask(random_box(n, size, rng=rng))
    if key in ("centre", "center"):
        return Mask(centre_box(n, size))
    if key == "top-half":
        return Mask(top_half(n, size))
    if match := re.fullmatch(r"mb(\d+)", key):
        return Mask(multi_blocks(n, size, rng=rng, blocks=int(match.group(1))))
    if match := re.fullmatch(r"p\.(\d+)", key):
        return Mask(salt_pepper(n, size, rng=rng, fraction=float("0." + match.group(1))))
    if match := re.fullmatch(r"sr(\d+)", key):
        factor = int(match.group(1))
        if factor < 1 or size % factor:
            raise ValueError(f"{spec!r}: the image side {size} is not divisible by the factor {factor}")
        return Downsample(factor)
    raise ValueError(f"unknown observation spec {spec!r}; valid specs: {', '.join(OPERATORS)}")
