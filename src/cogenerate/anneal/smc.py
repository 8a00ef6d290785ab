"""Sequential Monte Carlo with adaptive tempering and HMC moves.

AIS (:mod:`cogenerate.anneal.ais`) plus three things the paper's Algorithm 1 lacks:

1. adaptive tempering: the next β of each observation is found by bisection so that the
   conditional effective sample size (Zhou, Johansen & Aston 2016, eq. 3.16) of the
   incremental weights equals ``target_ess · C`` (as in BlackJAX's ``adaptive_tempered_smc``);
2. systematic resampling (Carpenter, Clifford & Fearnhead 1999), per observation, whenever
   the ESS falls below ``resample_threshold · C``;
3. kernels re-tuned from the particles: a diagonal inverse mass matrix equal to the
   particles' weighted variance (Chopin 2002, §2.1 of Buchholz, Chopin & Jacob 2021),
   optionally shrunk toward the prior's by a few pseudo-particles, and a step size per
   observation moved toward the target acceptance after every mutation;
4. optionally (``empirical_bayes``), the noise scale fitted by maximum evidence: tempering
   stops where the estimated evidence of the scale that β amounts to peaks.

``log_evidence`` is the product of the mean incremental weights (Del Moral et al. 2006).
"""


from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from cogenerate.anneal.adaptive import advance, conditional_ess, evidence_peak, next_beta
from cogenerate.anneal.bridge import temper_from_init
from cogenerate.anneal.compiled import Stepper, make_starter, resolve_compile, with_precision
from cogenerate.anneal.smc_step import MoveSettings, systematic_ancestors
from cogenerate.anneal.tempering import weight_increment
from cogenerate.mcmc.adapt import particle_tuning_init
from cogenerate.mcmc.hmc import DIVERGENCE_THRESHOLD
from cogenerate.operators import tempering_correction
from cogenerate.posterior import Posterior
from cogenerate.proposals import Proposal, draw_initial
from cogenerate.result import Callback, SamplerOutput, Step, notify

__all__ = ["smc", "SMCInfo", "next_beta", "evidence_peak", "systematic_resample", "conditional_ess"]


class SMCInfo(NamedTuple):
    """What SMC did. S = tempering steps; traces per observation are ``(B, S)``."""

    beta: Tensor  # (B, S) β after each tempering step
    ess: Tensor  # (B, S) ESS / C after each reweighting (before resampling)
    resampled: Tensor  # (B, S) whether the observation's particles were resampled
    acceptance_rate: Tensor  # (M,) mean acceptance of each mutation
    step_size: Tensor  # (M,) mean step size after each mutation
    divergences: int
    steps: int
    # Particles before β was forced up by the budget (the final ones if it was not).
    tempered_latents: Tensor  # (B, C, D)
    tempered_beta: Tensor  # (B,)
    # The final target: the likelihood's weight β and the noise scale it amounts to.
    likelihood_weight: Tensor  # (B,)
    noise_scale: Tensor  # (B,)
    # The C best-fitting of the candidate draws (gd-best's starts), when started from candidates.
    best_candidates: Tensor | None = None  # (B, C, D)

    def diagnostics(self) -> dict:
        return self._asdict()


def systematic_resample(rng: torch.Generator, log_weights: Tensor, num: int | None = None) -> Tensor:
    """Ancestor indices ``(B, num)`` (default ``num = C``) by systematic resampling of each
    row of ``log_weights`` ``(B, C)``, the offsets drawn from ``rng``."""
    offset = torch.rand((log_weights.shape[0], 1), generator=rng, device=log_weights.device, dtype=log_weights.dtype)
    return systematic_ancestors(log_weights, offset, num)


def _gather(tensor: Tensor, index: Tensor) -> Tensor:
    """``tensor[b, index[b, c]]`` for a ``(B, C, ...)`` tensor and ``(B, C)`` indices."""
    idx = index.reshape(*index.shape, *([1] * (tensor.dim() - 2))).expand(-1, -1, *tensor.shape[2:])
    return torch.gather(tensor, 1, idx)


