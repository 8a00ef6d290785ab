"""Discriminator-driven latent sampling (Che, Zhang, Sohl-Dickstein, Larochelle, Paull, Cao &
Bengio, "Your GAN is Secretly an Energy-based Model and You Should Use Discriminator Driven
Latent Sampling", NeurIPS 2020, arXiv:2003.06060).

If ``d(x) = log p_data(x) / p_G(x)``, pushing the latent density

    p_t(z) ∝ p_0(z) · exp(d(G(z))) = exp(−E(z)),    E(z) = −log p_0(z) − d(G(z))

through the generator gives ``p_data`` (seeds/lecture-merging-vae-and-gans.txt, "Your GAN is
secretly an energy based model"). With the standard normal prior ``E(z) = ½‖z‖² − d(G(z))``
(up to a constant): the same energy as co-generation's target with nothing observed and the
critic term at weight 1. DDLS samples ``p_t`` by Langevin dynamics in latent space
(the paper's Algorithm 1)::

    z ← z − (ε/2) ∇E(z) + √ε · ξ,    ξ ~ N(0, I)

Constants: step size ``ε = 0.01`` and the unadjusted update, as in the paper's experiments; the
paper notes that "in practice we will use a small, finite, value for ε", and that a
Metropolis–Hastings correction (MALA) can be added to remove its bias (``adjusted=True`` here).
The authors released no code (an unofficial reimplementation, "cGan with DDLS", says as much),
so the step size comes from the paper's text only. The number of steps is ours to choose: the
default :data:`DDLS_STEPS` is a long chain; every measurement reports the steps it used.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, distributions

from cogenerate.models.base import GenerativeModel
from cogenerate.posterior import frozen_generator
from cogenerate.sampling.common import Critic, SampleResult, check_count, critic_of, draw_latents, reference

__all__ = ["DDLS_STEPS", "DDLS_STEP_SIZE", "ddls", "latent_energy"]

DDLS_STEP_SIZE = 0.01
"""Langevin step size ε (Che et al. 2020)."""

DDLS_STEPS = 1000
"""Default Langevin steps: a long chain (mixing time of a unit-scale target at ε = 0.01 is ~100 steps);
not a value taken from the paper."""


def _log_prior(model: GenerativeModel, z: Tensor) -> Tensor:
    if model.prior is None:
        return -0.5 * z.pow(2).sum(-1)
    base = model.prior.base_dist if isinstance(model.prior, distributions.Independent) else model.prior
    if not isinstance(base, distributions.Normal):
        raise ValueError(f"DDLS needs a differentiable latent prior (a Normal); this model's is {model.prior!r}")
    return model.prior.log_prob(z)


def latent_energy(model: GenerativeModel, critic: Critic, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``E(z) = −log p_0(z) − d(G(z))`` ``(N,)``, its gradient ``(N, D)`` and ``G(z)`` (detached)
    at latents ``z`` ``(N, D)``; one gradient evaluation."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        x = model.generator(z)
        energy = -_log_prior(model, z) - critic(x).reshape(-1)
        (grad,) = torch.autograd.grad(energy.sum(), z)
    return energy.detach(), grad, x.detach()


def ddls(
    model: GenerativeModel,
    *,
    n: int,
    rng: torch.Generator,
    critic: Critic | None = None,
    step_size: float = DDLS_STEP_SIZE,
    steps: int = DDLS_STEPS,
    adjusted: bool = False,
    max_batch: int = 1000,
) -> SampleResult:
    """Draw ``n`` samples ``G(z)`` with ``z`` from ``steps`` Langevin steps on ``E(z)`` started at the prior.

    The chains run in groups of ``max_batch`` (the chain is the leading dimension); each group
    draws its starting latents and then its noise from ``rng`` in order.

    Args:
        model: the generator (and, without ``critic``, its ``log_ratio``); its prior must be
            a Normal (standard normal when ``model.prior`` is None).
        n: chains, i.e. samples.
        rng: source of the starting latents, the noise and (adjusted) the uniforms.
        critic: ``d``: ``x -> log p_data(x) / p_G(x)`` estimates ``(N,)``; default ``model.log_ratio``.
        step_size: ``ε > 0``.
        steps: Langevin steps (0 returns plain prior samples).
        adjusted: accept or reject each step with the Metropolis–Hastings ratio of the Langevin
            proposal (MALA), which makes ``p_t`` exactly invariant.
        max_batch: chains per generator call.

    Returns:
        A :class:`~cogenerate.sampling.common.SampleResult`; ``generator_calls`` counts gradient
        evaluations (``n · (steps + 1)``); ``acceptance_rate`` is MALA's (1 when unadjusted);
        ``stats`` has the constants and the mean final energy.
    """
    n, steps, max_batch = check_count("n", n), check_count("steps", steps, minimum=0), check_count("max_batch", max_batch)
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    critic = critic_of(model, critic)
    samples, latents, energies = [], [], []
    accepted = 0.0
    with frozen_generator(*model.modules.values()):
        like = reference(model, rng)
        for start in range(0, n, max_batch):
            z = draw_latents(model, min(max_batch, n - start), rng=rng, like=like)
            energy, grad, x = latent_energy(model, critic, z)
            for _ in range(steps):
                noise = torch.randn(z.shape, generator=rng, device=like.device, dtype=like.dtype)
                proposal = z - 0.5 * step_size * grad + math.sqrt(step_size) * noise
                new_energy, new_grad, new_x = latent_energy(model, critic, proposal)
                if adjusted:
                    forward = (proposal - z + 0.5 * step_size * grad).pow(2).sum(-1)
                    backward = (z - proposal + 0.5 * step_size * new_grad).pow(2).sum(-1)
                    log_alpha = energy - new_energy + (forward - backward) / (2 * step_size)
                    u = torch.rand(z.shape[0], generator=rng, device=like.device, dtype=like.dtype)
                    keep = torch.log(u) < torch.nan_to_num(log_alpha, nan=-torch.inf)
                    accepted += keep.sum().item()
                else:
                    keep = torch.ones(z.shape[0], dtype=torch.bool, device=like.device)
                z = torch.where(keep.unsqueeze(-1), proposal, z)
                grad = torch.where(keep.unsqueeze(-1), new_grad, grad)
                energy = torch.where(keep, new_energy, energy)
                x = torch.where(keep.reshape(-1, *[1] * (x.dim() - 1)), new_x, x)
            samples.append(x)
            latents.append(z)
            energies.append(energy)
    rate = accepted / (n * steps) if adjusted and steps else 1.0
    stats = {"method": "ddls", "step_size": step_size, "steps": steps, "adjusted": adjusted,
             "final_energy_mean": torch.cat(energies).mean().item()}
    return SampleResult(samples=torch.cat(samples), latents=torch.cat(latents), acceptance_rate=rate,
                        generator_calls=n * (steps + 1), stats=stats)
