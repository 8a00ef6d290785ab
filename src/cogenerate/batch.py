"""Completing many images of a data set, each one a function of ``(seed, image index)`` alone.

:func:`complete_dataset` completes every image of a list of data-set indices and scores each
completion against the truth with the co-generation protocol's per-image metrics
(:func:`cogenerate.evaluation.cogeneration.completion_scores`: hidden MSE, SSIM, share of hidden
pixels within ±2 predictive std, CRPS, log evidence, gradient evaluations, noise σ).

**Independent of batching and sharding.** Image ``i``'s random mask is the protocol's
(:func:`~cogenerate.evaluation.cogeneration.protocol_operator`: drawn from
``protocol_seed(seed, i)``) and its sampler is seeded :func:`image_seed` ``(seed, i)``; each
image is completed by its own :func:`cogenerate.complete` call, since the samplers' draws and
adaptation are shared within a call. So an image's result depends on the seed, its index, the
model and the settings, and not on which other images are completed, in which order, or on
how many processes: on several processes (``torchrun``; :mod:`cogenerate.distributed`) each
completes every N-th image and every process gets all results, the same as one process gets.
(Completing one image per call costs nothing here: on the shipped 28 px DCGAN at 8 chains, 8
images one by one took 3.4 s against 4.2 s in one batch, as a batch runs until its slowest
image is done.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from cogenerate.api import DEFAULT_METHOD, complete
from cogenerate.distributed import gather, shard
from cogenerate.evaluation.cogeneration import METRICS, CogenerationRow, completion_scores, protocol_operator
from cogenerate.evaluation.scores import Summary, summarise
from cogenerate.methods import MethodSettings
from cogenerate.operators import Mask

__all__ = ["IMAGE_METRICS", "ImageResult", "complete_dataset", "complete_images", "image_seed", "record",
           "summary_row"]

IMAGE_METRICS: tuple[str, ...] = ("hidden_mse", "ssim", "within_2_std", "crps")
"""The metrics against the truth in each record's ``"metrics"`` (the rest of :data:`METRICS`
are properties of the run: log evidence, gradient evaluations, noise σ)."""

SAMPLER_STREAM = 1
"""Third word of the sampler's seed sequence ``(seed, index, 1)``; the mask's is ``(seed, index)``."""


class ImageResult(NamedTuple):
    """One image's completion, scored.

    Attributes:
        index: the image's index in its data-set split.
        scores: every metric of :data:`~cogenerate.evaluation.cogeneration.METRICS`, as a float
            (NaN for a log evidence the method does not estimate).
        ess: effective sample size of the final importance weights.
        estimate: ``(C, H, W)`` the method's point estimate, observed part pasted in, on the CPU.
        observed: ``(C, H, W)`` 1 where the pixel was observed directly, 0 where hidden.
    """

    index: int
    scores: dict[str, float]
    ess: float
    estimate: Tensor
    observed: Tensor


def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index``'s sampler: the first 63 bits of NumPy's
    ``SeedSequence([seed, index, 1])``, a hash of the triple (the mask's seed,
    ``protocol_seed(seed, index)``, hashes the pair)."""
    words = np.random.SeedSequence([int(seed), int(index), SAMPLER_STREAM]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def complete_images(
    model: Any,
    images: Tensor,
    indices: Sequence[int],
    *,
    mask: str,
    seed: int = 0,
    method: str | MethodSettings = DEFAULT_METHOD,
    chains: int = 16,
    max_grad_evals: int | None = None,
    steps: int | None = None,
    leapfrog: int | None = None,
    noise_std: float | str | None = None,
    discriminator_weight: float | None = None,
    on_image: Callable[[ImageResult], None] | None = None,
) -> list[ImageResult]:
    """Complete and score each of ``images`` on this process, one :func:`cogenerate.complete` call each.

    Args:
        model: anything :func:`cogenerate.complete` takes; the images are moved to its device.
        images: ``(N, C, S, S)`` the truth, in ``[-1, 1]``.
        indices: ``N`` distinct data-set indices of the images: they fix each image's mask and
            sampler seed.
        mask: an observation pattern of :func:`cogenerate.data.masks.make_operator` (``"box"``,
            ``"centre"``, ``"top-half"``, ``"sr4"``, …); random ones drawn per image.
        seed: the run's seed (module docstring).
        method, chains, max_grad_evals, steps, leapfrog, noise_std, discriminator_weight:
            passed to :func:`cogenerate.complete`.
        on_image: called with each result as it is done (progress).

    Returns:
        One :class:`ImageResult` per image, in the order given.
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be a (N, C, S, S) batch, got shape {tuple(images.shape)}")
    if len(indices) != images.shape[0]:
        raise ValueError(f"{len(indices)} indices for {images.shape[0]} images")
    device = _model_device(model)
    results = []
    for index, truth in zip(indices, images, strict=True):
        truth = truth.unsqueeze(0).to(device)
        operator = protocol_operator(mask, [int(index)], size=truth.shape[-1], mask_seed=seed)
        observed = truth
        if isinstance(operator, Mask):  # the hidden pixels are never looked at: make that visible
            observed = torch.where(operator.mask.to(device) > 0, truth, torch.full_like(truth, math.nan))
        completion = complete(model, observed, operator, method=method, chains=chains, max_grad_evals=max_grad_evals,
                              steps=steps, leapfrog=leapfrog, noise_std=noise_std,
                              discriminator_weight=discriminator_weight, seed=image_seed(seed, int(index)))
        scores = {key: float(value[0]) for key, value in completion_scores(completion, truth).items()}
        result = ImageResult(int(index), scores, float(completion.ess[0]), completion.estimate[0].detach().cpu(),
                             (1 - completion.hidden[0]).detach().cpu())
        results.append(result)
        if on_image is not None:
            on_image(result)
    return results


def complete_dataset(model: Any, images: Tensor, indices: Sequence[int], **options: Any) -> list[ImageResult]:
    """:func:`complete_images` shared out over the processes of a torch.distributed job.

    Each process completes every N-th image (:func:`cogenerate.distributed.shard`) and every
    process returns all the results, in the order of ``indices``: the same list one process
    returns alone (module docstring). ``options`` are :func:`complete_images`' keyword options;
    ``on_image`` sees this process's images only.

    Raises:
        ValueError: an index listed twice.
    """
    indices = [int(index) for index in indices]
    if len(set(indices)) != len(indices):
        raise ValueError("every image index may be listed once")
    if len(indices) != images.shape[0]:
        raise ValueError(f"{len(indices)} indices for {images.shape[0]} images")
    mine = shard(range(len(indices)))
    done = complete_images(model, images[mine], [indices[position] for position in mine], **options)
    position = {index: place for place, index in enumerate(indices)}
    return sorted(gather(done), key=lambda result: position[result.index])


def record(result: ImageResult) -> dict[str, Any]:
    """One image's JSON record: index, metrics, log evidence, gradient evaluations, noise σ, ESS
    (NaN stays a float NaN: the writer chooses how to store it)."""
    return {
        "index": result.index,
        "metrics": {key: result.scores[key] for key in IMAGE_METRICS},
        "log_evidence": result.scores["log_evidence"],
        "grad_evals": int(result.scores["grad_evals"]),
        "noise_std": result.scores["noise_std"],
        "ess": result.ess,
    }


def summary_row(results: Sequence[ImageResult], *, mask: str, method: str, chains: int,
                max_grad_evals: int | None) -> CogenerationRow:
    """The results as one row of the co-generation tables: each metric's mean over the images and
    its 95 % interval (:func:`cogenerate.evaluation.scores.summarise`), and the per-image values.
    Its ``seconds`` is 0: the row depends on the results only."""
    per_image = {key: torch.tensor([result.scores[key] for result in results], dtype=torch.float64)
                 for key in METRICS}
    summaries: dict[str, Summary] = {key: summarise(values) for key, values in per_image.items()}
    return CogenerationRow(mask, method, len(results), chains, max_grad_evals, summaries, per_image, 0.0)


def _model_device(model: Any) -> torch.device:
    modules = None if isinstance(model, torch.nn.Module) else getattr(model, "modules", None)
    candidates = list(modules.values()) if isinstance(modules, Mapping) else [model]
    for module in candidates:
        if isinstance(module, torch.nn.Module):
            for parameter in module.parameters():
                return parameter.device
    return torch.device("cpu")
