"""Gradient descent on z: the two baselines of Fang & Schwing (2019, §3).

``gd`` starts every chain from one random prior draw; ``gd-best`` starts the C chains of
an observation from the C best of N prior draws (N = 5000 in the paper) under the same
objective, then descends. The objective is the negative tempered log-likelihood
(Eq. (1) of the paper up to scale for Gaussian noise), optionally plus the negative log
prior. Each chain keeps the best point it has visited.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from cogenerate.posterior import Evaluation, Posterior
from cogenerate.proposals import Proposal, draw_initial
from cogenerate.result import Callback, SamplerOutput, Step, notify

__all__ = ["gradient_descent", "best_of_prior", "DescentInfo", "INITS"]

INITS = ("prior", "best-of")


class DescentInfo(NamedTuple):
    """What gradient descent did."""

    objective: Tensor  # (steps,) mean over chains of the best objective so far
    final_objective: Tensor  # (B, C)
    forward_evals: int  # prior draws scored by forward passes (best-of)
    steps: int

    def diagnostics(self) -> dict:
        return self._asdict()


def best_of_prior(
    posterior: Posterior, *, keep: int, candidates: int, rng: torch.Generator, chunk: int = 4096
) -> Tensor:
    """The ``keep`` best of ``candidates`` prior draws per observation, ``(B, keep, D)``.

    Costs ``candidates`` generator forward passes per observation (no gradients), in chunks
    of at most ``chunk`` samples per generator call.
    """
    if candidates < keep:
        raise ValueError(f"candidates ({candidates}) must be at least the number of chains ({keep})")
    b, d = posterior.batch, posterior.latent_dim
    z = posterior.sample_prior(rng, (b, candidates))
    top = posterior.score(z, chunk=chunk).topk(keep, dim=1).indices
    return torch.gather(z, 1, top.unsqueeze(-1).expand(-1, -1, d))


def gradient_descent(
    posterior: Posterior,
    *,
    chains: int,
    rng: torch.Generator,
    steps: int = 1000,
    lr: float = 0.01,
    init: str | Tensor | Proposal = "prior",
    candidates: int = 5000,
    prior_weight: float = 0.0,
    likelihood_weight: float | Tensor = 1.0,
    refit_below: float = 0.0,
    max_grad_evals: int | None = None,
    callback: Callback | None = None,
) -> SamplerOutput:
    """Adam on z minimising ``−w · log L(z) − prior_weight · log p(z)`` for every chain.

    Args:
        steps: descent iterations (one gradient evaluation each).
        lr: Adam learning rate.
        init: "prior" (one random draw per chain: ``gd``), "best-of" (the C best of
            ``candidates`` prior draws: ``gd-best``), a proposal (:mod:`cogenerate.proposals`),
            or starting latents ``(B, C, D)``.
        prior_weight: 0 for the paper's Eq. (1); 1 for MAP.
        likelihood_weight: w, a number or one per observation ``(B,)``: the tempered
            posterior's β (an empirical-Bayes noise scale, :func:`~cogenerate.anneal.smc.smc`).
        refit_below: r. Where a chain's residual implies a noise scale ŝ below ``r`` times the
            (tempered) scale s, the prior term fades with the misfit: with the misfit
            u = w·(log L_max − log L) ≥ 0 and the prior term q = −prior_weight·log p(z), the
            objective u + q becomes ``u·(1 + q/t)`` below ``t = count·power·r^(1/power)`` (where
            ŝ = r·s; for Gaussian noise ŝ² = mean squared residual). It is continuous at t and
            smallest at u = 0, so a target the generator reproduces exactly is descended to the
            exact fit instead of stopping where the prior term balances a scale fitted to the
            whole posterior; a fit whose residual stays above r·s is not changed. 0 (the
            default) keeps the objective. Ignored where no more values are observed than z has
            dimensions (every observation then has an exact fit) and with a critic term (whose
            log-likelihood has no maximum at a zero residual).
        max_grad_evals: cap on gradient evaluations per chain.
        callback: called after every iteration; returning False stops early.

    Returns:
        a :class:`SamplerOutput` with each chain's best visited point, uniform log-weights,
        ``log_evidence = nan`` and a :class:`DescentInfo`.
    """
    if isinstance(init, str) and init not in INITS:
        raise ValueError(f"unknown initialisation {init!r}; use 'prior', 'best-of', a proposal or a tensor of latents")
    if max_grad_evals is not None:
        if max_grad_evals < 1:
            raise ValueError(f"max_grad_evals must be at least 1, got {max_grad_evals}")
        steps = min(steps, max_grad_evals)
    observed = posterior.observed
    b = posterior.batch
    if isinstance(init, Tensor):
        z0 = init.detach().to(observed)
    elif init == "best-of":
        z0 = best_of_prior(posterior, keep=chains, candidates=candidates, rng=rng)
    else:
        z0, _ = draw_initial(posterior, init, chains, rng=rng)
    weight = torch.as_tensor(likelihood_weight, device=observed.device, dtype=observed.dtype)
    weight = weight.reshape(-1, 1) if weight.dim() else weight
    objective_and_grad = _descent_objective(posterior, weight, prior_weight, refit_below)
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    best_objective = torch.full((b, chains), torch.inf, device=observed.device, dtype=observed.dtype)
    best_z, best_x = z0.clone(), None
    trace = []
    done = 0
    for i in range(steps):
        evaluation = posterior.evaluate(z.detach()).sanitized()
        objective, grad = objective_and_grad(evaluation)
        better = objective < best_objective
        best_objective = torch.where(better, objective, best_objective)
        best_z = torch.where(better.unsqueeze(-1), z.detach(), best_z)
        sample = evaluation.sample
        mask = better.reshape(*better.shape, *([1] * (sample.dim() - 2)))
        best_x = sample if best_x is None else torch.where(mask, sample, best_x)
        optimizer.zero_grad(set_to_none=True)
        z.grad = grad
        optimizer.step()
        trace.append(best_objective.mean())
        done = i + 1
        uniform = (b, chains)
        if notify(callback, lambda: Step(done / steps, best_z, best_x,
                                         torch.full(uniform, -math.log(chains), device=observed.device, dtype=observed.dtype),
                                         None, {"objective": trace[-1]})):
            break
    if best_x is None:  # steps == 0
        raise ValueError("gradient descent needs at least one step")
    log_weights = torch.zeros((b, chains), device=observed.device, dtype=observed.dtype)
    info = DescentInfo(
        objective=torch.stack(trace).cpu(),
        final_objective=best_objective.cpu(),
        forward_evals=candidates if isinstance(init, str) and init == "best-of" else 0,
        steps=done,
    )
    return SamplerOutput(
        latents=best_z,
        samples=best_x,
        log_weights=log_weights,
        log_evidence=torch.full((b,), torch.nan, device=observed.device, dtype=observed.dtype),
        grad_evals=done,
        info=info,
        cancelled=done < steps,
    )


def misfit_scale(posterior: Posterior, log_likelihood: Tensor, likelihood_weight: float | Tensor = 1.0) -> Tensor:
    """ŝ/s of each ``(B, C)`` log-likelihood: the noise scale its residual implies, over the
    (tempered) scale s (for Gaussian noise, the root mean squared residual over s); 0 at an
    exact fit. The measure of :func:`gradient_descent`'s ``refit_below``."""
    noise, count = posterior.noise, posterior.observed_count.unsqueeze(1)
    weight = torch.as_tensor(likelihood_weight, device=log_likelihood.device, dtype=log_likelihood.dtype)
    weight = weight.reshape(-1, 1) if weight.dim() else weight
    misfit = weight * (noise.log_normaliser(posterior.observed_count).unsqueeze(1) - log_likelihood)
    return (misfit.clamp_min(0) / (count * noise.power)).pow(noise.power)


