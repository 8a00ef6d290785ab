"""Per-pixel probabilistic scores of completions, and the interval every table row carries.

**CRPS** (continuous ranked probability score; Matheson & Winkler, 1976; Gneiting & Raftery,
2007, §4.2): ``CRPS(F, y) = E|X − y| − ½ E|X − X'|`` for ``X, X'`` independent draws of the
predictive distribution ``F``; lower is better, in the units of the data, and it equals the
absolute error for a point forecast. The predictive distribution of a hidden pixel under the
model ``x = G(z) + ε`` is the mixture of the weighted particles' Gaussians,
``F = Σ_c w_c N(g_c, σ²)`` (``g_c`` the chain's ``G(z)`` at the pixel, ``w_c`` its importance
weight, ``σ`` the observation noise std the method used). Its CRPS has a closed form (for mixtures of normals:
Grimit, Gneiting, Berrocal & Johnson, 2006, QJRMS 132)::

    CRPS = Σ_c w_c A(y − g_c, σ²) − ½ Σ_c Σ_d w_c w_d A(g_c − g_d, 2σ²),
    A(μ, s²) = μ (2Φ(μ/s) − 1) + 2 s φ(μ/s)            (A(μ, 0) = |μ|),

the expected absolute value of ``N(μ, s²)``. With ``σ = 0`` it is the weighted-ensemble
(sample) CRPS ``Σ w_c |g_c − y| − ½ Σ Σ w_c w_d |g_c − g_d|`` (:func:`crps_ensemble`).

**Energy score** (Gneiting & Raftery, 2007, eq. 22 with β = 1): the CRPS of a whole vector,
``ES(F, y) = E‖X − y‖ − ½ E‖X − X'‖`` with the Euclidean norm, for the weighted ensemble
``Σ_c w_c δ(g_c)`` (:func:`energy_score`). Unlike the per-pixel CRPS it also rewards getting the
pixels' joint variation right: an ensemble with the right marginals but independent pixels
scores worse than the posterior's.

**Intervals** (:func:`summarise`): the mean over images with the normal-approximation 95 %
interval ``mean ± 1.96 · sd / √n`` (sd with divisor n − 1), as the image experiments report.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Summary", "summarise", "expected_absolute", "crps_gaussian_mixture", "crps_ensemble", "energy_score", "Z_95"]

Z_95 = 1.959963984540054
"""The 97.5 % quantile of the standard normal: half-width of a 95 % interval in standard errors."""


class Summary(NamedTuple):
    """Mean over images and its 95 % interval; ``n`` finite values went into it (NaN if none)."""

    mean: float
    low: float
    high: float
    n: int


def summarise(values: Tensor) -> Summary:
    """Mean of the finite entries of ``values`` ``(N,)`` and its normal 95 % interval (module docstring).

    NaN entries (e.g. the log-evidence of a method that has none) are left out; with one finite
    value the bounds are NaN, with none everything is NaN.
    """
    finite = values.detach().to("cpu", torch.float64).flatten()
    finite = finite[torch.isfinite(finite)]
    n = int(finite.numel())
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = float(finite.mean())
    if n == 1:
        return Summary(mean, math.nan, math.nan, 1)
    half = Z_95 * float(finite.std()) / math.sqrt(n)
    return Summary(mean, mean - half, mean + half, n)


def expected_absolute(mu: Tensor, std: Tensor) -> Tensor:
    """``E|Y|`` for ``Y ~ N(mu, std²)``: ``μ(2Φ(μ/s) − 1) + 2sφ(μ/s)``, and ``|μ|`` where ``s = 0``."""
    std = torch.as_tensor(std, dtype=mu.dtype, device=mu.device)
    safe = torch.where(std > 0, std, torch.ones_like(std))
    u = mu / safe
    normal_cdf = 0.5 * (1 + torch.erf(u / math.sqrt(2)))
    normal_pdf = torch.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
    value = mu * (2 * normal_cdf - 1) + 2 * safe * normal_pdf
    return torch.where(std > 0, value, mu.abs())


def crps_gaussian_mixture(samples: Tensor, log_weights: Tensor, noise_std: Tensor | float, truth: Tensor) -> Tensor:
    """CRPS of the mixture ``Σ_c w_c N(samples[:, c], σ²)`` at ``truth``, entry by entry.

    Args:
        samples: ``(B, C, *S)`` the chains' values (e.g. ``Completion.samples``).
        log_weights: ``(B, C)`` normalised log-weights (``Completion.log_weights``).
        noise_std: σ, a number or ``(B,)`` (``Completion.noise_std``); 0 gives :func:`crps_ensemble`.
        truth: ``(B, *S)``.

    Returns:
        ``(B, *S)`` CRPS per entry (module docstring for the formula). The pair term runs one
        chain at a time, so memory stays ``O(B·C·S)``.
    """
    if samples.dim() < 2 or samples.shape[:2] != log_weights.shape or truth.shape != (samples.shape[0], *samples.shape[2:]):
        raise ValueError(f"samples (B, C, *S) {tuple(samples.shape)}, log_weights (B, C) {tuple(log_weights.shape)} "
                         f"and truth (B, *S) {tuple(truth.shape)} do not fit together")
    x = samples.to(torch.float64)
    y = truth.to(x)
    extra = (1,) * (x.dim() - 2)
    w = log_weights.to(x).exp().reshape(*log_weights.shape, *extra)  # (B, C, 1...)
    sigma = torch.as_tensor(noise_std, dtype=x.dtype, device=x.device).reshape(-1, *extra)  # (B or 1, 1...)
    first = (w * expected_absolute(y.unsqueeze(1) - x, sigma.unsqueeze(1))).sum(1)
    pair = torch.zeros_like(first)
    for c in range(x.shape[1]):
        spread = expected_absolute(x[:, c:c + 1] - x, math.sqrt(2) * sigma.unsqueeze(1))  # (B, C, *S)
        pair = pair + w[:, c] * (w * spread).sum(1)
    return first - 0.5 * pair


def crps_ensemble(samples: Tensor, log_weights: Tensor, truth: Tensor) -> Tensor:
    """Weighted-ensemble CRPS ``Σ w_c|g_c − y| − ½ ΣΣ w_c w_d|g_c − g_d|``: ``(B, *S)``
    (:func:`crps_gaussian_mixture` with σ = 0)."""
    return crps_gaussian_mixture(samples, log_weights, 0.0, truth)


def energy_score(samples: Tensor, log_weights: Tensor, truth: Tensor) -> Tensor:
    """Weighted-ensemble energy score ``Σ w_c‖g_c − y‖ − ½ ΣΣ w_c w_d‖g_c − g_d‖`` of each
    observation's whole vector (module docstring): ``(B,)`` for ``samples`` ``(B, C, *S)``,
    ``log_weights`` ``(B, C)`` normalised and ``truth`` ``(B, *S)``; lower is better."""
    if samples.dim() < 2 or samples.shape[:2] != log_weights.shape or truth.shape != (samples.shape[0], *samples.shape[2:]):
        raise ValueError(f"samples (B, C, *S) {tuple(samples.shape)}, log_weights (B, C) {tuple(log_weights.shape)} "
                         f"and truth (B, *S) {tuple(truth.shape)} do not fit together")
    x = samples.reshape(*samples.shape[:2], -1).to(torch.float64)  # (B, C, S), S = 1 for scalars
    w = log_weights.to(x).exp()
    first = (w * (x - truth.reshape(truth.shape[0], 1, -1).to(x)).norm(dim=-1)).sum(1)
    pair = (w.unsqueeze(2) * w.unsqueeze(1) * torch.cdist(x, x)).sum((1, 2))
    return first - 0.5 * pair
