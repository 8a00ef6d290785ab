"""A handful of held-out Fashion-MNIST test images shipped inside the package (3 KB), so that
``cogen demo`` shows image completion without the Debian data package or any user data.

``demo_images.npz`` holds six of the official Fashion-MNIST test images (Xiao, Rasul &
Vollgraf, 2017; MIT licence), one per class shown, each the first of its class in the test
split: indices 0 (ankle boot), 1 (pullover), 2 (trouser), 13 (dress), 9 (sneaker), 18 (bag).
None is in the training split the shipped ``fashion-mnist`` model learnt from. They were
extracted with::

    images = load_dataset("fashion-mnist", split="test")[:5000][[0, 1, 2, 13, 9, 18]]
    np.savez_compressed("demo_images.npz", images=to_uint8(images)[..., 0],
                        test_index=..., label=...)   # labels from t10k-labels-idx1-ubyte

and equal the IDX file's bytes exactly.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["DemoImages", "load_demo_images"]


class DemoImages(NamedTuple):
    """Attributes:
        images: ``(6, 1, 28, 28)`` float32 in ``[-1, 1]``.
        test_index: the index of each image in the official Fashion-MNIST test split.
        labels: the class name of each image.
    """

    images: Tensor
    test_index: tuple[int, ...]
    labels: tuple[str, ...]


def load_demo_images() -> DemoImages:
    """The shipped demo images (see the module docstring)."""
    with resources.as_file(resources.files("cogenerate.data") / "demo_images.npz") as path:
        with np.load(path, allow_pickle=False) as stored:
            pixels, index, labels = stored["images"], stored["test_index"], stored["label"]
    images = torch.from_numpy(pixels.astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    return DemoImages(images, tuple(int(i) for i in index), tuple(str(label) for label in labels))
