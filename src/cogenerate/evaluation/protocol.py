"""Sample quality of a model or of a set of images, on a data set's report split.

:func:`generate_samples` draws images from a model with an explicit ``rng``;
:func:`evaluate_samples` scores any ``(N, 1, 28, 28)`` images in ``[-1, 1]`` against the report
split of their data set (:mod:`cogenerate.evaluation.splits`) in the features of the shipped
classifier (:mod:`cogenerate.evaluation.classifier`): Fréchet distance with a bootstrap
interval, precision and recall with k = 3 (:mod:`cogenerate.evaluation.sample_quality`).
The protocol's default is :data:`DEFAULT_SAMPLES` = 5,000 generated images against
``test[:5000]`` (Fashion-MNIST) or ``test[:250]`` (MNIST).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from cogenerate.evaluation.classifier import ShippedClassifier, extract_features, load_classifier
from cogenerate.evaluation.sample_quality import (
    BOOTSTRAP_RESAMPLES, K_NEAREST, Interval, PrecisionRecall, bootstrap_frechet_distance, feature_statistics,
    frechet_distance, precision_recall,
)
from cogenerate.evaluation.splits import load_split, split_description
from cogenerate.models.base import GenerativeModel
from cogenerate.posterior import sample_prior

__all__ = ["DEFAULT_SAMPLES", "SampleQuality", "generate_samples", "check_samples", "sample_quality",
           "evaluate_samples"]

DEFAULT_SAMPLES = 5000
"""Generated images per FD / precision / recall: as many as Fashion-MNIST's report split."""

_RANGE_SLACK = 1e-3  # float32 round-off allowed outside [-1, 1]

Progress = Callable[[str, float], None]


class SampleQuality(NamedTuple):
    """FD, precision and recall of generated images against reference images.

    Attributes:
        fd: Fréchet distance of the classifier features (lower is better).
        fd_interval: its bias-corrected percentile-bootstrap interval over resamples of the
            generated images (the reference images are fixed).
        precision_recall: precision and recall with k nearest neighbours (higher is better).
        samples, reference: how many generated and reference images.
        reference_split: which images the reference is (e.g. ``"fashion-mnist test[:5000]"``).
        resamples: bootstrap resamples behind ``fd_interval``.
    """

    fd: float
    fd_interval: Interval
    precision_recall: PrecisionRecall
    samples: int
    reference: int
    reference_split: str
    resamples: int


def generate_samples(model: GenerativeModel, n: int, *, rng: torch.Generator, batch_size: int = 500,
                     progress: Callable[[float], None] | None = None) -> Tensor:
    """``n`` images ``G(z)``, ``z`` from the model's prior drawn with ``rng``: ``(n, *x_shape)`` float32 on the CPU.

    The latents are drawn for all ``n`` at once, so ``batch_size`` does not change the images. An
    ``nn.Module`` generator runs in eval mode (batch norm on its running statistics, so an image
    does not depend on the rest of its batch) and is put back in its mode afterwards.
    """
    if n < 1:
        raise ValueError(f"the number of samples must be positive, got {n}")
    generator = model.generator
    parameter = next(generator.parameters(), None) if isinstance(generator, torch.nn.Module) else None
    like = torch.empty(0) if parameter is None else torch.empty(0, device=parameter.device, dtype=parameter.dtype)
    latents = sample_prior(model.prior, (n,), model.latent_dim, rng=rng, like=torch.empty(0, device=rng.device))
    chunks = []
    training = isinstance(generator, torch.nn.Module) and generator.training
    if training:
        generator.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                chunks.append(generator(latents[start:start + batch_size].to(like)).to("cpu", torch.float32))
                if progress is not None:
                    progress(min(n, start + batch_size) / n)
    finally:
        if training:
            generator.train()
    return torch.cat(chunks)


def check_samples(samples: Any, shape: tuple[int, ...] = (1, 28, 28)) -> Tensor:
    """``samples`` as a float32 ``(N, *shape)`` tensor, or a one-line ``ValueError`` saying what is wrong
    (not floating point, wrong shape, NaN, values outside ``[-1, 1]``)."""
    samples = torch.as_tensor(samples)
    if not samples.is_floating_point():
        raise ValueError(f"samples must be floating point in [-1, 1] (got {samples.dtype}); "
                         f"map 8-bit images with x / 127.5 - 1")
    if samples.dim() != len(shape) + 1 or tuple(samples.shape[1:]) != tuple(shape) or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape (N, {', '.join(map(str, shape))}), got {tuple(samples.shape)}")
    if not torch.isfinite(samples).all():
        raise ValueError("samples contain NaN or inf")
    low, high = float(samples.min()), float(samples.max())
    if low < -1 - _RANGE_SLACK or high > 1 + _RANGE_SLACK:
        raise ValueError(f"samples must lie in [-1, 1] (the range of the data), found [{low:.3g}, {high:.3g}]")
    return samples.to(torch.float32).clamp(-1, 1)


def sample_quality(generated: Tensor, reference: Tensor, *, rng: torch.Generator, k: int = K_NEAREST,
                   resamples: int = BOOTSTRAP_RESAMPLES, reference_split: str = "") -> SampleQuality:
    """The pure last stage: FD (with its bootstrap interval), precision and recall of features
    ``generated`` ``(N_g, F)`` against ``reference`` ``(N_r, F)``; ``rng`` draws the bootstrap."""
    fd = frechet_distance(feature_statistics(generated), feature_statistics(reference))
    interval = bootstrap_frechet_distance(generated, reference, rng=rng, resamples=resamples)
    return SampleQuality(fd, interval, precision_recall(reference, generated, k=k), generated.shape[0],
                         reference.shape[0], reference_split, resamples)


def evaluate_samples(
    samples: Tensor,
    dataset: str,
    *,
    rng: torch.Generator,
    k: int = K_NEAREST,
    resamples: int = BOOTSTRAP_RESAMPLES,
    classifier: ShippedClassifier | None = None,
    reference: Tensor | None = None,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> SampleQuality:
    """FD, precision and recall of ``samples`` ``(N, 1, 28, 28)`` in ``[-1, 1]`` against ``dataset``'s report split.

    Args:
        samples: generated images (e.g. :func:`generate_samples`, or a ``samples.npy``).
        dataset: ``"fashion-mnist"`` or ``"mnist"``: picks the classifier and the reference images.
        rng: draws the FD bootstrap.
        k, resamples: see :func:`sample_quality`.
        classifier: default: :func:`~cogenerate.evaluation.classifier.load_classifier` ``(dataset)``.
        reference: default: the report split (``load_split(dataset, "report")``).
        batch_size: images per classifier call (does not change the result).
        progress: called with ``("features", fraction)``.
    """
    classifier = classifier if classifier is not None else load_classifier(dataset)
    samples = check_samples(samples, (classifier.module.channels, 28, 28))
    described = split_description(dataset, "report") if reference is None else f"{reference.shape[0]} given images"
    reference = reference if reference is not None else load_split(dataset, "report")
    total = samples.shape[0] + reference.shape[0]
    report = None if progress is None else (lambda f: progress("features", f * samples.shape[0] / total))
    generated = extract_features(classifier.module, samples, batch_size=batch_size, progress=report)
    report = None if progress is None else (lambda f: progress("features", (samples.shape[0] + f * reference.shape[0]) / total))
    real = extract_features(classifier.module, reference, batch_size=batch_size, progress=report)
    return sample_quality(generated, real, rng=rng, k=k, resamples=resamples,
                          reference_split=described)