def _descent_objective(posterior: Posterior, weight: Tensor, prior_weight: float, refit_below: float):
    """``Evaluation -> (objective (B, C), its gradient (B, C, D))`` of :func:`gradient_descent`."""
    def fixed(evaluation: Evaluation) -> tuple[Tensor, Tensor]:
        objective = -(weight * evaluation.log_likelihood + prior_weight * evaluation.log_prior)
        grad = -(weight.unsqueeze(-1) * evaluation.grad_log_likelihood + prior_weight * evaluation.grad_log_prior)
        return objective, grad

    if refit_below < 0:
        raise ValueError(f"refit_below must be non-negative, got {refit_below}")
    if refit_below == 0 or prior_weight == 0 or posterior.discriminator is not None:
        return fixed
    noise, count = posterior.noise, posterior.observed_count
    log_max = noise.log_normaliser(count).unsqueeze(1)  # log L at a zero residual, (B, 1)
    # t, (B, 1); 0 (never reached) where the observed part has no more values than z has
    # dimensions, since every such observation can be fitted exactly.
    join = torch.where(count > posterior.latent_dim, count * noise.power * refit_below ** (1 / noise.power), 0)
    join = join.unsqueeze(1)
    safe = join.clamp_min(torch.finfo(join.dtype).tiny)  # divides only where u < join

    def refit(evaluation: Evaluation) -> tuple[Tensor, Tensor]:
        u = weight * (log_max - evaluation.log_likelihood)  # the misfit, ≥ 0
        q = (-prior_weight * evaluation.log_prior).clamp_min(0)
        below = u < join
        grad_u = -weight.unsqueeze(-1) * evaluation.grad_log_likelihood
        grad_q = -prior_weight * evaluation.grad_log_prior
        objective = torch.where(below, u * (1 + q / safe), u + q)  # u·(1 + q/t) below the join
        grad = torch.where(below.unsqueeze(-1),
                           (1 + q / safe).unsqueeze(-1) * grad_u + (u / safe).unsqueeze(-1) * grad_q,
                           grad_u + grad_q)
        return objective, grad

    return refit
