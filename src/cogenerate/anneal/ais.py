"""Annealed importance sampling with HMC transitions: Algorithm 1 of Fang & Schwing (2019).

Neal (2001): draw z from the prior, and for t = 1..T add
``(β_t − β_{t−1}) · log L(z)`` to the chain's log-weight, then move z with M HMC steps
that leave ``p(z) L(z)^{β_t}`` invariant. The mean of the weights estimates
``p(x_o) = ∫ p(z) L(z) dz``, so ``log_evidence = logsumexp(log w) − log C``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from cogenerate.anneal.bridge import temper_from_init
from cogenerate.anneal.schedules import make_schedule
from cogenerate.anneal.compiled import make_mover, make_starter, resolve_compile, with_precision
from cogenerate.anneal.tempering import effective_sample_size, retemper, weight_increment
from cogenerate.mcmc.adapt import dual_averaging_init, dual_averaging_update, paper_rule
from cogenerate.posterior import Posterior
from cogenerate.proposals import Proposal, draw_initial
from cogenerate.result import Callback, SamplerOutput, Step, notify

__all__ = ["ais", "AISInfo", "weight_increment", "effective_sample_size", "ADAPT_RULES"]

ADAPT_RULES = ("paper", "dual-averaging", None)


class AISInfo(NamedTuple):
    """What AIS did: traces over its T annealing steps."""

    beta: Tensor  # (T + 1,) the schedule
    acceptance_rate: Tensor  # (T,) mean acceptance probability per step
    step_size: Tensor  # (T,) mean step size per step
    ess: Tensor  # (T,) ESS / C of the weights after each step (mean over observations)
    divergences: int
    steps: int  # T
    snapshots: dict[int, Tensor]  # t -> (B, C, D) positions after step t

    def diagnostics(self) -> dict:
        return self._asdict()


def ais(
    posterior: Posterior,
    *,
    chains: int,
    rng: torch.Generator,
    steps: int = 200,
    leapfrog: int = 10,
    hmc_per_temperature: int = 1,
    schedule: str = "sigmoid",
    step_size: float = 0.01,
    adapt: str | None = "paper",
    target_acceptance: float = 0.65,
    init: str | Proposal = "prior",
    temper_from: str = "prior",
    max_grad_evals: int | None = None,
    snapshots: Sequence[int] = (),
    callback: Callback | None = None,
    compile: bool | str = "auto",
    precision: str = "full",
) -> SamplerOutput:
    """Run AIS–HMC for every observation of ``posterior`` with ``chains`` chains each.

    Args:
        steps: annealing temperatures T (fewer if ``max_grad_evals`` does not allow T).
        leapfrog: leapfrog steps L per HMC move.
        hmc_per_temperature: HMC moves M per temperature (the paper's HMC loop).
        schedule: "sigmoid" (the paper's), "linear" or "geometric".
        step_size: initial leapfrog step size (the paper's 0.01).
        adapt: "paper" (×1.02 / ×0.98), "dual-averaging", or None (fixed).
        init: "prior", or a proposal (:mod:`cogenerate.proposals`) whose draws start with
            weights p(z)/q(z).
        temper_from: "prior", or "init" to anneal from the proposal's own density along
            q^(1−β)·(p·L)^β (:mod:`~cogenerate.anneal.bridge`; eager, a fixed noise scale).
        max_grad_evals: cap on gradient evaluations per chain (1 + T·M·L are spent).
        snapshots: annealing steps t after which to keep the chains' positions, returned
            in the info's ``snapshots`` as ``{t: (B, C, D)}`` (t = 0 is the prior draw).
        callback: called after every annealing step; returning False stops early.
        compile: run each HMC move as one ``torch.compile``d graph (True), eagerly (False), or
            where that measurably pays ("auto", :func:`~cogenerate.anneal.compiled.resolve_compile`).
        precision: "full", or "bf16" to run the generator under bfloat16 autocast with the
            likelihood, energies and accept in the observations' dtype.

    Returns:
        a :class:`SamplerOutput` with an :class:`AISInfo`; ``grad_evals = 1 + T·M·L``.
    """
    cost = hmc_per_temperature * leapfrog
    if max_grad_evals is not None:
        affordable = (max_grad_evals - 1) // cost
        if affordable < 1:
            raise ValueError(
                f"max_grad_evals={max_grad_evals} is too small for one AIS step, which costs "
                f"{cost} gradient evaluations per chain (+1 to start); raise it or lower leapfrog"
            )
        steps = min(steps, affordable)
    if adapt not in ADAPT_RULES:
        raise ValueError(f"unknown step-size adaptation {adapt!r}; use 'paper', 'dual-averaging' or None")
    posterior = with_precision(posterior, precision)
    posterior, init, compile = temper_from_init(posterior, init, temper_from, empirical_bayes=False, compile=compile)
    observed = posterior.observed
    betas = make_schedule(schedule, steps).to(device=observed.device, dtype=observed.dtype)
    b = posterior.batch
    z, log_w0 = draw_initial(posterior, init, chains, rng=rng, need_density=True)
    compiled = resolve_compile(compile, posterior, planned_grad_evals=1 + steps * cost)
    state = make_starter(posterior, compile=compiled)(z, betas[0].expand(b))
    move = make_mover(posterior, num_leapfrog=leapfrog, compile=compiled)
    step = torch.full((b, chains), step_size, device=observed.device, dtype=observed.dtype)
    dual = dual_averaging_init(step) if adapt == "dual-averaging" else None
    log_w = torch.zeros((b, chains), device=observed.device, dtype=observed.dtype)
    if log_w0 is not None:
        log_w = log_w + log_w0
    accept_trace, step_trace, ess_trace, divergent = [], [], [], torch.zeros((), dtype=torch.long)
    kept = {0: z.clone()} if 0 in snapshots else {}
    done = 0
    for t in range(1, steps + 1):
        beta = betas[t].expand(b)
        log_w = log_w + weight_increment((betas[t] - betas[t - 1]).expand(b), state.aux.log_likelihood)
        state = retemper(state, beta)
        for _ in range(hmc_per_temperature):
            state, info = move(rng, state, beta, step_size=step)
            if adapt == "paper":
                step = paper_rule(step, info.acceptance_prob, target=target_acceptance)
            elif dual is not None:
                dual = dual_averaging_update(dual, info.acceptance_prob, target=target_acceptance)
                step = dual.log_step.exp()
            divergent = divergent + info.is_divergent.sum().cpu()
        done = t
        accept_trace.append(info.acceptance_prob.mean())
        step_trace.append(step.mean())
        ess_trace.append(effective_sample_size(log_w).mean() / chains)
        if t in snapshots:
            kept[t] = state.position.clone()
        stop = notify(callback, lambda: Step(t / steps, state.position, state.aux.sample,
                                             torch.log_softmax(log_w, 1), beta,
                                             {"acceptance_rate": accept_trace[-1], "ess": ess_trace[-1]}))
        if stop:
            break
    log_evidence = torch.logsumexp(log_w, dim=1) - math.log(chains)
    empty = torch.zeros(0)
    info = AISInfo(
        beta=betas.cpu(),
        acceptance_rate=torch.stack(accept_trace).cpu() if accept_trace else empty,
        step_size=torch.stack(step_trace).cpu() if step_trace else empty,
        ess=torch.stack(ess_trace).cpu() if ess_trace else empty,
        divergences=int(divergent),
        steps=done,
        snapshots=kept,
    )
    cancelled = done < steps
    if cancelled:  # an unfinished annealing run estimates the evidence of a tempered target only
        log_evidence = torch.full_like(log_evidence, torch.nan)
    return SamplerOutput(
        latents=state.position,
        samples=state.aux.sample,
        log_weights=log_w,
        log_evidence=log_evidence,
        grad_evals=1 + done * cost,
        info=info,
        cancelled=cancelled,
    )
