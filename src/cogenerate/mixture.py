"""Completion with several generators: a Bayesian GAN's weight samples as a mixture weighted by evidence.

A model with M generators (``generator``, ``generator_1``, ..., :attr:`GenerativeModel.generators`)
stands for the predictive ``p(x) = (1/M) Σ_m p(x | θ_m)`` over samples θ_m of the generator's
weights (Saatchi & Wilson, "Bayesian GAN", NeurIPS 2017, §3: the posterior over weights is
represented by its samples, and predictions marginalise over them). Given x_o, Bayes' rule over
the samples gives

    p(θ_m | x_o) = p(x_o | θ_m) / Σ_k p(x_o | θ_k),     p(x_o) = (1/M) Σ_m p(x_o | θ_m),

so :func:`complete_mixture` runs the method once per generator (a :func:`cogenerate.complete`
call each, the particles of generator m weighted within it), and puts the particles together,
generator m's weights multiplied by p(θ_m | x_o) from the method's evidence estimates. The
spread of the completions, and so the uncertainty map, then includes the model's uncertainty.
With a method that has no evidence estimate (descent methods), the generators weigh equally.

``complete()`` calls it for any model with more than one generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from cogenerate.models.base import GenerativeModel
from cogenerate.result import Completion

__all__ = ["complete_mixture", "generator_weights", "single_generator_models"]


def single_generator_models(model: GenerativeModel) -> list[GenerativeModel]:
    """One model per generator of ``model``, each with that generator as its only one (the
    other parts, e.g. the discriminator, shared)."""
    extra = {name: None for name in model.parts if name.startswith("generator_")}
    return [model.with_parts(**extra, generator=generator) for generator in model.generators]


def generator_weights(log_evidence: Tensor) -> Tensor:
    """``log p(θ_m | x_o)`` ``(B, M)`` from the per-generator ``log p(x_o | θ_m)`` ``(B, M)`` under a
    uniform prior over the M samples; uniform where any estimate is NaN."""
    uniform = torch.full_like(log_evidence, -math.log(log_evidence.shape[1]))
    weights = torch.log_softmax(torch.nan_to_num(log_evidence, nan=0.0), dim=1)
    return torch.where(torch.isnan(log_evidence).any(1, keepdim=True), uniform, weights)


def complete_mixture(
    model: GenerativeModel,
    observed: Tensor,
    mask: Any,
    *,
    chains: int = 16,
    chains_per_generator: int | None = None,
    seed: int = 0,
    rng: torch.Generator | None = None,
    progress: Callable[[float], None] | None = None,
    **options: Any,
) -> Completion:
    """Complete ``observed`` with every generator of ``model`` and weight them by their evidence.

    Args:
        model: a model with M ≥ 1 generators.
        observed, mask: as for :func:`cogenerate.complete`.
        chains: chains per generator (so M·chains particles in all), unless
            ``chains_per_generator`` is given; ``grad_evals`` per chain is that of one run.
        chains_per_generator: chains for each generator's run.
        seed, rng: one ``torch.Generator`` (``rng``, or seeded with ``seed`` on the observations'
            device) draws every run's randomness, generator after generator.
        progress: called with the fraction of the M runs done.
        **options: every other keyword of :func:`cogenerate.complete` (``method``, ``noise_std``,
            ``max_grad_evals``, ...), passed to each run.

    Returns:
        One :class:`~cogenerate.result.Completion` over the ``M · C`` particles, generator after
        generator: ``log_weights`` normalised over all of them; ``estimate`` the
        ``p(θ_m | x_o)``-weighted mean of the runs' estimates; ``log_evidence`` ``log p(x_o)``
        of the mixture; ``noise_std`` the root of the weighted mean noise variance (the
        mixture's noise variance); ``diagnostics["generator_weights"]`` ``(B, M)`` the
        posterior over generators, ``diagnostics["generator_log_evidence"]`` ``(B, M)``, and
        ``diagnostics["runs"]`` each run's own diagnostics.
    """
    from cogenerate.api import complete  # api imports this module lazily, too

    per_run = int(chains if chains_per_generator is None else chains_per_generator)
    if rng is None:
        rng = torch.Generator(device=torch.as_tensor(observed).device).manual_seed(int(seed))
    models = single_generator_models(model)
    runs: list[Completion] = []
    for index, single in enumerate(models):
        scaled = None if progress is None else (lambda f, i=index: progress((i + f) / len(models)))
        runs.append(complete(single, observed, mask, chains=per_run, rng=rng, progress=scaled, **options))
    log_evidence = torch.stack([run.log_evidence for run in runs], dim=1)  # (B, M)
    log_posterior = generator_weights(log_evidence)
    posterior = log_posterior.exp()
    log_weights = torch.cat([log_posterior[:, m : m + 1] + run.log_weights for m, run in enumerate(runs)], dim=1)
    shape = (-1, *([1] * (runs[0].estimate.dim() - 1)))
    estimate = sum(posterior[:, m].reshape(shape) * run.estimate for m, run in enumerate(runs))
    noise_std = None
    if all(run.noise_std is not None for run in runs):
        variance = sum(posterior[:, m] * run.noise_std.to(posterior).pow(2) for m, run in enumerate(runs))
        noise_std = variance.sqrt()
    mixture_evidence = torch.logsumexp(log_evidence, dim=1) - math.log(len(runs))
    diagnostics = {
        "generator_weights": posterior,
        "generator_log_evidence": log_evidence,
        "runs": [run.diagnostics for run in runs],
        "warnings": [f"generator {m}: {text}" for m, run in enumerate(runs) for text in run.diagnostics.get("warnings", [])],
    }
    return Completion(
        samples=torch.cat([run.samples for run in runs], dim=1),
        completions=torch.cat([run.completions for run in runs], dim=1),
        estimate=estimate,
        latents=torch.cat([run.latents for run in runs], dim=1),
        log_weights=log_weights,
        log_evidence=mixture_evidence,
        grad_evals=max(run.grad_evals for run in runs),
        method=runs[0].method,
        diagnostics=diagnostics,
        noise_std=noise_std,
        hidden=runs[0].hidden,
        info=tuple(run.info for run in runs),
    )

