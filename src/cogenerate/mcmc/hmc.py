"""Hamiltonian Monte Carlo with a step size per chain (Duane et al. 1987; Neal 2011).

Layout follows BlackJAX's ``mcmc/hmc.py``: ``hmc_init(position, log_density_fn) -> HMCState``
and a kernel ``hmc_step(rng, state, log_density_fn, ...) -> (HMCState, HMCInfo)`` whose tuning
values are plain arguments. The kernel knows nothing of generators or posteriors: it moves
positions under a log-density function ``z -> (log_density, grad, aux)``, where ``aux`` is
anything the function wants to keep per chain (a tuple of ``(B, C, ...)`` tensors, e.g. the
generator's sample), carried in the state so that callers need not recompute it. Chains are
the leading dimensions ``(B, C)``; the accept/reject is a ``torch.where`` per chain. A proposal
whose energy is NaN/inf, or exceeds the starting energy by more than ``divergence_threshold``,
is rejected and reported as divergent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "HMCState", "HMCInfo", "DensityFn", "hmc_init", "hmc_step", "hmc_draws", "hmc_move", "leapfrog", "select",
    "select_state", "gather_state",
]

# BlackJAX's default (blackjax/mcmc/hmc.py, ``divergence_threshold=1000``).
DIVERGENCE_THRESHOLD = 1000.0

DensityFn = Callable[[Tensor], tuple[Tensor, Tensor, Any]]
"""``z (B, C, D) -> (log_density (B, C), grad (B, C, D), aux)``."""


class HMCState(NamedTuple):
    """Chains at rest: positions ``(B, C, D)``, the log density ``(B, C)`` and its gradient
    ``(B, C, D)`` there, and the density function's ``aux`` (a tuple of ``(B, C, ...)`` tensors)."""

    position: Tensor
    log_density: Tensor
    grad: Tensor
    aux: Any


class HMCInfo(NamedTuple):
    """What one HMC move did, per chain ``(B, C)``."""

    acceptance_prob: Tensor
    is_accepted: Tensor
    is_divergent: Tensor
    energy_change: Tensor  # H(proposal) - H(start)


def hmc_init(position: Tensor, log_density_fn: DensityFn) -> HMCState:
    """Evaluate the target at ``position`` ``(B, C, D)``: one gradient evaluation per chain."""
    log_density, grad, aux = log_density_fn(position.detach())
    return HMCState(position.detach(), log_density, grad, aux)


def leapfrog(
    position: Tensor,
    momentum: Tensor,
    log_density_fn: DensityFn,
    grad: Tensor,
    *,
    step_size: Tensor,
    num_steps: int,
    inverse_mass: Tensor | float = 1.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Any]:
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


def _map_aux(fn: Callable[..., Tensor], *auxes: Any) -> Any:
    """Apply ``fn`` field by field to ``aux`` values (a tensor, a (named) tuple of tensors, or None)."""
    first = auxes[0]
    if first is None:
        return None
    if isinstance(first, Tensor):
        return fn(*auxes)
    fields = [fn(*parts) for parts in zip(*auxes, strict=True)]
    return type(first)(*fields) if hasattr(first, "_fields") else type(first)(fields)


def select_state(keep_new: Tensor, new: HMCState, old: HMCState) -> HMCState:
    """Per chain, the ``new`` state where ``keep_new`` ``(B, C)``, else the ``old`` one."""
    return HMCState(
        select(keep_new, new.position, old.position),
        select(keep_new, new.log_density, old.log_density),
        select(keep_new, new.grad, old.grad),
        _map_aux(lambda n, o: select(keep_new, n, o), new.aux, old.aux),
    )


def gather_state(state: HMCState, index: Tensor) -> HMCState:
    """``state`` with chain ``c`` of observation ``b`` replaced by chain ``index[b, c]`` (resampling).

    One ``index_select`` on the flattened ``(B·C, ...)`` chains per tensor (a copy: the same
    values as ``torch.gather`` along the chain dimension, without expanding the index)."""
    b, c = index.shape
    flat = (index + c * torch.arange(b, device=index.device).unsqueeze(1)).reshape(-1)

    def gather(tensor: Tensor) -> Tensor:
        return tensor.reshape(b * c, *tensor.shape[2:]).index_select(0, flat).reshape(tensor.shape)

    return HMCState(gather(state.position), gather(state.log_density), gather(state.grad), _map_aux(gather, state.aux))


