"""SMC to find the right basins, then a short gradient polish of every particle.

On a benign landscape a careful gradient descent is hard to beat on the point estimate,
while on a ragged one it starts in the wrong basin. This spends part of the budget on
adaptive tempered SMC (:func:`cogenerate.anneal.smc.smc`), whose particles spread over the
posterior's basins in proportion to their mass, and the rest on Adam from each particle.
The SMC particles stay the result's samples (with their weights, evidence and uncertainty
map); the polished copies only provide the point estimate, the best fit among them, as for
the descent baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cogenerate.anneal.output import SamplerOutput
from cogenerate.anneal.smc import smc
from cogenerate.baselines.gradient import gradient_descent
from cogenerate.posterior import Posterior

__all__ = ["smc_polish"]


def smc_polish(
    posterior: Posterior,
    *,
    chains: int,
    rng: torch.Generator,
    polish_fraction: float = 0.5,
    polish_steps: int = 200,
    lr: float = 0.01,
    prior_weight: float = 1.0,
    leapfrog: int = 5,
    candidates: int = 1000,
    polish_from: str = "tempered",
    empirical_bayes: bool = False,
    max_grad_evals: int | None = None,
    smc_options: dict[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
) -> SamplerOutput:
    """SMC with ``1 − polish_fraction`` of ``max_grad_evals``, then Adam with the rest.

    Args:
        polish_fraction: share of the budget kept for the polish (with ``max_grad_evals``);
            what SMC leaves unspent (it stops early at a fitted noise scale) goes to the
            polish too.
        polish_steps: polish iterations when no budget is given.
        lr: Adam learning rate of the polish.
        prior_weight: 1 polishes toward the posterior mode, 0 toward the best fit of Eq. (1).
        polish_from: "tempered" (the particles from before a budget-forced jump to β = 1,
            which still cover the basins) or "final" (SMC's final, resampled particles).
        empirical_bayes: fit the noise scale by maximum evidence during SMC; the polish then
            climbs the posterior at that scale.
        leapfrog, candidates, smc_options: passed to :func:`smc`. Five leapfrog steps per
            move (rather than SMC's 10) let the tempering reach β = 1 within half of a
            few-hundred-gradient budget on 28×28 images; 1,000 forward-only prior draws
            start it (docs/benchmarks.md).

    Returns:
        the SMC :class:`SamplerOutput` with the polished samples as ``point_samples``, the
        polish's diagnostics under ``"polish"`` and ``grad_evals`` counting both parts.
    """
    if polish_from not in ("tempered", "final"):
        raise ValueError(f"polish_from must be 'tempered' or 'final', got {polish_from!r}")
    if not 0 <= polish_fraction < 1:
        raise ValueError(f"polish_fraction must lie in [0, 1), got {polish_fraction}")
    smc_budget = None if max_grad_evals is None else max(1, round((1 - polish_fraction) * max_grad_evals))
    share = 1 - polish_fraction  # of the progress bar
    sampled = smc(
        posterior, chains=chains, rng=rng, leapfrog=leapfrog, candidates=candidates, max_grad_evals=smc_budget,
        empirical_bayes=empirical_bayes,
        progress=None if progress is None else lambda f: progress(share * f), **(smc_options or {}),
    )
    steps = polish_steps if max_grad_evals is None else max_grad_evals - sampled.grad_evals
    if steps < 1:
        return sampled
    start = sampled.diagnostics["tempered_latents"] if polish_from == "tempered" else sampled.latents
    polished = gradient_descent(
        posterior, chains=chains, rng=rng, steps=steps, lr=lr, init=start,
        prior_weight=prior_weight, likelihood_weight=sampled.diagnostics["likelihood_weight"],
        progress=None if progress is None else lambda f: progress(share + (1 - share) * f),
    )
    return sampled._replace(
        grad_evals=sampled.grad_evals + polished.grad_evals,
        point_samples=polished.samples,
        diagnostics={**sampled.diagnostics, "polish": polished.diagnostics, "polished_latents": polished.latents,
                     "forward_evals": candidates},
    )
