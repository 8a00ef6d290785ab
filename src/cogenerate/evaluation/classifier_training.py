"""Training the evaluation classifier: a pure loop over an explicit ``torch.Generator``.

:func:`train_classifier` fits a :class:`~cogenerate.evaluation.classifier.FeatureClassifier` by
Adam on the cross-entropy (Kingma & Ba, 2015; the default rate 1e-3 of that paper), shuffling
with ``rng`` each epoch; :func:`accuracy` scores it. ``benchmarks/evaluation_classifier.py``
calls both and writes the shipped checkpoint (the library writes no files).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from cogenerate.evaluation.classifier import FeatureClassifier, init_classifier

__all__ = ["train_classifier", "accuracy"]


def train_classifier(
    images: Tensor,
    labels: Tensor,
    *,
    rng: torch.Generator,
    epochs: int = 4,
    batch_size: int = 128,
    lr: float = 1e-3,
    width: int = 16,
    features: int = 128,
    progress: Callable[[float, float], None] | None = None,
) -> FeatureClassifier:
    """Train a classifier of ``images`` ``(N, C, 28, 28)`` in ``[-1, 1]`` with ``labels`` ``(N,)``.

    Args:
        images, labels: the training split and its class labels (0 to ``classes − 1``).
        rng: draws the initial weights and the order of each epoch (same seed ⇒ same weights
            on the same machine and thread count).
        epochs: passes over the data.
        batch_size: images per Adam step (the last, smaller batch of an epoch is kept).
        lr: Adam's learning rate.
        width, features: :class:`~cogenerate.evaluation.classifier.FeatureClassifier` sizes.
        progress: called after each step with the fraction done and the step's loss.

    Returns:
        The trained module, in eval mode, on ``images``' device.
    """
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"need as many labels as images (at least one), got {labels.shape[0]} and {images.shape[0]}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    classes = int(labels.max()) + 1
    with torch.device("meta"):  # no draw from the global RNG: init_classifier sets every weight
        module = FeatureClassifier(images.shape[1], max(classes, 2), width=width, features=features)
    module = init_classifier(module.to_empty(device=images.device), rng=rng)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    n = images.shape[0]
    steps = epochs * -(-n // batch_size)
    done = 0
    module.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=rng, device=rng.device).to(images.device)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(module(images[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if progress is not None:
                progress(done / steps, float(loss.detach()))
    return module.eval()


def accuracy(module: FeatureClassifier, images: Tensor, labels: Tensor, *, batch_size: int = 1000) -> float:
    """Share of ``images`` ``(N, C, H, W)`` whose most likely class is their label ``(N,)``."""
    if images.shape[0] == 0:
        raise ValueError("no images to score")
    correct = 0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            logits = module(images[start:start + batch_size])
            correct += int((logits.argmax(1) == labels[start:start + batch_size].to(logits.device)).sum())
    return correct / images.shape[0]
