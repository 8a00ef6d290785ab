"""One tempering step of SMC as two pure tensor functions: reweigh, then resample, retune and move.

Neither function draws random numbers (the sampler draws them first, :func:`step_draws`, in the
order the step uses them) nor branches in Python on tensor values. So ``torch.compile`` can
capture each one whole (:func:`cogenerate.anneal.compiled.make_stepper`), while the eager
sampler runs the very same functions: a compiled run follows the eager one up to rounding.

* :func:`reweigh`: the next β of every observation (the CESS search, cut at the evidence peak
  under empirical Bayes), the incremental weights, the evidence increment, the ESS and which
  observations must resample. No generator call.
* :func:`resample_and_move`: systematic resampling of the observations that must resample
  (per row, a ``torch.where`` between the ancestors and the chains themselves), the mass
  re-tuned from the particles, M HMC moves at β with jittered step sizes, and the step size
  moved toward the target acceptance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from cogenerate.anneal.adaptive import advance
from cogenerate.anneal.tempering import effective_sample_size, retemper, tempered_density, weight_increment
from cogenerate.mcmc.adapt import ParticleTuning, adapt_mass, adapt_step_size
from cogenerate.mcmc.hmc import HMCState, gather_state, hmc_move
from cogenerate.posterior import Evaluation

__all__ = ["Reweighed", "StepDraws", "Moved", "MoveSettings", "reweigh", "systematic_ancestors", "step_draws",
           "resample_and_move"]

# Step sizes are jittered by a uniform factor in [1 − JITTER, 1 + JITTER] per chain and move, so
# that no chain keeps a step size resonant with its trajectory (Neal 2011, §5.4.2.2).
JITTER = 0.2


class Reweighed(NamedTuple):
    """The particles reweighted to the next β, per observation."""

    beta: Tensor  # (B,)
    ceiling: Tensor  # (B,)
    log_z: Tensor  # (B,) log-evidence estimate so far
    log_weights: Tensor  # (B, C), normalised
    ess: Tensor  # (B,) Kish's ESS of the new weights, in particles
    resample: Tensor  # (B,) bool: ESS below the resampling threshold


class StepDraws(NamedTuple):
    """The random numbers of one :func:`resample_and_move`, drawn by :func:`step_draws`."""

    resample: Tensor | None  # (B, 1) uniform offset of systematic resampling; None: nobody resamples
    jitter: tuple[Tensor, ...]  # per move, (B, C) step-size factors
    noise: tuple[Tensor, ...]  # per move, (B, C, D) standard normal (the momenta before the mass)
    uniform: tuple[Tensor, ...]  # per move, (B, C) accept draws


class MoveSettings(NamedTuple):
    """The fixed settings of :func:`resample_and_move` (one run's)."""

    num_leapfrog: int
    adapt_mass: bool
    mass_shrinkage: float
    prior_variance: Tensor | float
    target_acceptance: float
    divergence_threshold: float


class Moved(NamedTuple):
    """What :func:`resample_and_move` returns."""

    state: HMCState
    log_weights: Tensor  # (B, C): uniform where resampled
    tuning: ParticleTuning  # the re-tuned mass, and the step size after the moves
    acceptance: Tensor  # (B, C) mean acceptance probability over the moves
    divergences: Tensor  # () divergent proposals over the moves


def reweigh(log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, ceiling: Tensor, log_z: Tensor, *,
            target_ess: float, resample_threshold: float, correction: Callable[[Tensor], Tensor] | None,
            forced: bool = False) -> Reweighed:
    """Reweigh the particles from ``beta`` to the next β (:func:`~cogenerate.anneal.adaptive.advance`;
    ``forced``: straight to the ceiling) and accumulate the evidence (Del Moral et al. 2006)."""
    new_beta, ceiling = advance(log_weights, log_likelihood, beta, ceiling, target_ess=target_ess,
                                correction=correction, forced=forced)
    increment = weight_increment(new_beta - beta, log_likelihood)
    log_z = log_z + torch.logsumexp(torch.log_softmax(log_weights, -1) + increment, dim=-1)
    log_weights = torch.log_softmax(log_weights + increment, dim=-1)
    ess = effective_sample_size(log_weights)
    return Reweighed(new_beta, ceiling, log_z, log_weights, ess, ess < resample_threshold * log_weights.shape[1])


def systematic_ancestors(log_weights: Tensor, offset: Tensor, num: int | None = None) -> Tensor:
    """Ancestor indices ``(B, num)`` (default ``num = C``) by systematic resampling (Carpenter,
    Clifford & Fearnhead 1999) of each row of ``log_weights`` ``(B, C)``, with the uniform
    offsets ``offset`` ``(B, 1)``."""
    c = log_weights.shape[1]
    num = c if num is None else num
    w = torch.softmax(log_weights, dim=-1)
    cdf = torch.cumsum(w, dim=-1)
    cdf[:, -1] = 1.0
    points = (offset + torch.arange(num, device=w.device, dtype=w.dtype)) / num
    return torch.searchsorted(cdf, points).clamp(max=c - 1)


def step_draws(rng: torch.Generator, position: Tensor, *, resample: bool, moves: int,
               placeholder: bool = False) -> StepDraws:
    """The random numbers of one :func:`resample_and_move` from ``rng``, in the order the eager
    step has always drawn them: the resampling offset (only if some observation ``resample``s),
    then per move the step-size jitter, the momenta and the accept draws.

    ``placeholder``: when nobody resamples, zeros stand in for the offset without drawing it, so
    that a compiled step sees the same inputs every time (its ``torch.where`` keeps every chain).
    """
    b, c, _ = position.shape
    kwargs = dict(device=position.device, dtype=position.dtype)
    offset = None
    if resample:
        offset = torch.rand((b, 1), generator=rng, **kwargs)
    elif placeholder:
        offset = torch.zeros((b, 1), **kwargs)
    jitter, noise, uniform = [], [], []
    for _ in range(moves):
        jitter.append(torch.empty((b, c), **kwargs).uniform_(1 - JITTER, 1 + JITTER, generator=rng))
        noise.append(torch.randn(position.shape, generator=rng, **kwargs))
        uniform.append(torch.rand((b, c), generator=rng, **kwargs))
    return StepDraws(offset, tuple(jitter), tuple(noise), tuple(uniform))


def resample_and_move(evaluate: Callable[[Tensor], Evaluation], state: HMCState, log_weights: Tensor,
                      resample: Tensor, draws: StepDraws, tuning: ParticleTuning, beta: Tensor,
                      settings: MoveSettings) -> Moved:
    """Resample the observations flagged in ``resample`` ``(B,)`` (if ``draws.resample`` is given),
    re-tune the mass from the particles, and move every chain ``len(draws.noise)`` times by HMC
    under ``log p(z) + β·log L(z)`` (``evaluate`` computes the target's pieces at ``z``), then
    move the step size toward the target acceptance (not after zero moves)."""
    b, c = log_weights.shape
    if draws.resample is not None:
        flag = resample.unsqueeze(1)
        keep = torch.arange(c, device=log_weights.device).expand(b, c)
        state = gather_state(state, torch.where(flag, systematic_ancestors(log_weights, draws.resample), keep))
        log_weights = torch.where(flag, torch.full_like(log_weights, -math.log(c)), log_weights)
    if settings.adapt_mass:
        tuning = adapt_mass(tuning, state.position, log_weights, shrinkage=settings.mass_shrinkage,
                            prior_variance=settings.prior_variance)
    acceptance = torch.zeros_like(log_weights)
    divergences = torch.zeros((), dtype=torch.long, device=log_weights.device)
    state = retemper(state, beta)
    density = tempered_density(evaluate, beta)
    moves = len(draws.noise)
    for jitter, noise, uniform in zip(draws.jitter, draws.noise, draws.uniform, strict=True):
        state, info = hmc_move(state, density, noise, uniform, step_size=tuning.step_size * jitter,
                               num_leapfrog=settings.num_leapfrog, inverse_mass=tuning.inverse_mass,
                               divergence_threshold=settings.divergence_threshold)
        acceptance = acceptance + info.acceptance_prob / moves
        divergences = divergences + info.is_divergent.sum()
    if moves:
        tuning = adapt_step_size(tuning, acceptance, target=settings.target_acceptance)
    return Moved(state, log_weights, tuning, acceptance, divergences)
