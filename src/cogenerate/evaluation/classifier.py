"""The small image classifier whose penultimate layer gives the features of FD, precision and recall.

Sample quality is measured in the feature space of a classifier, as FID uses Inception's
(Heusel et al., 2017), but with a network trained here on each data set, so that nothing is
downloaded. One architecture serves both data sets::

    x (1×28×28) -> conv3×3, 16 -> ReLU -> maxpool 2      (14×14)
                -> conv3×3, 32 -> ReLU -> maxpool 2      (7×7)
                -> conv3×3, 64 -> ReLU -> maxpool 2      (3×3)
                -> flatten 576 -> linear 128 -> ReLU     = features (N, 128)
                -> linear 10                             = class logits

98,442 parameters (385 KB as float32). The shipped weights are
``cogenerate/weights/classifier-<dataset>.{safetensors,json}``, trained by
:func:`cogenerate.evaluation.classifier_training.train_classifier` through
``benchmarks/evaluation_classifier.py``; each JSON records the test accuracy and the command.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from cogenerate.checkpoint import load_checkpoint
from cogenerate.models.registry import register_architecture

__all__ = [
    "ARCHITECTURE", "FeatureClassifier", "ShippedClassifier", "classifier_files", "extract_features",
    "init_classifier", "load_classifier",
]

ARCHITECTURE = "evaluation-classifier"
"""The name the architecture is registered under (:mod:`cogenerate.models.registry`)."""

_PACKAGE, _FOLDER = "cogenerate", "weights"


@register_architecture(ARCHITECTURE)
class FeatureClassifier(nn.Module):
    """A three-block CNN classifier of 28×28 images (see the module docstring).

    Args:
        channels: input channels.
        classes: output classes.
        width: channels of the first convolution; the next two have 2× and 4× as many.
        features: size of the penultimate (feature) layer.
    """

    def __init__(self, channels: int = 1, classes: int = 10, *, width: int = 16, features: int = 128):
        super().__init__()
        self.channels, self.classes, self.width, self.features = channels, classes, width, features
        blocks: list[nn.Module] = []
        inputs = channels
        for outputs in (width, 2 * width, 4 * width):
            blocks += [nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            inputs = outputs
        self.body = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(4 * width * 3 * 3, features), nn.ReLU())
        self.head = nn.Linear(features, classes)

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate-layer features ``(N, features)`` of images ``(N, C, 28, 28)`` in ``[-1, 1]``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(N, classes)`` of images ``(N, C, 28, 28)``."""
        return self.head(self.body(x))


def init_classifier(module: FeatureClassifier, *, rng: torch.Generator) -> FeatureClassifier:
    """PyTorch's default initialisation of every layer (``nn.Linear.reset_parameters``:
    Kaiming-uniform weights with ``a = √5``, biases uniform in ``±1/√fan_in``), drawn from
    ``rng`` instead of the global RNG. Returns ``module``."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(layer.weight, a=5**0.5, generator=rng)
                bound = 1.0 / layer.weight[0].numel() ** 0.5
                nn.init.uniform_(layer.bias, -bound, bound, generator=rng)
    return module


class ShippedClassifier(NamedTuple):
    """A loaded evaluation classifier.

    Attributes:
        module: the network, in eval mode.
        dataset: the data set it was trained on.
        report_accuracy: its accuracy on the data set's report split (the images every figure uses).
        config: the checkpoint's whole JSON (command, training settings, accuracies).
    """

    module: FeatureClassifier
    dataset: str
    report_accuracy: float
    config: dict[str, Any]


def classifier_files(dataset: str) -> dict[str, Traversable]:
    """The shipped files ``{"weights": ..., "config": ...}`` of ``dataset``'s classifier (they may not exist)."""
    folder = resources.files(_PACKAGE) / _FOLDER
    return {"weights": folder / f"classifier-{dataset}.safetensors", "config": folder / f"classifier-{dataset}.json"}


def load_classifier(dataset: str, *, device: torch.device | str | None = None) -> ShippedClassifier:
    """The shipped classifier of ``dataset`` (``"fashion-mnist"`` or ``"mnist"``).

    Raises:
        ValueError: no classifier is shipped for ``dataset``.
    """
    files = classifier_files(dataset)
    if not all(f.is_file() for f in files.values()):
        raise ValueError(f"no evaluation classifier is shipped for data set {dataset!r} "
                         f"(looked for cogenerate/weights/classifier-{dataset}.safetensors and .json)")
    with resources.as_file(files["config"]) as config_path:
        checkpoint = load_checkpoint(Path(config_path), device=device)
    module = checkpoint.modules["classifier"]
    if not isinstance(module, FeatureClassifier):
        raise ValueError(f"classifier-{dataset}: expected a {ARCHITECTURE}, got {type(module).__name__}")
    config = checkpoint.config
    return ShippedClassifier(module.eval(), str(config.get("dataset", dataset)),
                             float(config.get("report_accuracy", float("nan"))), config)


def extract_features(
    embed: Callable[[Tensor], Tensor] | FeatureClassifier,
    images: Tensor,
    *,
    batch_size: int = 500,
    progress: Callable[[float], None] | None = None,
) -> Tensor:
    """Features of ``images`` ``(N, C, H, W)``, computed ``batch_size`` images at a time.

    Args:
        embed: a :class:`FeatureClassifier` (its :meth:`~FeatureClassifier.embed` is used) or any
            ``(n, C, H, W) -> (n, F)`` function that treats images independently.
        images: ``(N, C, H, W)`` in ``[-1, 1]``; moved to the network's device.
        batch_size: images per forward pass; the result does not depend on it beyond
            floating-point summation order.
        progress: called with the fraction done after each batch.

    Returns:
        ``(N, F)`` float64 features on the CPU (so the statistics that follow are accurate).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    function = embed.embed if isinstance(embed, FeatureClassifier) else embed
    device = next(embed.parameters()).device if isinstance(embed, nn.Module) else images.device
    chunks = []
    n = images.shape[0]
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = images[start:start + batch_size].to(device=device, dtype=torch.float32)
            chunks.append(function(batch).to("cpu", torch.float64))
            if progress is not None:
                progress(min(n, start + batch_size) / n)
    if not chunks:
        raise ValueError("no images to compute features of (a batch of 0)")
    return torch.cat(chunks)
