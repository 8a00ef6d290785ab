"""The co-generation protocol: one row of the family tables per observation pattern.

Given a model and a method, :func:`evaluate_cogeneration` completes a fixed set of report
images under fixed observation patterns at a fixed budget and number of chains, and scores
every completion against the truth. :func:`cogeneration_protocol` is the protocol's defaults
on a data set's report split (:mod:`cogenerate.evaluation.splits`): the first 100 images of
``test[:5000]`` (Fashion-MNIST) or of ``test[:250]`` (MNIST).

Observation patterns (specs of :func:`cogenerate.data.masks.make_operator`): ``"box"`` (a random
box, Fang & Schwing's sides scaled to the image), ``"top-half"`` and ``"sr4"`` (4× super-resolution,
where every pixel is hidden). A random mask is a function of ``(mask_seed, image index)`` only:
image ``i`` gets the mask drawn from ``torch.Generator().manual_seed(protocol_seed(mask_seed, i))``,
whatever the batch, the number of images or the method.

Per image (all on the hidden pixels, i.e. every pixel for ``sr4``):

- ``hidden_mse``: mean squared error of the method's point estimate (``Completion.estimate``);
- ``ssim``: SSIM of the point estimate against the truth, whole image (:func:`cogenerate.metrics.ssim`);
- ``within_2_std``: share of hidden pixels whose truth lies within ±2 ``predictive_std`` of the
  weighted posterior mean (0.95 for a calibrated Gaussian predictive);
- ``crps``: mean CRPS of the predictive mixture ``Σ_c w_c N(G(z_c), σ²)`` — the weighted
  particles plus the Gaussian noise the method used — by the closed form of
  :func:`cogenerate.evaluation.scores.crps_gaussian_mixture`;
- ``log_evidence``: the method's estimate of ``log p(x_o)`` in nats (NaN for descent methods);
- ``grad_evals``: generator gradient evaluations per chain; ``noise_std``: the σ used.

Each is summarised by its mean over images with a normal 95 % interval
(:func:`cogenerate.evaluation.scores.summarise`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from cogenerate import metrics
from cogenerate.api import complete
from cogenerate.data.masks import make_operator
from cogenerate.evaluation.scores import Summary, crps_gaussian_mixture, summarise
from cogenerate.evaluation.splits import load_split, split_description
from cogenerate.methods import MethodSettings
from cogenerate.models.base import GenerativeModel
from cogenerate.operators import Mask, Operator

__all__ = [
    "DEFAULT_MASKS", "DEFAULT_IMAGES", "DEFAULT_CHAINS", "DEFAULT_BUDGET", "METRICS", "CogenerationRow",
    "protocol_seed", "protocol_operator", "completion_scores", "evaluate_cogeneration", "cogeneration_protocol",
    "row_as_dict", "cogeneration_table",
]

DEFAULT_MASKS: tuple[str, ...] = ("box", "top-half", "sr4")
DEFAULT_IMAGES = 100
DEFAULT_CHAINS = 8
DEFAULT_BUDGET = 300
"""Gradient evaluations per chain: the budget of docs/benchmarks.md §3 (target 1)."""

METRICS: tuple[str, ...] = ("hidden_mse", "ssim", "within_2_std", "crps", "log_evidence", "grad_evals", "noise_std")
"""The per-image values of a row, in table order."""

Progress = Callable[[str, float], None]


class CogenerationRow(NamedTuple):
    """One observation pattern's results.

    Attributes:
        mask: the pattern's spec (``"box"``, ``"top-half"``, ``"sr4"``, ...).
        method: the method's name.
        images, chains, max_grad_evals: the protocol's settings.
        summaries: metric name (:data:`METRICS`) -> mean over images with its 95 % interval.
        per_image: metric name -> ``(images,)`` values, for paired comparisons of two rows.
        seconds: wall time of the completions.
    """

    mask: str
    method: str
    images: int
    chains: int
    max_grad_evals: int | None
    summaries: dict[str, Summary]
    per_image: dict[str, Tensor]
    seconds: float


def protocol_seed(mask_seed: int, index: int) -> int:
    """The seed of image ``index``'s random mask: the first 63 bits of NumPy's
    ``SeedSequence([mask_seed, index])`` (a hash of the pair, independent of everything else)."""
    words = np.random.SeedSequence([int(mask_seed), int(index)]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def protocol_operator(spec: str, indices: Sequence[int], *, size: int, mask_seed: int = 0) -> Operator:
    """The observation operator of images ``indices`` under pattern ``spec``.

    Returns:
        A :class:`~cogenerate.operators.Mask` of ``(len(indices), 1, size, size)``, row ``j`` drawn
        from ``protocol_seed(mask_seed, indices[j])``; or the pattern's operator itself when it
        is the same for every image (``"sr4"``).
    """
    masks = []
    for index in indices:
        rng = torch.Generator().manual_seed(protocol_seed(mask_seed, index))
        operator = make_operator(spec, n=1, size=size, rng=rng)
        if not isinstance(operator, Mask):
            return operator
        masks.append(operator.mask)
    if not masks:
        raise ValueError("no images to build masks for")
    return Mask(torch.cat(masks))


def completion_scores(completion: Any, truth: Tensor) -> dict[str, Tensor]:
    """Per-image metrics ``(B,)`` (:data:`METRICS`, module docstring) of one :func:`~cogenerate.complete`
    result against ``truth`` ``(B, *x_shape)``."""
    truth = truth.to(completion.estimate)
    hidden = completion.hidden.to(truth)
    count = hidden.flatten(1).sum(1).clamp_min(1)
    estimate = completion.estimate
    inside = ((completion.mean - truth).abs() <= 2 * completion.predictive_std) & hidden.bool()
    crps = crps_gaussian_mixture(completion.samples, completion.log_weights, completion.noise_std, truth)
    b = truth.shape[0]
    return {
        "hidden_mse": ((estimate - truth).pow(2) * hidden).flatten(1).sum(1) / count,
        "ssim": metrics.ssim(estimate.float(), truth.float()),
        "within_2_std": inside.flatten(1).sum(1) / count,
        "crps": (crps * hidden.to(crps)).flatten(1).sum(1) / count.to(crps),
        "log_evidence": completion.log_evidence,
        "grad_evals": torch.full((b,), float(completion.grad_evals)),
        "noise_std": completion.noise_std,
    }


def evaluate_cogeneration(
    model: Any,
    images: Tensor,
    *,
    rng: torch.Generator,
    method: str | MethodSettings = "smc-polish",
    masks: Sequence[str] = DEFAULT_MASKS,
    chains: int = DEFAULT_CHAINS,
    max_grad_evals: int | None = DEFAULT_BUDGET,
    noise_std: float | str | None = None,
    indices: Sequence[int] | None = None,
    mask_seed: int = 0,
    batch: int = 25,
    progress: Progress | None = None,
) -> list[CogenerationRow]:
    """Complete ``images`` under each pattern of ``masks`` and score the completions.

    Args:
        model: anything :func:`cogenerate.complete` takes (a GenerativeModel, a generator).
        images: ``(N, C, H, W)`` the truth, square, in ``[-1, 1]``.
        rng: drives every sampler call (batches and patterns in order), so the same seed gives
            the same rows.
        method: a method name or settings object (default: the library's default method).
        masks: observation patterns (module docstring).
        chains, max_grad_evals, noise_std: passed to :func:`cogenerate.complete` (``noise_std``
            None: the method's default, the fitted σ for smc and smc-polish).
        indices: the images' indices in their split, which fix the random masks (default
            ``0 … N − 1``).
        mask_seed: the protocol's mask seed.
        batch: images per :func:`cogenerate.complete` call (changes the random draws, not the protocol).
        progress: called with ``("co-generation <mask>", fraction done)``.

    Returns:
        One :class:`CogenerationRow` per pattern, in the order of ``masks``.
    """
    if images.dim() != 4 or images.shape[0] == 0 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be a non-empty (N, C, S, S) batch, got shape {tuple(images.shape)}")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    n = images.shape[0]
    indices = list(range(n)) if indices is None else [int(i) for i in indices]
    if len(indices) != n:
        raise ValueError(f"{len(indices)} indices for {n} images")
    rows = []
    for spec in masks:
        stage = f"co-generation {spec}"
        parts: list[dict[str, Tensor]] = []
        name = None
        started = time.perf_counter()
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            operator = protocol_operator(spec, indices[start:stop], size=images.shape[-1], mask_seed=mask_seed)
            report = None if progress is None else (lambda f, a=start, b=stop: progress(stage, (a + f * (b - a)) / n))
            completion = complete(model, images[start:stop], operator, method=method, chains=chains,
                                  max_grad_evals=max_grad_evals, noise_std=noise_std, rng=rng, progress=report)
            name = completion.method
            parts.append({key: value.detach().to("cpu", torch.float64) for key, value in
                          completion_scores(completion, images[start:stop]).items()})
        seconds = time.perf_counter() - started
        per_image = {key: torch.cat([p[key] for p in parts]) for key in METRICS}
        rows.append(CogenerationRow(spec, str(name), n, chains, max_grad_evals,
                                    {key: summarise(per_image[key]) for key in METRICS}, per_image, seconds))
        if progress is not None:
            progress(stage, 1.0)
    return rows


def cogeneration_protocol(
    model: Any,
    dataset: str,
    *,
    rng: torch.Generator,
    images: int = DEFAULT_IMAGES,
    root: str | None = None,
    **options: Any,
) -> list[CogenerationRow]:
    """:func:`evaluate_cogeneration` on the first ``images`` report images of ``dataset``.

    ``options`` are :func:`evaluate_cogeneration`'s keyword options (method, masks, chains,
    max_grad_evals, noise_std, mask_seed, batch, progress). The images are moved to the
    generator's device; ``rng`` must live there too.
    """
    report = load_split(dataset, "report", root=root)
    generator = model.generator if isinstance(model, GenerativeModel) else model
    parameter = next(generator.parameters(), None) if isinstance(generator, torch.nn.Module) else None
    if parameter is not None:  # the images follow the model
        report = report.to(parameter.device)
    if not 1 <= images <= report.shape[0]:
        raise ValueError(f"images must lie in [1, {report.shape[0]}] ({split_description(dataset, 'report')}), "
                         f"got {images}")
    return evaluate_cogeneration(model, report[:images], rng=rng, indices=range(images), **options)


def row_as_dict(row: CogenerationRow) -> dict[str, Any]:
    """A row as plain JSON: settings, then ``{metric: {"mean", "low", "high", "n"}}`` (NaN stays NaN)."""
    return {
        "mask": row.mask, "method": row.method, "images": row.images, "chains": row.chains,
        "max_grad_evals": row.max_grad_evals, "seconds": round(row.seconds, 2),
        **{key: summary._asdict() for key, summary in row.summaries.items()},
    }


_COLUMNS = (("hidden_mse", "hidden MSE", 4), ("ssim", "SSIM", 3), ("within_2_std", "within ±2 std", 3),
            ("crps", "CRPS", 4), ("log_evidence", "log-evidence (nats)", 1), ("noise_std", "noise σ", 3),
            ("grad_evals", "grads / chain", 0))


def _cell(summary: Summary, digits: int) -> str:
    if summary.n == 0:
        return "—"
    if summary.n == 1 or summary.high == summary.low:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} ({summary.low:.{digits}f}–{summary.high:.{digits}f})"


def cogeneration_table(rows: Sequence[CogenerationRow]) -> str:
    """The rows as a markdown table: each metric's mean over images and its 95 % interval."""
    lines = ["| mask | " + " | ".join(title for _, title, _ in _COLUMNS) + " |", "|---" * (len(_COLUMNS) + 1) + "|"]
    for row in rows:
        cells = [_cell(row.summaries[key], digits) for key, _, digits in _COLUMNS]
        lines.append(f"| {row.mask} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
