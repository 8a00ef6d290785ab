"""Hamiltonian Monte Carlo with a step size per chain (Duane et al. 1987; Neal 2011).

Layout follows BlackJAX's ``mcmc/hmc.py``: ``hmc_init(position, ...) -> HMCState`` and a
kernel ``hmc_step(rng, state, ...) -> (HMCState, HMCInfo)`` whose tuning values are plain
arguments. Chains are the leading dimensions ``(B, C)``; the accept/reject is a
``torch.where`` per chain. A proposal whose energy is NaN/inf, or exceeds the starting
energy by more than ``divergence_threshold``, is rejected and reported as divergent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from cogenerate.posterior import Evaluation, Posterior

__all__ = ["HMCState", "HMCInfo", "hmc_init", "hmc_step", "leapfrog", "select"]

# BlackJAX's default (blackjax/mcmc/hmc.py, ``divergence_threshold=1000``).
DIVERGENCE_THRESHOLD = 1000.0

DensityFn = Callable[[Tensor], tuple[Tensor, Tensor, object]]


class HMCState(NamedTuple):
    """Chains at rest: positions ``(B, C, D)`` and the target's cached pieces there."""

    position: Tensor
    evaluation: Evaluation


class HMCInfo(NamedTuple):
    """What one HMC move did, per chain ``(B, C)``."""

    acceptance_prob: Tensor
    is_accepted: Tensor
    is_divergent: Tensor
    energy_change: Tensor  # H(proposal) - H(start)


def sanitize(evaluation: Evaluation) -> Evaluation:
    """NaN log-likelihoods become -inf and non-finite gradients 0, so bad states lose weight
    and are left by the next accepted move instead of poisoning the run."""
    log_lik = torch.nan_to_num(evaluation.log_likelihood, nan=-torch.inf)
    grad = evaluation.grad_log_likelihood
    grad = torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad))
    return evaluation._replace(log_likelihood=log_lik, grad_log_likelihood=grad)


def hmc_init(position: Tensor, posterior: Posterior) -> HMCState:
    """Evaluate the target at ``position`` ``(B, C, D)``: one gradient evaluation per chain."""
    return HMCState(position.detach(), sanitize(posterior.evaluate(position)))


def tempered(evaluation: Evaluation, beta: Tensor) -> tuple[Tensor, Tensor]:
    """``log p(z) + β·log L(z)`` ``(B, C)`` and its gradient ``(B, C, D)``; ``beta`` is ``(B,)``."""
    b = beta.reshape(-1, 1)
    log_density = evaluation.log_prior + b * evaluation.log_likelihood
    log_density = torch.where(b == 0, evaluation.log_prior, log_density)  # 0·(-inf) is 0 here
    grad = evaluation.grad_log_prior + b.unsqueeze(-1) * evaluation.grad_log_likelihood
    return log_density, grad


def leapfrog(
    position: Tensor,
    momentum: Tensor,
    log_density_fn: DensityFn,
    grad: Tensor,
    *,
    step_size: Tensor,
    num_steps: int,
    inverse_mass: Tensor | float = 1.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor, object]:
    """Velocity-Verlet integration of ``num_steps`` steps (Neal 2011, eq. 5.18–5.20).

    Args:
        position, momentum: ``(B, C, D)``.
        log_density_fn: ``z -> (log_density (B, C), grad (B, C, D), aux)``; called
            ``num_steps`` times (one gradient evaluation each).
        grad: the gradient at ``position`` (cached from the previous call).
        step_size: ``(B, C)`` per-chain step sizes.
        inverse_mass: diagonal of M⁻¹, broadcastable to ``(B, C, D)``.

    Returns:
        ``(position, momentum, log_density, grad, aux)`` at the end of the trajectory.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    eps = step_size.unsqueeze(-1)
    momentum = momentum + 0.5 * eps * grad
    log_density = aux = None
    for i in range(num_steps):
        position = position + eps * inverse_mass * momentum
        log_density, grad, aux = log_density_fn(position)
        momentum = momentum + (eps if i < num_steps - 1 else 0.5 * eps) * grad
    return position, momentum, log_density, grad, aux


def kinetic_energy(momentum: Tensor, inverse_mass: Tensor | float) -> Tensor:
    return 0.5 * (momentum.pow(2) * inverse_mass).sum(-1)


def select(keep_new: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per-chain ``torch.where``: ``keep_new`` ``(B, C)`` broadcast over trailing dims."""
    mask = keep_new.reshape(*keep_new.shape, *([1] * (new.dim() - keep_new.dim())))
    return torch.where(mask, new, old)


def select_state(keep_new: Tensor, new: HMCState, old: HMCState) -> HMCState:
    evaluation = Evaluation(*(select(keep_new, n, o) for n, o in zip(new.evaluation, old.evaluation, strict=True)))
    return HMCState(select(keep_new, new.position, old.position), evaluation)


def hmc_step(
    rng: torch.Generator,
    state: HMCState,
    posterior: Posterior,
    *,
    beta: Tensor,
    step_size: Tensor,
    num_leapfrog: int,
    inverse_mass: Tensor | float = 1.0,
    divergence_threshold: float = DIVERGENCE_THRESHOLD,
) -> tuple[HMCState, HMCInfo]:
    """One HMC move of every chain targeting ``p(z) · L(z)^β``.

    Args:
        rng: source of the momenta and the accept draws.
        state: current chains, positions ``(B, C, D)``.
        beta: ``(B,)`` inverse temperature per observation.
        step_size: ``(B, C)``.
        num_leapfrog: leapfrog steps L; the move costs L gradient evaluations per chain.
        inverse_mass: diagonal of M⁻¹ broadcastable to ``(B, C, D)`` (e.g. ``(B, 1, D)``).
    """
    position = state.position
    inv_mass = torch.as_tensor(inverse_mass, dtype=position.dtype, device=position.device)
    noise = torch.randn(position.shape, generator=rng, device=position.device, dtype=position.dtype)
    momentum = noise / inv_mass.sqrt()
    log_density0, grad0 = tempered(state.evaluation, beta)

    def log_density_fn(z: Tensor) -> tuple[Tensor, Tensor, Evaluation]:
        evaluation = sanitize(posterior.evaluate(z))
        log_density, grad = tempered(evaluation, beta)
        return log_density, grad, evaluation

    new_position, new_momentum, log_density1, _, evaluation = leapfrog(
        position, momentum, log_density_fn, grad0,
        step_size=step_size, num_steps=num_leapfrog, inverse_mass=inv_mass,
    )
    energy0 = -log_density0 + kinetic_energy(momentum, inv_mass)
    energy1 = -log_density1 + kinetic_energy(new_momentum, inv_mass)
    delta = energy1 - energy0
    finite1 = torch.isfinite(energy1)
    divergent = ~finite1 | (delta > divergence_threshold)
    # A finite proposal from a non-finite start is always accepted; a non-finite one never.
    log_accept = torch.where(torch.isfinite(energy0), -delta, torch.full_like(delta, torch.inf))
    log_accept = torch.where(finite1, log_accept, torch.full_like(delta, -torch.inf))
    log_accept = torch.nan_to_num(log_accept, nan=-torch.inf).clamp(max=0.0)
    uniform = torch.rand(log_accept.shape, generator=rng, device=position.device, dtype=position.dtype)
    accepted = torch.log(uniform) < log_accept
    proposal = HMCState(new_position, evaluation)
    new_state = select_state(accepted, proposal, state)
    info = HMCInfo(log_accept.exp(), accepted, divergent, delta)
    return new_state, info
