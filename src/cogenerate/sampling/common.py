"""What the samplers share: the result type, the critic, and batched generation.

A *critic* is any callable ``(N, *x_shape) -> (N,)`` estimating ``log p_data(x) / p_G(x)``: a
model's :meth:`~cogenerate.models.base.GenerativeModel.log_ratio` (the DCGAN logit, or an
autoencoder's ``−energy / energy_scale``), usually calibrated on held-out data first
(:mod:`cogenerate.sampling.calibration`). DRS, MH-GAN and DDLS are exact only for the ideal
critic ``log p_data / p_G``; with a trained one they are heuristics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from cogenerate.models.base import GenerativeModel
from cogenerate.posterior import sample_prior

__all__ = ["Critic", "SampleResult", "check_count", "critic_of", "draw_latents", "generate", "reference", "score"]

Critic = Callable[[Tensor], Tensor]
"""``x (N, *x_shape) -> (N,)``: an estimate of ``log p_data(x) / p_G(x)``."""


class SampleResult(NamedTuple):
    """Samples from a sampler and what they cost.

    Attributes:
        samples: ``(n, *x_shape)`` images (or vectors), on the sampler's device.
        latents: ``(n, latent_dim)`` latents with ``G(latents) == samples``.
        acceptance_rate: accepted proposals / proposals (DRS, MH-GAN; MALA moves for DDLS;
            1 for plain sampling and unadjusted DDLS).
        generator_calls: generator evaluations this call spent, per image generated, summed over
            every sample (forward passes; for DDLS, gradient evaluations, each a forward and
            a backward pass of the generator and the critic).
        stats: the method's constants and diagnostics, JSON-ready (numbers, strings, lists).
    """

    samples: Tensor
    latents: Tensor
    acceptance_rate: float
    generator_calls: int
    stats: dict[str, Any]

    @property
    def calls_per_sample(self) -> float:
        """Generator evaluations per kept sample."""
        return self.generator_calls / max(1, self.samples.shape[0])


def critic_of(model: GenerativeModel, critic: Critic | None) -> Critic:
    """``critic`` if given, else the model's own ``log_ratio`` (a ValueError if it has none)."""
    if critic is not None:
        return critic
    if not model.has_critic:
        raise ValueError(f"this {model.family} model has no discriminator or energy: pass critic=")
    return model.log_ratio


def reference(model: GenerativeModel, rng: torch.Generator) -> Tensor:
    """A zero scalar on ``rng``'s device in the generator's floating dtype (float32 if unknown):
    where and in which precision the samplers work."""
    dtype = torch.float32
    parameters = getattr(model.generator, "parameters", None)
    if callable(parameters):
        first = next(iter(parameters()), None)
        if first is not None and first.is_floating_point():
            dtype = first.dtype
    return torch.zeros((), device=rng.device, dtype=dtype)


def draw_latents(model: GenerativeModel, count: int, *, rng: torch.Generator, like: Tensor) -> Tensor:
    """``(count, latent_dim)`` draws from the model's latent prior, from ``rng`` only."""
    return sample_prior(model.prior, (count,), model.latent_dim, rng=rng, like=like)


def generate(model: GenerativeModel, z: Tensor, *, max_batch: int) -> Tensor:
    """``G(z)`` for ``(N, latent_dim)`` latents, in chunks of ``max_batch``, without gradients."""
    with torch.no_grad():
        return torch.cat([model.generator(chunk) for chunk in z.split(max_batch)])


def score(critic: Critic, x: Tensor, *, max_batch: int) -> Tensor:
    """``critic(x)`` ``(N,)`` in chunks of ``max_batch``, without gradients."""
    with torch.no_grad():
        return torch.cat([critic(chunk).reshape(-1) for chunk in x.split(max_batch)])


def check_count(name: str, value: int, minimum: int = 1) -> int:
    """``value`` as an int, or a one-line ValueError naming ``name``."""
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
