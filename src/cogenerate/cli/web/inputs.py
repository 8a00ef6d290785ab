"""What the page completes: the image file, and which of its pixels are hidden.

Every image reaches the sampler as a file that ``cogen complete --image`` reads in the same
way (:func:`cogenerate.data.inputs.image_from_file`), and every hidden region as a
``cogen complete --mask`` spec (a preset, ``sr<k>``, or ``file:mask.png`` written from the
layer drawn with the mouse), so that the page's run is exactly a command line (see
:mod:`cogenerate.cli.web.runs`). Bad input raises a one-line ``ValueError`` that the page shows.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from cogenerate.data.images import _GREY_MODES, load_image, to_uint8
from cogenerate.data.inputs import image_from_file

__all__ = [
    "MAX_PIXELS", "REDUCED_SIDE", "DRAW_SIDE", "PRESETS", "DRAWN", "SUPER_RESOLUTION",
    "PageImage", "test_image_names", "write_test_image", "reduce_if_huge", "page_image", "super_resolution_input",
    "preset_view", "drawing_scale", "drawing_background", "mask_from_layers", "check_hidden", "write_mask",
]

# An upload with more pixels than this (a 4000×4000 photograph) is first reduced to at most
# REDUCED_SIDE pixels a side, with a notice: the model sees 28×28 or 64×64 anyway, and the
# page stays fast. Pillow itself refuses images above 2 × 89.5 megapixels (decompression bombs).
MAX_PIXELS = 16_000_000
REDUCED_SIDE = 1024
# The drawing canvas shows the model-size image enlarged by a whole factor to about this side.
DRAW_SIDE = 336
# A model pixel is hidden when at least this share of its area is painted (as `cogen complete
# --mask file:` reads a mask image: at half intensity).
HIDDEN_COVERAGE = 0.5

DRAWN = "drawn with the mouse"
SUPER_RESOLUTION = "super-resolution of a small upload"
PRESETS: dict[str, str] = {
    DRAWN: "paint the hidden region on the image",
    "centre": "the central quarter hidden",
    "top-half": "the top half hidden",
    "box": "a random box hidden (Fang & Schwing 2019)",
    "mb10": "10 random blocks hidden (Han et al. 2019)",
    "p.5": "50 % of the pixels hidden at random",
    "p.7": "70 % of the pixels hidden at random",
    "sr2": "observed at half resolution (2× average pooling)",
    "sr4": "observed at quarter resolution (4× average pooling)",
    SUPER_RESOLUTION: "the upload is the low-resolution observation (e.g. 7×7 or 14×14 for a 28×28 model)",
}
"""Choices of the hidden region: a label or ``cogen complete --mask`` spec -> what it hides."""


class PageImage(NamedTuple):
    """The image a run completes.

    Attributes:
        path: the file ``cogen complete --image`` reads.
        image: ``(C, S, S)`` in ``[-1, 1]`` at the model's size, as that command reads it.
        size: ``(W, H)`` of ``path``.
        notices: what was done to make it fit (resizing, grey/RGB), one sentence each.
    """

    path: Path
    image: Tensor
    size: tuple[int, int]
    notices: tuple[str, ...] = ()


def test_image_names() -> list[str]:
    """The shipped test images (:mod:`cogenerate.data.demo`) by name, e.g. ``"ankle boot (test #0)"``."""
    from cogenerate.data.demo import load_demo_images

    demo = load_demo_images()
    return [f"{label} (test #{index})" for label, index in zip(demo.labels, demo.test_index)]


def write_test_image(name: str, folder: Path) -> Path:
    """Write shipped test image ``name`` (see :func:`test_image_names`) as an 8-bit PNG in ``folder``.

    Raises:
        ValueError: unknown name.
    """
    from PIL import Image

    from cogenerate.data.demo import load_demo_images

    names = test_image_names()
    if name not in names:
        raise ValueError(f"unknown test image {name!r}; choose one of: {', '.join(names)}")
    image = load_demo_images().images[names.index(name)]  # (1, 28, 28)
    path = folder / (re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") + ".png")
    _write_png(Image.fromarray(to_uint8(image)[..., 0]), path)
    return path


def _write_png(picture: Any, path: Path) -> None:
    """Save a PIL image as ``path`` atomically (sessions of the page may write the same file at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.png")
    try:
        picture.save(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """Mode and ``(W, H)`` of an image file; a one-line ``ValueError`` naming the file if it is none."""
    from PIL import Image, UnidentifiedImageError

    name = path.name
    if not path.is_file():
        raise ValueError(f"{name}: no such file; upload it again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.mode, im.size
    except Image.DecompressionBombError:
        raise ValueError(f"{name} is too large to open safely (over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
                         f"megapixels); upload a smaller image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValueError(f"{name} is not an image that can be read (upload a PNG, JPEG, GIF, BMP, TIFF or WebP "
                         f"file)") from None


def reduce_if_huge(path: Path, folder: Path) -> tuple[Path, tuple[str, ...]]:
    """``path`` itself, or, for an image of more than :data:`MAX_PIXELS` pixels, a copy reduced
    to at most :data:`REDUCED_SIDE` pixels a side written in ``folder``; with the notice saying so.

    Raises:
        ValueError: not an image, or one too large to decode.
    """
    from PIL import Image

    mode, (width, height) = _header(path)
    if width * height <= MAX_PIXELS:
        return path, ()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.draft("RGB" if mode not in _GREY_MODES else "L", (REDUCED_SIDE, REDUCED_SIDE))  # JPEG: decode small
                im = im.convert("L" if mode in _GREY_MODES else "RGB")
                im.thumbnail((REDUCED_SIDE, REDUCED_SIDE), Image.Resampling.BILINEAR)
                reduced = folder / f"{path.stem}-reduced.png"
                _write_png(im, reduced)
                size = im.size
    except (OSError, SyntaxError, ValueError, MemoryError) as error:
        raise ValueError(f"{path.name} ({width}×{height}) could not be decoded: {error}") from None
    return reduced, (f"{path.name} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels): "
                     f"reduced it to {size[0]}×{size[1]} first",)


def page_image(path: str | Path, *, side: int, channels: int, folder: Path) -> PageImage:
    """The upload at ``path`` fitted to a model of ``channels × side × side`` images, as
    ``cogen complete --image`` fits it (huge images reduced first, see :func:`reduce_if_huge`).

    Raises:
        ValueError: not an image, or one too large to decode.
    """
    source = Path(path)
    used, notices = reduce_if_huge(source, folder)
    given = image_from_file(used, side=side, channels=channels)
    changes = tuple(f"{source.name}: {change}, as the model makes {side}×{side} "
                    f"{'grey' if channels == 1 else 'RGB'} images" for change in given.changes)
    if max(given.size) < side:
        changes += (f"{source.name} is smaller than the model's images: choose '{SUPER_RESOLUTION}' as the hidden "
                    f"region to complete it as a low-resolution observation",)
    return PageImage(used, given.image, given.size, notices + changes)


def super_resolution_input(path: str | Path, *, side: int, channels: int, folder: Path) -> tuple[Path, int]:
    """A small square upload of side ``s`` (``side`` divisible by ``s``) as the observation of
    super-resolution: the file ``cogen complete --image FILE --mask sr<k>`` needs, each upload
    pixel repeated ``k × k`` times (``k = side / s``; ``k × k`` average pooling gives the upload
    back exactly), and ``k``.

    Raises:
        ValueError: not an image, or not a small square whose side divides ``side``.
    """
    from PIL import Image

    source = Path(path)
    _, (width, height) = _header(source)
    factors = [k for k in range(2, side + 1) if side % k == 0]
    if width != height or width >= side or side % width:
        sizes = " or ".join(f"{side // k}×{side // k}" for k in factors[:3]) or "smaller"
        raise ValueError(f"super-resolution needs a small square upload whose side divides {side} "
                         f"(e.g. {sizes}); {source.name} is {width}×{height}")
    factor = side // width
    low = load_image(source, channels=channels)  # (C, s, s), not resized
    high = low.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    target = folder / f"{source.stem}-x{factor}.png"
    pixels = to_uint8(high)
    _write_png(Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels), target)
    return target, factor


def preset_view(image: Tensor, spec: str, *, seed: int = 0) -> Tensor:
    """What ``cogen complete --mask spec --seed seed`` leaves observed of the ``(C, S, S)``
    image: hidden pixels grey, a low-resolution observation enlarged (see
    :func:`cogenerate.plotting.observed_view`).

    Raises:
        ValueError: an unknown spec.
    """
    from cogenerate.data.masks import make_operator
    from cogenerate.plotting import observed_view

    side = int(image.shape[-1])
    operator = make_operator(spec, n=1, size=side, rng=torch.Generator().manual_seed(seed))
    return observed_view(image, operator)


def drawing_scale(side: int) -> int:
    """How many canvas pixels a model pixel spans on the drawing canvas (about :data:`DRAW_SIDE` in all)."""
    return max(1, round(DRAW_SIDE / side))


def drawing_background(image: Tensor) -> np.ndarray:
    """The ``(C, S, S)`` image enlarged by :func:`drawing_scale` (each pixel a square), as an
    ``(S·k, S·k, 3)`` ``uint8`` RGB array to draw the hidden region on."""
    scale = drawing_scale(int(image.shape[-1]))
    pixels = to_uint8(image)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels.repeat(scale, axis=0).repeat(scale, axis=1))


def mask_from_layers(layers: Sequence[np.ndarray] | None, side: int) -> Tensor:
    """The mask painted on the drawing canvas, at the model's ``side``.

    Args:
        layers: the editor's drawing layers, ``(H, W, 4)`` RGBA arrays (a pixel is painted
            where its alpha is above 0); ``(H, W)`` or ``(H, W, 3)`` arrays count any non-zero
            pixel as painted.
        side: the model's image side; the canvas is reduced to it by area averaging, and a
            model pixel is hidden when at least :data:`HIDDEN_COVERAGE` of it is painted.

    Returns:
        ``(1, 1, side, side)`` float mask, 1 = observed, 0 = hidden.
    """
    from PIL import Image

    painted: np.ndarray | None = None
    for layer in layers or ():
        array = np.asarray(layer)
        if array.ndim == 3 and array.shape[-1] == 4:
            ink = array[..., 3] > 0
        else:
            ink = (array.reshape(*array.shape[:2], -1) > 0).any(-1)
        painted = ink if painted is None or painted.shape != ink.shape else painted | ink
    if painted is None:
        return torch.ones(1, 1, side, side)
    coverage = Image.fromarray(painted.astype(np.float32)).resize((side, side), Image.Resampling.BOX)  # mode "F"
    hidden = np.asarray(coverage, dtype=np.float32) >= HIDDEN_COVERAGE - 1e-6
    return torch.from_numpy((~hidden).astype(np.float32))[None, None]


def check_hidden(mask: Tensor, *, drawn: bool = False) -> None:
    """Refuse a ``(…, H, W)`` mask (1 = observed) that hides no pixel or every pixel.

    Raises:
        ValueError: saying what to do instead (paint more, or leave part visible).
    """
    hidden, total = int((mask == 0).sum()), mask.numel()
    if hidden == 0:
        how = ("paint over the part of the image to complete (a pixel is hidden when at least half of it is "
               "painted), or pick a preset") if drawn else "pick another hidden region"
        raise ValueError(f"nothing is hidden: {how}")
    if hidden == total:
        raise ValueError("every pixel is hidden: leave part of the image visible, as the completion is "
                         "conditioned on it (or use the eraser)")


def write_mask(mask: Tensor, path: Path) -> Path:
    """Write a ``(1, 1, H, W)`` mask as the PNG ``cogen complete --mask file:PATH`` reads (white =
    observed, black = hidden); returns ``path``."""
    from PIL import Image

    _write_png(Image.fromarray((mask[0, 0].numpy() > 0).astype(np.uint8) * 255), path)
    return path
