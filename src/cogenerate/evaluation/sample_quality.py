"""Sample quality from features: Fréchet distance, precision and recall, as pure stages.

features ``(N, F)`` → :func:`feature_statistics` → :func:`frechet_distance` → a number; and
features → :func:`precision_recall` → two numbers. Nothing here knows about images or
networks: :mod:`cogenerate.evaluation.protocol` computes the features with the shipped
classifier (:mod:`cogenerate.evaluation.classifier`) and calls these.

**Fréchet distance** (FD; Dowson & Landau, 1982; as FID, Heusel et al., 2017, eq. 6) between
Gaussians fitted to two feature sets::

    FD = ‖μ_a − μ_b‖² + tr(Σ_a) + tr(Σ_b) − 2 tr((Σ_a Σ_b)^½)

with the sample means and the unbiased sample covariances (divisor N − 1, as ``numpy.cov``
and pytorch-fid). ``tr((Σ_a Σ_b)^½)`` is computed as the sum of the square roots of the
eigenvalues of the symmetric PSD matrix ``Σ_a^½ Σ_b Σ_a^½`` (which has the eigenvalues of
``Σ_a Σ_b``), in float64, with round-off negatives clipped to 0: no ``scipy.linalg.sqrtm``
and no complex parts. FD has a positive bias that shrinks as ``1/N``: compare FDs computed
from the same numbers of samples only.

**Bootstrap interval** (:func:`bootstrap_frechet_distance`): the generated features are
resampled with replacement and FD recomputed. The reference features stay fixed by default:
the protocol's reference images are a fixed part of its definition (the same for every model),
so FD is a function of the generated set alone, and its spread over resamples of that set is
what tells two models apart (``resample_reference=True`` resamples both). A resample holds only
about 63 % of distinct points, so its FD is biased upward like an FD from fewer samples, and
the plain percentile interval can miss the estimate altogether. The interval returned is
therefore the percentile interval moved down by the bootstrap's own bias,
``b = median(FD*) − FD``: ``[q_lo − b, q_hi − b]`` with ``q`` the ``(1 ∓ level)/2``
quantiles of the replicates (the bias correction of Efron & Tibshirani, 1993, §10.6, applied
to the interval's ends), clipped at 0.

**Precision and recall** (Kynkäänniemi et al., 2019, §2, "Improved precision and recall
metric for assessing generative models"), as the authors' code (``precision_recall.py`` of
github.com/kynkaat/improved-precision-and-recall-metric) computes them: the manifold of a
feature set is the union of balls around its points, each with the radius of the distance to
its k-th nearest other point (k = 3). Precision is the share of generated features inside the
real manifold, recall the share of real features inside the generated manifold (a point on a
ball's boundary is inside: ``≤``). The paper uses equal numbers of real and generated
samples; with unequal numbers the larger set is cut into consecutive chunks of the smaller
one's size (the remainder dropped), precision and recall computed per chunk and averaged.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "FeatureStatistics", "PrecisionRecall", "Interval", "feature_statistics", "frechet_distance",
    "frechet_distance_gaussians", "bootstrap_frechet_distance", "precision_recall", "manifold_radii",
    "in_manifold", "K_NEAREST", "BOOTSTRAP_RESAMPLES",
]

K_NEAREST = 3
"""Kynkäänniemi et al. (2019), §2 and Fig. 3: k = 3 balances the two kinds of error."""

BOOTSTRAP_RESAMPLES = 200
"""Resamples of the FD bootstrap; enough for 2.5 % / 97.5 % quantiles to about ±10 % of the width."""


class FeatureStatistics(NamedTuple):
    """Gaussian fit of a feature set: ``mean`` ``(F,)``, ``covariance`` ``(F, F)`` (float64), ``count``."""

    mean: Tensor
    covariance: Tensor
    count: int


class Interval(NamedTuple):
    """A confidence interval ``[low, high]`` at ``level`` (e.g. 0.95)."""

    low: float
    high: float
    level: float


class PrecisionRecall(NamedTuple):
    """Precision and recall (means over chunks) with their spread.

    Attributes:
        precision, recall: in ``[0, 1]``.
        precision_interval, recall_interval: normal 95 % intervals over the chunks, ``None``
            with a single chunk (equal set sizes).
        chunks: how many chunks of the larger set were compared with the smaller one.
        k: the neighbourhood size.
    """

    precision: float
    recall: float
    precision_interval: Interval | None
    recall_interval: Interval | None
    chunks: int
    k: int


def _check_features(features: Tensor, name: str, minimum: int = 2) -> Tensor:
    if features.dim() != 2:
        raise ValueError(f"{name} must be a (N, F) matrix of features, got shape {tuple(features.shape)}")
    if features.shape[0] < minimum:
        raise ValueError(f"{name} needs at least {minimum} samples, got {features.shape[0]}")
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} contains NaN or inf")
    return features.to(torch.float64)


def feature_statistics(features: Tensor) -> FeatureStatistics:
    """Mean and unbiased covariance (divisor N − 1) of ``features`` ``(N, F)``, N ≥ 2, in float64."""
    x = _check_features(features, "features")
    mean = x.mean(0)
    centred = x - mean
    return FeatureStatistics(mean, centred.T @ centred / (x.shape[0] - 1), x.shape[0])


def _sqrt_psd(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance_gaussians(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """Fréchet (2-Wasserstein²) distance between ``N(mean_a, cov_a)`` and ``N(mean_b, cov_b)``.

    Args:
        mean_a, mean_b: ``(F,)``.
        cov_a, cov_b: ``(F, F)`` symmetric positive semi-definite.

    Returns:
        ``‖μ_a − μ_b‖² + tr(Σ_a) + tr(Σ_b) − 2 tr((Σ_a Σ_b)^½)`` (module docstring), ≥ 0.
    """
    mean_a, mean_b, cov_a, cov_b = (t.to(torch.float64) for t in (mean_a, mean_b, cov_a, cov_b))
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (*mean_a.shape, *mean_a.shape):
        raise ValueError(f"means {tuple(mean_a.shape)}, {tuple(mean_b.shape)} and covariances {tuple(cov_a.shape)}, "
                         f"{tuple(cov_b.shape)} do not describe two Gaussians of one dimension")
    root_a = _sqrt_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    value = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(value), 0.0)


def frechet_distance(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """FD between two :class:`FeatureStatistics` (see :func:`frechet_distance_gaussians`)."""
    return frechet_distance_gaussians(a.mean, a.covariance, b.mean, b.covariance)


def _resampled_statistics(x: Tensor, counts: Tensor) -> FeatureStatistics:
    """Statistics of the multiset that holds ``x[i]`` ``counts[i]`` times (a bootstrap resample)."""
    n = int(counts.sum())
    weights = counts.to(x.dtype)
    mean = weights @ x / n
    centred = x - mean
    return FeatureStatistics(mean, (centred * weights[:, None]).T @ centred / (n - 1), n)


def bootstrap_frechet_distance(
    features: Tensor,
    reference: Tensor,
    *,
    rng: torch.Generator,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
    resample_reference: bool = False,
) -> Interval:
    """Bias-corrected percentile-bootstrap interval of the FD between two feature sets (module docstring).

    Args:
        features: ``(N, F)`` e.g. of generated images, resampled with replacement to size N.
        reference: ``(M, F)`` e.g. of the report split; fixed unless ``resample_reference``.
        rng: draws the resamples (a CPU generator).
        resamples: bootstrap replicates.
        level: coverage of the interval, in (0, 1).
        resample_reference: resample the reference features too.

    Returns:
        The ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the replicated FDs, each minus
        the bootstrap bias ``median(FD*) − FD`` and clipped at 0 (module docstring).
    """
    a, b = _check_features(features, "features"), _check_features(reference, "reference")
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    reference_statistics = feature_statistics(b)
    values = []
    for _ in range(resamples):
        count_a = torch.randint(a.shape[0], (a.shape[0],), generator=rng).bincount(minlength=a.shape[0])
        if resample_reference:
            count_b = torch.randint(b.shape[0], (b.shape[0],), generator=rng).bincount(minlength=b.shape[0])
            reference_statistics = _resampled_statistics(b, count_b)
        values.append(frechet_distance(_resampled_statistics(a, count_a), reference_statistics))
    replicates = torch.tensor(values, dtype=torch.float64)
    q = replicates.quantile(torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    bias = float(replicates.median()) - frechet_distance(feature_statistics(a), feature_statistics(b))
    return Interval(max(float(q[0]) - bias, 0.0), max(float(q[1]) - bias, 0.0), level)


def _squared_distances(rows: Tensor, columns: Tensor) -> Tensor:
    """``(R, C)`` squared Euclidean distances, as the authors' ``batch_pairwise_distances``."""
    d = rows.pow(2).sum(1, keepdim=True) - 2 * rows @ columns.T + columns.pow(2).sum(1)
    return d.clamp_min(0)


