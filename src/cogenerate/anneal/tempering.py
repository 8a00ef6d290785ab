"""The tempered target ``log p(z) + β·log L(z)`` built from separate prior and likelihood functions.

As in BlackJAX's tempered SMC, the samplers of this package are handed a log-prior function
and a log-likelihood function and build the tempered density themselves. Each evaluation keeps
both pieces (:class:`~cogenerate.posterior.Evaluation`) in the HMC state's ``aux``, so that
changing β (:func:`retemper`) or reading the likelihood for the next reweighting needs no
generator call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from cogenerate.mcmc.hmc import DensityFn, HMCState, hmc_init
from cogenerate.posterior import Evaluation

__all__ = ["LogPriorFn", "LogLikelihoodFn", "evaluator", "tempered", "tempered_density", "retemper", "start",
           "weight_increment", "effective_sample_size"]

LogPriorFn = Callable[[Tensor], tuple[Tensor, Tensor]]
"""``z (B, C, D) -> (log p(z) (B, C), gradient (B, C, D))``."""
LogLikelihoodFn = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]
"""``z (B, C, D) -> (log L(z) (B, C), gradient (B, C, D), G(z) (B, C, *x_shape))``."""


def evaluator(log_prior_fn: LogPriorFn, log_likelihood_fn: LogLikelihoodFn) -> Callable[[Tensor], Evaluation]:
    """Both pieces at ``z``, sanitised (:meth:`Evaluation.sanitized`): one gradient evaluation."""

    def evaluate(z: Tensor) -> Evaluation:
        log_lik, grad_lik, sample = log_likelihood_fn(z)
        log_prior, grad_prior = log_prior_fn(z.detach())
        return Evaluation(log_prior, log_lik, grad_prior, grad_lik, sample).sanitized()

    return evaluate


def tempered(evaluation: Evaluation, beta: Tensor) -> tuple[Tensor, Tensor]:
    """``log p(z) + β·log L(z)`` ``(B, C)`` and its gradient ``(B, C, D)``; ``beta`` is ``(B,)``."""
    b = beta.reshape(-1, 1)
    log_density = evaluation.log_prior + b * evaluation.log_likelihood
    log_density = torch.where(b == 0, evaluation.log_prior, log_density)  # 0·(-inf) is 0 here
    grad = evaluation.grad_log_prior + b.unsqueeze(-1) * evaluation.grad_log_likelihood
    return log_density, grad


def tempered_density(evaluate: Callable[[Tensor], Evaluation], beta: Tensor) -> DensityFn:
    """The HMC target at inverse temperatures ``beta`` ``(B,)``; ``aux`` is the :class:`Evaluation`."""

    def log_density_fn(z: Tensor) -> tuple[Tensor, Tensor, Evaluation]:
        evaluation = evaluate(z)
        log_density, grad = tempered(evaluation, beta)
        return log_density, grad, evaluation

    return log_density_fn


def retemper(state: HMCState, beta: Tensor) -> HMCState:
    """The same chains at new inverse temperatures ``beta`` ``(B,)``, from the cached pieces."""
    log_density, grad = tempered(state.aux, beta)
    return state._replace(log_density=log_density, grad=grad)


def start(position: Tensor, evaluate: Callable[[Tensor], Evaluation], beta: Tensor) -> HMCState:
    """Chains at ``position`` ``(B, C, D)`` under the target at ``beta``: one gradient evaluation."""
    return hmc_init(position, tempered_density(evaluate, beta))


def weight_increment(delta_beta: Tensor, log_likelihood: Tensor) -> Tensor:
    """``Δβ · log L`` ``(B, C)`` with ``Δβ`` ``(B,)``; zero where Δβ = 0 even if log L = -inf."""
    d = delta_beta.reshape(-1, 1)
    inc = d * log_likelihood
    return torch.where(d == 0, torch.zeros_like(inc), inc)


def effective_sample_size(log_weights: Tensor) -> Tensor:
    """Kish's ESS ``1 / Σ W²`` of the normalised weights, per row: ``(B, C) -> (B,)``."""
    w = torch.softmax(log_weights, dim=-1)
    return 1.0 / w.pow(2).sum(-1)
