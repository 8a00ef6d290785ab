"""Step-size adaptation as small pure functions on per-chain tensors.

Two rules:

* ``paper_rule``: multiply by 1.02 when a chain's acceptance probability is above the
  target and by 0.98 otherwise, clipped to [1e-4, 0.5]. These constants are those of the
  AIS code of Wu et al. (2017, "On the quantitative analysis of decoder-based generative
  models") that Fang & Schwing (2019) build on; the target 0.65 is Neal's (2011).
* dual averaging (Nesterov 2009, as tuned for HMC by Hoffman & Gelman 2014, Alg. 5,
  with their constants γ = 0.05, t₀ = 10, κ = 0.75, μ = log(10 ε₀)), as an
  ``(init, update)`` pair in the manner of NumPyro's ``hmc_util.dual_averaging``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["paper_rule", "DualAveragingState", "dual_averaging_init", "dual_averaging_update"]


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
