"""MH-GAN: independent Metropolis–Hastings over generator samples (Turner, Hung, Frank,
Saatci & Yosinski, "Metropolis-Hastings Generative Adversarial Networks", ICML 2019,
arXiv:1811.11357).

The proposal is the generator itself, ``x' ~ p_G``, independent of the current state ``x``.
For the target ``p_data`` the Metropolis–Hastings acceptance probability is then

    α = min(1, [p_data(x') / p_G(x')] / [p_data(x) / p_G(x)]) = min(1, exp(D̃(x') − D̃(x)))

with ``D̃ = log p_data / p_G`` the (calibrated) critic, so the chain needs no density of the
generator. After ``K`` proposals the chain's state is one sample.

Constants, from the authors' official code (uber-research/metropolis-hastings-gans):

- chain length ``K = 640`` (``mhgan/demo_mhgan.py``: ``chain_batches = 10`` batches of
  ``batch_size = 64`` generator samples per picked image);
- each chain starts at a real sample drawn at random from held-out data, "to avoid burn-in"
  (``enhance_samples``: ``init_idx = np.random.choice(len(scores_real_df))``); a chain that
  never accepts a proposal would return that real image, so it is run again from its first
  proposal instead (``if idx == 0: ... init from first fake``). We run the restarted chain
  beside the main one on the same proposals, with its own uniforms, and use it only where the
  main chain never moved.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cogenerate.models.base import GenerativeModel
from cogenerate.posterior import frozen_generator
from cogenerate.sampling.common import (
    Critic, SampleResult, check_count, critic_of, draw_latents, generate, reference, score,
)

__all__ = ["MH_CHAIN_LENGTH", "mh_gan"]

MH_CHAIN_LENGTH = 640
"""Proposals per chain (MH-GAN official code: 10 batches of 64)."""


def mh_gan(
    model: GenerativeModel,
    real: Tensor,
    *,
    n: int,
    rng: torch.Generator,
    critic: Critic | None = None,
    chain_length: int = MH_CHAIN_LENGTH,
    max_batch: int = 1000,
) -> SampleResult:
    """Draw ``n`` samples, one per independent Metropolis–Hastings chain of ``chain_length`` proposals.

    The ``n`` chains run side by side (the chain is the leading dimension; accept/reject with
    ``torch.where``): at each step every chain proposes one fresh generator sample.

    Args:
        model: the generator (and, without ``critic``, its ``log_ratio``).
        real: ``(M, *x_shape)`` held-out real samples to start the chains from (drawn with
            replacement); never the images that results are reported on.
        n: chains, i.e. samples returned.
        rng: the starting images, latents and uniforms all come from it.
        critic: ``x -> log p_data(x) / p_G(x)`` estimates ``(N,)``; default ``model.log_ratio``.
        chain_length: proposals per chain ``K``.
        max_batch: images per generator / critic call.

    Returns:
        A :class:`~cogenerate.sampling.common.SampleResult` whose samples are all generator
        samples; ``acceptance_rate`` is over the main chains' proposals; ``stats`` has
        ``chain_length`` and ``restarted`` (the fraction of chains that never left their real
        starting image and took the restarted chain's state).
    """
    n, chain_length = check_count("n", n), check_count("chain_length", chain_length)
    max_batch = check_count("max_batch", max_batch)
    if real.dim() < 2 or real.shape[0] < 1:
        raise ValueError(f"real must be a non-empty batch (M, *x_shape), got shape {tuple(real.shape)}")
    critic = critic_of(model, critic)
    with frozen_generator(*model.modules.values()):
        like = reference(model, rng)
        start = torch.randint(0, real.shape[0], (n,), generator=rng, device=like.device)
        x = real[start.to(real.device)].to(like)
        log_ratio = score(critic, x, max_batch=max_batch).to(like)
        at_real = torch.ones(n, dtype=torch.bool, device=like.device)
        z = torch.zeros(n, model.latent_dim, device=like.device, dtype=like.dtype)
        restart_x, restart_z, restart_log_ratio = x, z, log_ratio  # replaced by the first proposal
        accepted = torch.zeros((), device=like.device)
        for step in range(chain_length):
            z_new = draw_latents(model, n, rng=rng, like=like)
            x_new = generate(model, z_new, max_batch=max_batch)
            log_ratio_new = score(critic, x_new, max_batch=max_batch).to(like)
            u = torch.rand(2, n, generator=rng, device=like.device, dtype=like.dtype)
            accept = torch.log(u[0]) < log_ratio_new - log_ratio
            restart_accept = (torch.log(u[1]) < log_ratio_new - restart_log_ratio) | (step == 0)
            x, z, log_ratio = _where(accept, (x_new, z_new, log_ratio_new), (x, z, log_ratio))
            restart_x, restart_z, restart_log_ratio = _where(
                restart_accept, (x_new, z_new, log_ratio_new), (restart_x, restart_z, restart_log_ratio))
            at_real &= ~accept
            accepted = accepted + accept.sum()
        x, z, _ = _where(at_real, (restart_x, restart_z, restart_log_ratio), (x, z, log_ratio))
    stats = {"method": "mh", "chain_length": chain_length, "restarted": at_real.float().mean().item(), "chains": n}
    return SampleResult(samples=x, latents=z, acceptance_rate=accepted.item() / (n * chain_length),
                        generator_calls=n * chain_length, stats=stats)


def _where(condition: Tensor, new: tuple[Tensor, ...], old: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Per chain: ``new`` where ``condition`` ``(n,)`` holds, else ``old``."""
    return tuple(torch.where(condition.reshape(-1, *[1] * (a.dim() - 1)), a, b) for a, b in zip(new, old, strict=True))