def _start_from_candidates(
    posterior: Posterior, *, chains: int, candidates: int, rng: torch.Generator, target_ess: float,
    correction: Callable[[Tensor], Tensor] | None, init: str | Proposal,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """First tempering step over ``candidates`` draws from ``init``, forward passes only.

    Returns ``chains`` resampled latents ``(B, C, D)``, the reached β ``(B,)``, the
    log-evidence increment ``(B,)``, the ceiling on β ``(B,)`` and the ``chains`` best-fitting
    draws ``(B, C, D)``.
    """
    b = posterior.batch
    z, log_w0 = draw_initial(posterior, init, candidates, rng=rng, need_density=True)
    log_lik = posterior.score(z)
    uniform = torch.full_like(log_lik, -math.log(candidates))
    if log_w0 is not None:  # proposal draws carry their weights p(z) / q(z)
        uniform = uniform + log_w0
    zeros = torch.zeros(b, device=z.device, dtype=z.dtype)
    beta, ceiling = advance(uniform, log_lik, zeros, torch.ones_like(zeros), target_ess=target_ess,
                            correction=correction)
    increment = weight_increment(beta, log_lik)
    log_z = torch.logsumexp(uniform + increment, dim=-1)
    ancestors = systematic_resample(rng, increment if log_w0 is None else log_w0 + increment, num=chains)
    best = _gather(z, log_lik.topk(chains, dim=1).indices)
    return _gather(z, ancestors), beta, log_z, ceiling, best


def _evidence_correction(posterior: Posterior) -> Callable[[Tensor], Tensor]:
    """Per observation (first dim of ``beta``, ``(B,)`` or ``(B, K)``): what turns log Z(β) into
    the log evidence of the noise scale that β amounts to (:meth:`NoiseModel.evidence_correction`)."""
    if posterior.discriminator is not None:
        raise ValueError("empirical Bayes fits the noise scale of the likelihood alone; "
                         "it cannot be combined with a discriminator term")
    count = posterior.observed_count
    # The terms that do not depend on β, computed once: a compiled reweighing takes them as tensors.
    normaliser, exponent = posterior.noise.log_normaliser(count), count * posterior.noise.power

    def correction(beta: Tensor) -> Tensor:
        shape = (-1, *([1] * (beta.dim() - 1)))
        return tempering_correction(beta, normaliser.reshape(shape), exponent.reshape(shape))

    return correction


def _prior_variance(posterior: Posterior) -> Tensor | float:
    """The latent prior's variance per dimension (1 for the standard normal, or where the
    prior does not say)."""
    if posterior.prior is None:
        return 1.0
    try:
        return posterior.prior.variance.to(posterior.observed).expand(posterior.latent_dim)
    except (NotImplementedError, AttributeError, RuntimeError):
        return 1.0


def smc(
    posterior: Posterior,
    *,
    chains: int,
    rng: torch.Generator,
    leapfrog: int = 10,
    hmc_per_temperature: int = 1,
    step_size: float | None = None,
    target_ess: float = 0.5,
    resample_threshold: float = 0.5,
    target_acceptance: float = 0.65,
    adapt_mass: bool = True,
    mass_shrinkage: float = 0.0,
    max_steps: int = 1000,
    final_moves: int = 0,
    final_leapfrog: int | None = None,
    candidates: int = 0,
    init: str | Proposal = "prior",
    temper_from: str = "prior",
    empirical_bayes: bool = False,
    max_grad_evals: int | None = None,
    callback: Callback | None = None,
    compile: bool | str = "auto",
    precision: str = "full",
) -> SamplerOutput:
    """Adaptive tempered SMC with HMC moves for every observation of ``posterior``.

    Args:
        leapfrog: leapfrog steps L per HMC move.
        hmc_per_temperature: HMC moves M after each reweighting.
        step_size: initial step size in units of the particles' standard deviation
            (default ``0.5 · D^(-1/4)``, the scaling of Beskos et al. 2013).
        target_ess: conditional ESS fraction each tempering step keeps (BlackJAX's 0.5).
        resample_threshold: resample an observation's particles when ESS/C falls below it.
        adapt_mass: use the particles' variance as the diagonal inverse mass matrix.
        mass_shrinkage: pseudo-particles at the prior's variance added to that estimate
            (:func:`~cogenerate.mcmc.adapt.adapt_mass`). The default method uses 2 with its
            16 particles (docs/benchmarks.md §7, target 2); with hundreds of particles on a
            sharp posterior it only inflates the mass of the constrained directions.
        max_steps: cap on tempering steps.
        final_moves: extra HMC moves at β = 1 after the last tempering step. Under a budget,
            up to a quarter of it is kept for them: a tempering that would overrun it jumps
            to its final β early enough that moves still follow the jump (otherwise the
            particles are the jump's resampled copies of a few).
        final_leapfrog: leapfrog steps per final move (default ``leapfrog``). After the last
            resampling the particles are copies of a few; longer trajectories spread them along
            the directions the observation leaves loose in fewer gradients than more short
            moves (a random walk covers √n of what n steps in one direction do). Under a
            budget, what is left short of one such move goes to moves of ``leapfrog`` steps.
        candidates: if larger than ``chains``, start from this many draws scored by
            forward passes only (no gradients, as gd-best's candidates): the first tempering
            step reweights all of them and resamples ``chains`` particles.
        init: "prior", or a proposal (:mod:`cogenerate.proposals`): its draws start with
            weights p(z)/q(z), and the evidence estimate stays unbiased.
        temper_from: "prior" (the path p·L^β), or "init": the path q^(1−β)·(p·L)^β from the
            proposal's own density (:mod:`~cogenerate.anneal.bridge`): the draws from q start
            with equal weights. Needs a proposal with a ``reference`` density and a fixed noise
            scale; runs eagerly.
        empirical_bayes: fit the noise scale by maximum evidence on the way (type-II
            maximum likelihood). Tempering the likelihood to β is the same as widening its
            scale s to s·β^(-1/2) (Gaussian) or s·β^(-1) (Laplace), so each tempering step
            also estimates the evidence of every scale it passes; tempering stops, per
            observation, where that evidence peaks (:func:`evidence_peak`). Give the noise
            model a small scale s (a floor) and read the fitted one in the info's
            ``noise_scale``; ``log_evidence`` is then that scale's.
        max_grad_evals: cap on gradient evaluations per chain (1 + steps·M·L + moves·L).
            When the next tempering step would exceed it, β jumps to 1 (under empirical
            Bayes: to the evidence peak) by reweighting alone; the particles from just
            before the jump are kept in the info's ``tempered_latents`` (at ``tempered_beta``).
        callback: called after every mutation; returning False stops early (the log
            evidence is then NaN for observations short of their final β).
        compile: run each tempering step as two ``torch.compile``d graphs (True: the reweighing,
            then the resampling, re-tuning and HMC moves, :class:`~cogenerate.anneal.compiled.Stepper`),
            eagerly (False), or where that measurably pays ("auto",
            :func:`~cogenerate.anneal.compiled.resolve_compile`). Only the loop's two yes/no
            questions (resample? done?) and the random draws stay in Python.
        precision: "full", or "bf16" to run the generator under bfloat16 autocast with the
            likelihood, energies and accept in the observations' dtype.

    Returns:
        a :class:`SamplerOutput` with an :class:`SMCInfo`.
    """
    if not 0 < target_ess < 1:
        raise ValueError(f"target_ess must lie in (0, 1), got {target_ess}")
    cost = hmc_per_temperature * leapfrog
    final_leapfrog = leapfrog if final_leapfrog is None else final_leapfrog
    if final_leapfrog < 1:
        raise ValueError(f"final_leapfrog must be a positive integer, got {final_leapfrog}")
    final_cost = hmc_per_temperature * final_leapfrog
    if max_grad_evals is not None and max_grad_evals < 1:
        raise ValueError(f"max_grad_evals must be at least 1, got {max_grad_evals}")
    posterior = with_precision(posterior, precision)
    posterior, init, compile = temper_from_init(posterior, init, temper_from, empirical_bayes=empirical_bayes,
                                                compile=compile)
    observed = posterior.observed
    device, dtype = observed.device, observed.dtype
    b, d = posterior.batch, posterior.latent_dim
    correction = _evidence_correction(posterior) if empirical_bayes else None
    beta = torch.zeros(b, device=device, dtype=dtype)
    ceiling = torch.ones(b, device=device, dtype=dtype)
    log_z = torch.zeros(b, device=device, dtype=dtype)
    log_w = torch.full((b, chains), -math.log(chains), device=device, dtype=dtype)
    steps = 0
    best_candidates = None
    if candidates > chains:
        z, beta, log_z, ceiling, best_candidates = _start_from_candidates(posterior, chains=chains, candidates=candidates, rng=rng,
                                                         target_ess=target_ess, correction=correction, init=init)
        steps = 1
    else:
        z, log_w0 = draw_initial(posterior, init, chains, rng=rng, need_density=True)
        if log_w0 is not None:
            log_z = torch.logsumexp(log_w0, dim=-1) - math.log(chains)
            log_w = torch.log_softmax(log_w0, dim=-1)
    planned = max_grad_evals if max_grad_evals is not None else 1 + max_steps * cost + final_moves * final_cost
    compiled = resolve_compile(compile, posterior, planned_grad_evals=planned)
    state = make_starter(posterior, compile=compiled)(z, beta)
    settings = MoveSettings(leapfrog, adapt_mass, mass_shrinkage, _prior_variance(posterior), target_acceptance,
                            DIVERGENCE_THRESHOLD)
    stepper = Stepper(posterior, settings=settings, target_ess=target_ess, resample_threshold=resample_threshold,
                      correction=correction, compile=compiled)
    spent = 1
    # Budget kept for moves after the last tempering step (see ``final_moves``).
    reserved = 0 if max_grad_evals is None else min(final_moves * final_cost,
                                                     cost * ((max_grad_evals - 1) // (4 * cost)))
    tuning = particle_tuning_init(b, d, step_size=step_size, like=observed)
    trace: dict[str, list] = {"beta": [], "ess": [], "acceptance_rate": [], "step_size": [], "resampled": []}
    divergent = 0
    if steps and (max_grad_evals is None or spent + cost <= max_grad_evals):
        # The candidates' reweighting was the first tempering step: move before the next one.
        trace["beta"].append(beta.clone())
        moved = stepper.move(rng, state, log_w, tuning, beta, moves=hmc_per_temperature)
        state, tuning, divergent, spent = moved.state, moved.tuning, divergent + moved.divergences, spent + cost
    tempered_latents, tempered_beta = None, None
    cancelled = False

    def progress() -> float:
        return min(1.0, spent / max_grad_evals if max_grad_evals is not None else float((beta / ceiling).min()))

    unfinished = bool((beta < ceiling).any())
    while unfinished and steps < max_steps:
        out_of_budget = max_grad_evals is not None and spent + cost > max_grad_evals - reserved
        forced = out_of_budget or steps == max_steps - 1
        if forced:
            # Keep the particles as they were before the forced jump: still diverse.
            tempered_latents, tempered_beta = state.position.clone(), beta.clone()
        reweighed, resample, unfinished = stepper.reweigh(log_w, state.aux.log_likelihood, beta, ceiling, log_z,
                                                          forced=forced)
        beta, ceiling, log_z, log_w = reweighed.beta, reweighed.ceiling, reweighed.log_z, reweighed.log_weights
        steps += 1
        trace["beta"].append(beta.clone())
        trace["ess"].append(reweighed.ess / chains)
        trace["resampled"].append(reweighed.resample)
        # Out of budget: resample and re-tune, but do not move.
        moved = stepper.move(rng, state, log_w, tuning, beta, moves=0 if out_of_budget else hmc_per_temperature,
                             resample=reweighed.resample if resample else None)
        state, log_w, tuning = moved.state, moved.log_weights, moved.tuning
        if out_of_budget:
            break
        divergent = divergent + moved.divergences
        spent += cost
        acc, ess = moved.acceptance, reweighed.ess
        trace["acceptance_rate"].append(acc.mean())
        trace["step_size"].append(tuning.step_size.mean())
        if notify(callback, lambda: Step(progress(), state.position, state.aux.sample, log_w, beta,
                                         {"ess": ess / chains, "acceptance_rate": acc.mean()})):
            cancelled = True
            break
    long_stepper = stepper if final_leapfrog == leapfrog else None
    for _ in range(0 if cancelled else final_moves):
        left = math.inf if max_grad_evals is None else max_grad_evals - spent
        if left >= final_cost:
            if long_stepper is None:
                long_stepper = Stepper(posterior, settings=settings._replace(num_leapfrog=final_leapfrog),
                                       target_ess=target_ess, resample_threshold=resample_threshold,
                                       correction=correction, compile=compiled)
            mover, used = long_stepper, final_cost
        elif left >= cost:  # the end of a budget, in moves of the tempering's length
            mover, used = stepper, cost
        else:
            break
        moved = mover.move(rng, state, log_w, tuning, beta, moves=hmc_per_temperature)
        state, tuning, divergent, spent = moved.state, moved.tuning, divergent + moved.divergences, spent + used

    def stacked(name: str, per_observation: bool) -> Tensor:
        if trace[name]:
            return torch.stack(trace[name], 1 if per_observation else 0).cpu()
        return torch.zeros(b, 0) if per_observation else torch.zeros(0)

    info = SMCInfo(
        beta=stacked("beta", True),
        ess=stacked("ess", True),
        resampled=stacked("resampled", True),
        acceptance_rate=stacked("acceptance_rate", False),
        step_size=stacked("step_size", False),
        divergences=int(divergent),
        steps=steps,
        tempered_latents=state.position if tempered_latents is None else tempered_latents,
        tempered_beta=beta.cpu() if tempered_beta is None else tempered_beta.cpu(),
        likelihood_weight=beta,
        noise_scale=posterior.noise.tempered_scale(beta).cpu(),
        best_candidates=best_candidates,
    )
    log_evidence = log_z if correction is None else log_z + correction(beta)
    if cancelled:
        log_evidence = torch.where(beta < ceiling, torch.full_like(log_evidence, torch.nan), log_evidence)
    return SamplerOutput(
        latents=state.position,
        samples=state.aux.sample,
        log_weights=log_w,
        log_evidence=log_evidence,
        grad_evals=spent,
        info=info,
        noise_scale=info.noise_scale,
        cancelled=cancelled,
    )