def manifold_radii(features: Tensor, *, k: int = K_NEAREST, batch_size: int = 1000) -> Tensor:
    """Squared distance of each of ``features`` ``(N, F)`` to its k-th nearest other point: ``(N,)``.

    The distance of a point to itself (0) is the first of its sorted distances, so the k-th
    nearest other point is the (k + 1)-th smallest, as in the authors' code.
    """
    x = _check_features(features, "features", minimum=k + 1)
    return torch.cat([_squared_distances(x[i:i + batch_size], x).kthvalue(k + 1, dim=1).values
                      for i in range(0, x.shape[0], batch_size)])


def in_manifold(probes: Tensor, manifold: Tensor, radii: Tensor, *, batch_size: int = 1000) -> Tensor:
    """``(P,)`` bool: whether each of ``probes`` ``(P, F)`` lies in a ball of ``manifold`` ``(M, F)``
    whose squared radii are ``radii`` ``(M,)`` (boundary included)."""
    p, m = _check_features(probes, "probes", minimum=1), _check_features(manifold, "manifold", minimum=1)
    return torch.cat([(_squared_distances(p[i:i + batch_size], m) <= radii.to(m)).any(1)
                      for i in range(0, p.shape[0], batch_size)])


def _mean_interval(values: list[float]) -> tuple[float, Interval | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = 1.96 * sd / math.sqrt(len(values))
    return mean, Interval(mean - half, mean + half, 0.95)


def precision_recall(real: Tensor, generated: Tensor, *, k: int = K_NEAREST, batch_size: int = 1000) -> PrecisionRecall:
    """Improved precision and recall of ``generated`` ``(N_g, F)`` against ``real`` ``(N_r, F)`` features.

    Both sets need more than ``k`` points. With ``N_g ≠ N_r`` the larger set is compared chunk by
    chunk (module docstring). ``batch_size`` bounds memory and does not change the result.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    real = _check_features(real, "real", minimum=k + 1)
    generated = _check_features(generated, "generated", minimum=k + 1)
    if real.shape[1] != generated.shape[1]:
        raise ValueError(f"real and generated features differ in size: {real.shape[1]} and {generated.shape[1]}")
    size = min(real.shape[0], generated.shape[0])
    chunks = max(real.shape[0], generated.shape[0]) // size
    precisions, recalls = [], []
    real_radii = manifold_radii(real, k=k, batch_size=batch_size) if real.shape[0] == size else None
    gen_radii = manifold_radii(generated, k=k, batch_size=batch_size) if generated.shape[0] == size else None
    for c in range(chunks):
        r = real if real.shape[0] == size else real[c * size:(c + 1) * size]
        g = generated if generated.shape[0] == size else generated[c * size:(c + 1) * size]
        r_radii = real_radii if real_radii is not None else manifold_radii(r, k=k, batch_size=batch_size)
        g_radii = gen_radii if gen_radii is not None else manifold_radii(g, k=k, batch_size=batch_size)
        precisions.append(float(in_manifold(g, r, r_radii, batch_size=batch_size).double().mean()))
        recalls.append(float(in_manifold(r, g, g_radii, batch_size=batch_size).double().mean()))
    precision, precision_interval = _mean_interval(precisions)
    recall, recall_interval = _mean_interval(recalls)
    return PrecisionRecall(precision, recall, precision_interval, recall_interval, chunks, k)
