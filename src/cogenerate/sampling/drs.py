"""Discriminator rejection sampling (Azadi, Olsson, Darrell, Goodfellow & Odena, "Discriminator
Rejection Sampling", ICLR 2019, arXiv:1810.06758).

With an ideal critic ``D̃(x) = log p_data(x) / p_G(x)`` and ``D̃_M = max D̃``, accepting a
generator sample with probability ``exp(D̃(x) − D̃_M)`` is rejection sampling of ``p_data``
from ``p_G`` (seeds/lecture-merging-vae-and-gans.txt, "Rejection Sampling", "Ideal
Discriminator"). DRS makes this practical by writing the acceptance probability as a sigmoid::

    F(x) = D̃(x) − D̃_M − log(1 − exp(D̃(x) − D̃_M − ε)) − γ          p = σ(F(x))

With ``γ = 0`` and ``ε -> 0``, ``σ(F) = exp(D̃ − D̃_M)`` exactly; ``γ`` shifts the curve to
accept more, ``ε`` keeps the logarithm finite. ``D̃_M`` is estimated as the largest critic value
over a burn-in of generator samples and raised whenever a larger one is seen.

Constants (the paper's authors released no code; these are the values of the DRS
implementation in the MH-GAN authors' official code, uber-research/metropolis-hastings-gans,
``mhgan/mh.py`` ``rejection_sample`` and ``mhgan/demo_mhgan.py``):

- ``ε = 1e-6`` (``epsilon=1e-6``);
- ``γ`` = the 95th percentile of ``F`` over the batch (``shift_percent=95.0``; the code computes
  ``F`` without ``γ``, then subtracts that percentile);
- burn-in of 156 batches of 64 = 9,984 samples for ``D̃_M`` (``max_est_batches = 156``).
"""

from __future__ import annotations

import torch

from cogenerate.models.base import GenerativeModel
from cogenerate.posterior import frozen_generator
from cogenerate.sampling.common import (
    Critic, SampleResult, check_count, critic_of, draw_latents, generate, reference, score,
)

__all__ = ["DRS_BURN_IN", "DRS_EPSILON", "DRS_PERCENTILE", "acceptance_logit", "drs"]

DRS_EPSILON = 1e-6
"""ε in ``log(1 − exp(D̃ − D̃_M − ε))`` (MH-GAN official code, ``rejection_sample(epsilon=1e-6)``)."""

DRS_PERCENTILE = 95.0
"""γ is this percentile of F over each batch (MH-GAN official code, ``shift_percent=95.0``)."""

DRS_BURN_IN = 156 * 64
"""Generator samples whose largest critic value starts ``D̃_M`` (MH-GAN official code: 156 batches of 64)."""


def acceptance_logit(log_ratio: torch.Tensor, log_ratio_max: float, *, epsilon: float = DRS_EPSILON) -> torch.Tensor:
    """``F(x) + γ = D̃ − D̃_M − log(1 − exp(D̃ − D̃_M − ε))`` for ``log_ratio <= log_ratio_max``, any shape."""
    delta = log_ratio - log_ratio_max
    return delta - torch.log(-torch.expm1(delta - epsilon))


def drs(
    model: GenerativeModel,
    *,
    n: int,
    rng: torch.Generator,
    critic: Critic | None = None,
    burn_in: int = DRS_BURN_IN,
    percentile: float | None = DRS_PERCENTILE,
    epsilon: float = DRS_EPSILON,
    batch_size: int = 1000,
    max_proposals: int | None = None,
) -> SampleResult:
    """Draw ``n`` samples by discriminator rejection sampling.

    Each batch of ``batch_size`` generator samples raises ``D̃_M`` to the batch's largest critic
    value if needed, sets ``γ`` to the ``percentile`` of ``F`` over the batch (``None``: ``γ = 0``,
    plain rejection sampling), and keeps each sample with probability ``σ(F)``; batches are drawn
    until ``n`` are kept (in the order drawn).

    Args:
        model: the generator (and, without ``critic``, its ``log_ratio``).
        n: samples to keep.
        rng: every latent and every uniform comes from it; its device is where the work runs.
        critic: ``x -> log p_data(x) / p_G(x)`` estimates ``(N,)``, usually a calibrated one
            (:class:`~cogenerate.sampling.calibration.CalibratedCritic`); default ``model.log_ratio``.
        burn_in: generator samples that start ``D̃_M`` (0: start from the first batch).
        percentile: ``γ``'s percentile of ``F`` in ``[0, 100]``, or None for ``γ = 0``.
        epsilon: ``ε >= 0``.
        batch_size: proposals per generator / critic call.
        max_proposals: give up (ValueError) after this many proposals (default ``1000 · n``).

    Returns:
        A :class:`~cogenerate.sampling.common.SampleResult`; ``generator_calls`` counts the
        burn-in and every proposal; ``stats`` has the constants, ``log_ratio_max``, the mean
        ``γ``, ``proposals`` and ``burn_in``.
    """
    n, batch_size = check_count("n", n), check_count("batch_size", batch_size)
    burn_in = check_count("burn_in", burn_in, minimum=0)
    if percentile is not None and not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100] or None, got {percentile}")
    if not epsilon >= 0.0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    limit = 1000 * n if max_proposals is None else check_count("max_proposals", max_proposals)
    critic = critic_of(model, critic)
    kept_x, kept_z, gammas = [], [], []
    log_ratio_max, proposals, accepted = -float("inf"), 0, 0
    with frozen_generator(*model.modules.values()):
        like = reference(model, rng)
        for start in range(0, burn_in, batch_size):
            z = draw_latents(model, min(batch_size, burn_in - start), rng=rng, like=like)
            log_ratio_max = max(log_ratio_max, score(critic, generate(model, z, max_batch=batch_size),
                                                     max_batch=batch_size).max().item())
        while accepted < n:
            if proposals >= limit:
                raise ValueError(f"DRS kept {accepted} of {n} samples in {proposals} proposals; raise max_proposals "
                                 f"or use a percentile (γ) that accepts more")
            z = draw_latents(model, batch_size, rng=rng, like=like)
            x = generate(model, z, max_batch=batch_size)
            log_ratio = score(critic, x, max_batch=batch_size).to(like)
            log_ratio_max = max(log_ratio_max, log_ratio.max().item())
            logit = acceptance_logit(log_ratio, log_ratio_max, epsilon=epsilon)
            gamma = torch.quantile(logit.double(), percentile / 100.0).item() if percentile is not None else 0.0
            keep = torch.rand(batch_size, generator=rng, device=like.device, dtype=like.dtype) <= torch.sigmoid(logit - gamma)
            kept_x.append(x[keep])
            kept_z.append(z[keep])
            gammas.append(gamma)
            proposals += batch_size
            accepted += int(keep.sum())
    stats = {
        "method": "drs", "epsilon": epsilon, "percentile": percentile, "burn_in": burn_in,
        "log_ratio_max": log_ratio_max, "gamma_mean": sum(gammas) / len(gammas), "proposals": proposals,
        "accepted": accepted, "batch_size": batch_size,
    }
    return SampleResult(samples=torch.cat(kept_x)[:n], latents=torch.cat(kept_z)[:n], acceptance_rate=accepted / proposals,
                        generator_calls=burn_in + proposals, stats=stats)
