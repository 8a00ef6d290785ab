"""Kernel adaptation: step sizes and mass matrices, as small pure functions on per-chain tensors.

Step-size rules:

* ``paper_rule``: multiply by 1.02 when a chain's acceptance probability is above the
  target and by 0.98 otherwise, clipped to [1e-4, 0.5]. These constants are those of the
  AIS code of Wu et al. (2017, "On the quantitative analysis of decoder-based generative
  models") that Fang & Schwing (2019) build on; the target 0.65 is Neal's (2011).
* dual averaging (Nesterov 2009, as tuned for HMC by Hoffman & Gelman 2014, Alg. 5,
  with their constants γ = 0.05, t₀ = 10, κ = 0.75, μ = log(10 ε₀)), as an
  ``(init, update)`` pair in the manner of NumPyro's ``hmc_util.dual_averaging``;
* the population rule of adaptive SMC (:func:`particle_tuning_init`,
  :func:`adapt_step_size`, :func:`adapt_mass`): one step size per observation moved by a
  Robbins–Monro step on ``log ε`` toward the target acceptance after every mutation, and a
  diagonal inverse mass matrix equal to the particles' weighted variance (Chopin 2002;
  Buchholz, Chopin & Jacob 2021, §2.1), optionally shrunk toward the prior's variance by a
  few pseudo-particles, in the manner of Stan's regularised metric estimate (Stan Reference
  Manual, "HMC algorithm parameters": ``n/(n+5)·var + 10⁻³·5/(n+5)`` for n warm-up draws).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "paper_rule",
    "DualAveragingState",
    "dual_averaging_init",
    "dual_averaging_update",
    "ParticleTuning",
    "particle_tuning_init",
    "adapt_step_size",
    "adapt_mass",
]

# The inverse mass matrix is kept within these bounds (a particle cloud that collapses onto
# one point, or spreads to infinity, must not produce a zero or infinite step).
MASS_BOUNDS = (1e-6, 1e6)


def paper_rule(
    step_size: Tensor,
    acceptance_prob: Tensor,
    *,
    target: float = 0.65,
    increase: float = 1.02,
    decrease: float = 0.98,
    minimum: float = 1e-4,
    maximum: float = 0.5,
) -> Tensor:
    """Per-chain multiplicative update toward ``target`` acceptance; shapes ``(B, C)``."""
    factor = torch.where(acceptance_prob > target, increase, decrease)
    return (step_size * factor).clamp(minimum, maximum)


class DualAveragingState(NamedTuple):
    """Per-chain dual-averaging state; every field has the step sizes' shape."""

    log_step: Tensor  # current iterate log ε_t
    log_step_avg: Tensor  # averaged iterate log ε̄_t (use after adaptation ends)
    error_avg: Tensor  # H̄_t, running average of (target - acceptance)
    count: int  # t
    mu: Tensor  # shrinkage point log(10 ε₀)


def dual_averaging_init(step_size: Tensor) -> DualAveragingState:
    """Start dual averaging from initial step sizes ``ε₀`` (any shape)."""
    log_step = step_size.log()
    return DualAveragingState(
        log_step=log_step,
        log_step_avg=torch.zeros_like(log_step),
        error_avg=torch.zeros_like(log_step),
        count=0,
        mu=log_step + math.log(10.0),
    )


def dual_averaging_update(
    state: DualAveragingState,
    acceptance_prob: Tensor,
    *,
    target: float = 0.65,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> DualAveragingState:
    """One dual-averaging update (Hoffman & Gelman 2014, eq. 6); ``exp(log_step)`` is the
    step size to use next, ``exp(log_step_avg)`` the one to keep after adaptation."""
    t = state.count + 1
    eta = 1.0 / (t + t0)
    error_avg = (1 - eta) * state.error_avg + eta * (target - acceptance_prob)
    log_step = state.mu - math.sqrt(t) / gamma * error_avg
    weight = t ** (-kappa)
    log_step_avg = weight * log_step + (1 - weight) * state.log_step_avg
    return DualAveragingState(log_step, log_step_avg, error_avg, t, state.mu)


class ParticleTuning(NamedTuple):
    """An SMC kernel's tuning, shared by the chains of an observation."""

    step_size: Tensor  # (B, 1), in units of the particles' standard deviation
    inverse_mass: Tensor  # (B, 1, D): diagonal of M⁻¹


def particle_tuning_init(batch: int, dim: int, *, step_size: float | None = None,
                         like: Tensor) -> ParticleTuning:
    """Unit mass and ``step_size`` (default ``0.5 · D^(-1/4)``, the dimension scaling of optimal
    HMC step sizes, Beskos et al. 2013) for ``batch`` observations of ``dim`` latents."""
    eps = step_size if step_size is not None else 0.5 * dim**-0.25
    return ParticleTuning(
        step_size=torch.full((batch, 1), eps, device=like.device, dtype=like.dtype),
        inverse_mass=torch.ones((batch, 1, dim), device=like.device, dtype=like.dtype),
    )


def adapt_step_size(tuning: ParticleTuning, acceptance_prob: Tensor, *, target: float = 0.65) -> ParticleTuning:
    """Robbins–Monro step on ``log ε`` per observation: ``ε ← ε · exp(mean acceptance − target)``;
    ``acceptance_prob`` is ``(B, C)``."""
    step = tuning.step_size * torch.exp(acceptance_prob.mean(1, keepdim=True) - target)
    return tuning._replace(step_size=step)


def adapt_mass(tuning: ParticleTuning, position: Tensor, log_weights: Tensor, *, shrinkage: float = 0.0,
               prior_variance: Tensor | float = 1.0) -> ParticleTuning:
    """Inverse mass = the weighted variance of the particles ``(B, C, D)`` per observation and
    latent dimension, with weights ``(B, C)`` (log, any normalisation).

    ``shrinkage`` = k adds k pseudo-particles at ``prior_variance``:
    ``(C·var + k·prior_variance) / (C + k)``. A small population that has narrowed onto part
    of the posterior (after resampling, or when its moves were too short) otherwise sets its
    own steps by its own narrowness and stays narrow; a few pseudo-particles keep the moves
    wide enough to spread it again, and vanish for large C.
    """
    w = torch.softmax(log_weights, dim=-1).unsqueeze(-1)
    mean = (w * position).sum(1, keepdim=True)
    variance = (w * (position - mean).pow(2)).sum(1, keepdim=True)
    if shrinkage:
        count = position.shape[1]
        variance = (count * variance + shrinkage * prior_variance) / (count + shrinkage)
    return tuning._replace(inverse_mass=variance.clamp(*MASS_BOUNDS))
