"""The one image a user asks to complete, at the size and channels of the model.

:func:`image_from_file` and :func:`image_from_dataset` return an :class:`ImageInput`: the
image in ``[-1, 1]`` plus a JSON-ready description of where it came from and what was done to
make it fit the model (resizing, grey/RGB conversion), so that a command line can say so.
:func:`check_mask_size` refuses a mask file drawn at another size than the image it masks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor

from cogenerate.data.images import _GREY_MODES, _header, load_dataset, load_image

__all__ = ["ImageInput", "check_mask_size", "image_from_dataset", "image_from_file"]


class ImageInput(NamedTuple):
    """An image to complete.

    Attributes:
        image: ``(C, side, side)`` float32 in ``[-1, 1]``.
        source: where it came from, e.g. ``{"image": path, "original_size": [W, H]}`` or
            ``{"dataset": name, "split": split, "index": i}``.
        size: ``(W, H)`` of the image as given (a mask file must be drawn at this size or at
            the model's).
        changes: what was done to fit the model, as phrases (e.g. ``"converted it to grey"``);
            empty when nothing was.
    """

    image: Tensor
    source: dict[str, Any]
    size: tuple[int, int]
    changes: tuple[str, ...] = ()


def image_from_file(path: str | Path, *, side: int, channels: int) -> ImageInput:
    """Read an image file and fit it to ``channels × side × side``: centre-crop to a square,
    resize with PIL's bilinear filter, convert to grey or RGB (see
    :func:`cogenerate.data.images.load_image`).

    Raises:
        ValueError: missing or unreadable file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"image file {str(path)!r} does not exist")
    mode, (width, height) = _header(path)
    changes = []
    if (width, height) != (side, side):
        crop = " (centre-cropped to a square)" if width != height else ""
        changes.append(f"resized it from {width}×{height} to {side}×{side}{crop}")
    if (mode in _GREY_MODES) != (channels == 1):
        changes.append("converted it to " + ("grey" if channels == 1 else "RGB"))
    image = load_image(path, size=side, channels=channels)
    return ImageInput(image, {"image": str(path), "original_size": [width, height]}, (width, height), tuple(changes))


def image_from_dataset(name: str, index: int, *, split: str = "test", side: int, channels: int) -> ImageInput:
    """Image ``index`` of a data set split (see :func:`cogenerate.data.images.load_dataset`),
    at ``channels × side × side``.

    Raises:
        ValueError: unknown data set or split, data not installed, index out of range.
    """
    images = load_dataset(name, split=split, size=side, channels=channels)
    if not 0 <= index < images.shape[0]:
        raise ValueError(
            f"--index {index} is out of range: the {split!r} split of {name} has {images.shape[0]} "
            f"images (0 to {images.shape[0] - 1})"
        )
    return ImageInput(images[index], {"dataset": name, "split": split, "index": index}, (side, side))


def check_mask_size(spec: str, image_size: tuple[int, int], side: int, what: str = "the image") -> None:
    """A ``file:PATH`` observation spec must be drawn at ``image_size`` ``(W, H)`` (the image
    it masks, before resizing) or at the model's ``side × side``; other specs pass.

    Raises:
        ValueError: missing or unreadable mask file, or one of another size; the message
            names ``what`` the mask was meant for and the sizes allowed.
    """
    if not spec.strip().lower().startswith("file:"):
        return
    path = Path(spec.strip()[5:]).expanduser()
    if not path.is_file():
        raise ValueError(f"mask file {str(path)!r} does not exist")
    try:
        _, size = _header(path)
    except ValueError as error:
        raise ValueError(str(error).replace("cannot read image", "cannot read mask image", 1)) from None
    if size not in (image_size, (side, side)):
        allowed = f"{image_size[0]}×{image_size[1]}" + (f" or {side}×{side}" if image_size != (side, side) else "")
        raise ValueError(
            f"mask file {str(path)!r} is {size[0]}×{size[1]} pixels but {what} is {image_size[0]}×{image_size[1]}: "
            f"draw the mask at {allowed} (white = observed, black = hidden)"
        )
