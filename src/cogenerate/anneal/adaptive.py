"""Adaptive tempering: choosing the next inverse temperature β from the particles.

The next β of each observation is the largest step whose conditional effective sample size
(Zhou, Johansen & Aston 2016, eq. 3.16) of the incremental weights stays at
``target_ess · C`` (as in BlackJAX's ``adaptive_tempered_smc``), optionally cut where the
evidence of the noise scale that β amounts to peaks (empirical Bayes, :func:`evidence_peak`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["conditional_ess", "next_beta", "evidence_peak", "advance"]

# Next-β search: CESS is evaluated on a log-spaced grid of steps Δβ ∈ (1−β)·[1e-12, 1]
# and then on a linear grid between the bracketing points, both in one batched op each
# (instead of ~60 sequential bisection steps): Δβ is found to ~1 % of itself.
GRID_POINTS = 64
GRID_SMALLEST = 1e-12


def conditional_ess(log_weights: Tensor, increment: Tensor) -> Tensor:
    """CESS / C of incremental log-weights ``increment`` under normalised ``log_weights``,
    both ``(B, C)`` -> ``(B,)`` in [1/C, 1] (Zhou, Johansen & Aston 2016)."""
    w = torch.softmax(log_weights, dim=-1)
    shifted = increment - increment.max(dim=-1, keepdim=True).values
    shifted = torch.nan_to_num(shifted, nan=-torch.inf)
    g = shifted.exp()
    return (w * g).sum(-1).pow(2) / (w * g.pow(2)).sum(-1).clamp_min(torch.finfo(g.dtype).tiny)


def _cess_at(log_weights: Tensor, log_likelihood: Tensor, deltas: Tensor) -> Tensor:
    """CESS / C ``(B, K)`` for every candidate step ``deltas`` ``(B, K)`` (all ≥ 0) at once.

    As :func:`conditional_ess` of the increments ``δ·log L`` in five passes over ``(B, K, C)``:
    for δ ≥ 0 the largest increment is δ·max log L, so one shift of log L serves every δ, and
    g² is g·g. A NaN log-likelihood counts as −∞ (that particle drops out of every step > 0).
    """
    w = torch.softmax(log_weights, dim=-1).unsqueeze(1)  # (B, 1, C)
    log_lik = torch.where(log_likelihood.isnan(), -torch.inf, log_likelihood)
    top = log_lik.amax(-1, keepdim=True)
    relative = log_lik - torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    # −∞ → the most negative finite number, so that a step of 0 gives g = exp(0·x) = 1, not NaN.
    relative = relative.clamp_min(torch.finfo(relative.dtype).min)
    g = torch.exp(deltas.unsqueeze(-1) * relative.unsqueeze(1))  # (B, K, C) in [0, 1]
    wg = w * g
    return wg.sum(-1).pow(2) / (wg * g).sum(-1).clamp_min(torch.finfo(g.dtype).tiny)


def _last_true(ok: Tensor) -> Tensor:
    """Index of the last True per row of ``ok`` ``(B, K)``, -1 where none."""
    k = ok.shape[-1]
    positions = torch.arange(1, k + 1, device=ok.device).expand_as(ok)
    return (positions * ok).amax(-1) - 1


def next_beta(
    log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, *, target_ess: float, ceiling: Tensor | None = None
) -> Tensor:
    """The largest β' ∈ (β, ceiling] per observation whose conditional ESS ≥ ``target_ess``
    (to ~1 % of the step; never below the target).

    ``log_weights``, ``log_likelihood``: ``(B, C)``; ``beta``, ``ceiling``: ``(B,)``
    (default ceiling 1). Observations at their ceiling stay there.
    """
    ceiling = torch.ones_like(beta) if ceiling is None else ceiling
    remaining = (ceiling - beta).clamp_min(0.0)
    exponents = torch.linspace(math.log10(GRID_SMALLEST), 0.0, GRID_POINTS, device=beta.device, dtype=beta.dtype)
    coarse = remaining.unsqueeze(1) * torch.pow(10.0, exponents)  # (B, K), last column = remaining
    index = _last_true(_cess_at(log_weights, log_likelihood, coarse) >= target_ess)
    rows = torch.arange(len(beta), device=beta.device)
    low = torch.where(index >= 0, coarse[rows, index.clamp_min(0)], torch.zeros_like(remaining))
    high = coarse[rows, (index + 1).clamp(max=GRID_POINTS - 1)]
    fine = low.unsqueeze(1) + (high - low).unsqueeze(1) * torch.linspace(0, 1, GRID_POINTS, device=beta.device,
                                                                          dtype=beta.dtype)
    fine_index = _last_true(_cess_at(log_weights, log_likelihood, fine) >= target_ess)
    delta = fine[rows, fine_index.clamp_min(0)]
    # Never stall at β (a zero step would loop forever): take the smallest grid step.
    delta = torch.where(delta > 0, delta, coarse[:, 0])
    return torch.where(beta >= ceiling, beta, torch.minimum(beta + delta, ceiling))


def evidence_peak(
    log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, upper: Tensor, correction: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """The β' ∈ [β, upper] that maximises the estimated evidence of the noise scale s_β'.

    The β-tempered target of a Gaussian (Laplace) likelihood with scale s is the posterior
    at the scale s·β^(-1/2) (s·β^(-1)), so ``log Z(β') + correction(β')`` is the log
    evidence of that scale; ``log Z(β') − log Z(β)`` is estimated from the current
    particles by importance sampling. Returns the maximiser ``(B,)`` and whether it lies
    before ``upper`` ``(B,)`` (the evidence peaks within the step: stop tempering there).
    """
    # Fractions of the step: log- and linearly spaced, sorted, 1 once (a static shape, for torch.compile).
    t = torch.cat([torch.logspace(-6, 0, GRID_POINTS, device=beta.device, dtype=beta.dtype)[:-1],
                   torch.linspace(0, 1, GRID_POINTS, device=beta.device, dtype=beta.dtype)]).sort().values
    candidates = beta.unsqueeze(1) + (upper - beta).unsqueeze(1) * t  # (B, K), last column = upper
    delta = (candidates - beta.unsqueeze(1)).unsqueeze(-1)
    increment = torch.where(delta == 0, 0.0, delta * log_likelihood.unsqueeze(1))
    log_z = torch.logsumexp(torch.log_softmax(log_weights, -1).unsqueeze(1) + increment, dim=-1)
    evidence = torch.nan_to_num(log_z + correction(candidates), nan=-torch.inf)
    index = evidence.argmax(1)
    peak = candidates[torch.arange(len(beta), device=beta.device), index]
    return peak, (index < candidates.shape[1] - 1) & (beta < upper)


def advance(
    log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, ceiling: Tensor, *, target_ess: float,
    correction: Callable[[Tensor], Tensor] | None, forced: bool = False,
) -> tuple[Tensor, Tensor]:
    """The next β and ceiling ``(B,)``: the CESS step (or, ``forced``, straight to the ceiling),
    cut at the evidence peak under empirical Bayes, which then becomes the ceiling."""
    new_beta = ceiling if forced else next_beta(log_weights, log_likelihood, beta, target_ess=target_ess,
                                                ceiling=ceiling)
    if correction is None:
        return new_beta, ceiling
    peak, inside = evidence_peak(log_weights, log_likelihood, beta, new_beta, correction)
    settled = inside | forced
    return peak, torch.where(settled, peak, ceiling)
