"""Plain sampling: ``x = G(z)``, ``z`` from the latent prior; the baseline every corrector is measured against."""

from __future__ import annotations

import torch

from cogenerate.models.base import GenerativeModel
from cogenerate.posterior import frozen_generator
from cogenerate.sampling.common import SampleResult, check_count, draw_latents, generate, reference

__all__ = ["plain"]


def plain(model: GenerativeModel, *, n: int, rng: torch.Generator, max_batch: int = 1000) -> SampleResult:
    """``n`` generator samples from prior latents drawn from ``rng`` (``generator_calls = n``).

    Returns:
        A :class:`~cogenerate.sampling.common.SampleResult` with ``acceptance_rate`` 1.
    """
    n, max_batch = check_count("n", n), check_count("max_batch", max_batch)
    with frozen_generator(*model.modules.values()):
        z = draw_latents(model, n, rng=rng, like=reference(model, rng))
        x = generate(model, z, max_batch=max_batch)
    return SampleResult(samples=x, latents=z, acceptance_rate=1.0, generator_calls=n, stats={"method": "plain"})