def hmc_draws(rng: torch.Generator, position: Tensor) -> tuple[Tensor, Tensor]:
    """The random numbers of one HMC move, drawn from ``rng`` in the order :func:`hmc_step` uses:
    standard normal ``(B, C, D)`` (momenta before scaling by the mass) and uniform ``(B, C)``
    (the accept draws). Drawing them before the trajectory lets a compiled move take them as
    inputs (a compiled graph cannot draw from a ``torch.Generator``)."""
    noise = torch.randn(position.shape, generator=rng, device=position.device, dtype=position.dtype)
    uniform = torch.rand(position.shape[:-1], generator=rng, device=position.device, dtype=position.dtype)
    return noise, uniform


def hmc_move(
    state: HMCState,
    log_density_fn: DensityFn,
    noise: Tensor,
    uniform: Tensor,
    *,
    step_size: Tensor,
    num_leapfrog: int,
    inverse_mass: Tensor | float = 1.0,
    divergence_threshold: float = DIVERGENCE_THRESHOLD,
) -> tuple[HMCState, HMCInfo]:
    """One HMC move given its random numbers (:func:`hmc_draws`): no randomness of its own and
    no data-dependent Python control flow, so ``torch.compile`` can capture it whole when
    ``log_density_fn`` is traceable (:mod:`cogenerate.anneal.compiled`).

    Args:
        noise: ``(B, C, D)`` standard normal draws; the momenta are ``noise / sqrt(M⁻¹)``.
        uniform: ``(B, C)`` uniform draws for the Metropolis–Hastings accept.
        The rest as in :func:`hmc_step`.
    """
    position = state.position
    inv_mass = torch.as_tensor(inverse_mass, dtype=position.dtype, device=position.device)
    momentum = noise / inv_mass.sqrt()
    new_position, new_momentum, log_density1, grad1, aux = leapfrog(
        position, momentum, log_density_fn, state.grad,
        step_size=step_size, num_steps=num_leapfrog, inverse_mass=inv_mass,
    )
    energy0 = -state.log_density + kinetic_energy(momentum, inv_mass)
    energy1 = -log_density1 + kinetic_energy(new_momentum, inv_mass)
    delta = energy1 - energy0
    finite1 = torch.isfinite(energy1)
    divergent = ~finite1 | (delta > divergence_threshold)
    # A finite proposal from a non-finite start is always accepted; a non-finite one never.
    log_accept = torch.where(torch.isfinite(energy0), -delta, torch.full_like(delta, torch.inf))
    log_accept = torch.where(finite1, log_accept, torch.full_like(delta, -torch.inf))
    log_accept = torch.nan_to_num(log_accept, nan=-torch.inf).clamp(max=0.0)
    accepted = torch.log(uniform) < log_accept
    proposal = HMCState(new_position, log_density1, grad1, aux)
    new_state = select_state(accepted, proposal, state)
    info = HMCInfo(log_accept.exp(), accepted, divergent, delta)
    return new_state, info


def hmc_step(
    rng: torch.Generator,
    state: HMCState,
    log_density_fn: DensityFn,
    *,
    step_size: Tensor,
    num_leapfrog: int,
    inverse_mass: Tensor | float = 1.0,
    divergence_threshold: float = DIVERGENCE_THRESHOLD,
) -> tuple[HMCState, HMCInfo]:
    """One HMC move of every chain under ``log_density_fn``: :func:`hmc_draws`, then :func:`hmc_move`.

    Args:
        rng: source of the momenta and the accept draws.
        state: current chains, positions ``(B, C, D)``, with ``log_density`` and ``grad``
            computed by the same ``log_density_fn``.
        log_density_fn: the target, ``z -> (log_density, grad, aux)``.
        step_size: ``(B, C)``.
        num_leapfrog: leapfrog steps L; the move costs L gradient evaluations per chain.
        inverse_mass: diagonal of M⁻¹ broadcastable to ``(B, C, D)`` (e.g. ``(B, 1, D)``).
    """
    noise, uniform = hmc_draws(rng, state.position)
    return hmc_move(state, log_density_fn, noise, uniform, step_size=step_size, num_leapfrog=num_leapfrog,
                    inverse_mass=inverse_mass, divergence_threshold=divergence_threshold)
