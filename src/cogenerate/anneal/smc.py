"""Sequential Monte Carlo with adaptive tempering and HMC moves.

AIS (:mod:`cogenerate.anneal.ais`) plus three things the paper's Algorithm 1 lacks:

1. adaptive tempering: the next β of each observation is found by bisection so that the
   conditional effective sample size (Zhou, Johansen & Aston 2016, eq. 3.16) of the
   incremental weights equals ``target_ess · C`` (as in BlackJAX's ``adaptive_tempered_smc``);
2. systematic resampling (Carpenter, Clifford & Fearnhead 1999), per observation, whenever
   the ESS falls below ``resample_threshold · C``;
3. kernels re-tuned from the particles: a diagonal inverse mass matrix equal to the
   particles' weighted variance (Chopin 2002, §2.1 of Buchholz, Chopin & Jacob 2021), and a
   step size per observation moved toward the target acceptance after every mutation;
4. optionally (``empirical_bayes``), the noise scale fitted by maximum evidence: tempering
   stops where the estimated evidence of the scale that β amounts to peaks.

``log_evidence`` is the product of the mean incremental weights (Del Moral et al. 2006).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from cogenerate.anneal.ais import effective_sample_size, weight_increment
from cogenerate.anneal.output import SamplerOutput
from cogenerate.mcmc.hmc import HMCState, hmc_init, hmc_step
from cogenerate.posterior import Evaluation, Posterior

__all__ = ["smc", "next_beta", "evidence_peak", "systematic_resample", "conditional_ess"]

Progress = Callable[[float], None] | None

# Next-β search: CESS is evaluated on a log-spaced grid of steps Δβ ∈ (1−β)·[1e-12, 1]
# and then on a linear grid between the bracketing points, both in one batched op each
# (instead of ~60 sequential bisection steps): Δβ is found to ~1 % of itself.
GRID_POINTS = 64
GRID_SMALLEST = 1e-12


def conditional_ess(log_weights: Tensor, increment: Tensor) -> Tensor:
    """CESS / C of incremental log-weights ``increment`` under normalised ``log_weights``,
    both ``(B, C)`` -> ``(B,)`` in [1/C, 1] (Zhou, Johansen & Aston 2016)."""
    w = torch.softmax(log_weights, dim=-1)
    shifted = increment - increment.max(dim=-1, keepdim=True).values
    shifted = torch.nan_to_num(shifted, nan=-torch.inf)
    g = shifted.exp()
    return (w * g).sum(-1).pow(2) / (w * g.pow(2)).sum(-1).clamp_min(torch.finfo(g.dtype).tiny)


def _cess_at(log_weights: Tensor, log_likelihood: Tensor, deltas: Tensor) -> Tensor:
    """CESS / C ``(B, K)`` for every candidate step ``deltas`` ``(B, K)`` at once."""
    d = deltas.unsqueeze(-1)
    increment = d * log_likelihood.unsqueeze(1)
    increment = torch.where(d == 0, torch.zeros_like(increment), increment)
    return conditional_ess(log_weights.unsqueeze(1), increment)


def _last_true(ok: Tensor) -> Tensor:
    """Index of the last True per row of ``ok`` ``(B, K)``, -1 where none."""
    k = ok.shape[-1]
    positions = torch.arange(1, k + 1, device=ok.device).expand_as(ok)
    return (positions * ok).amax(-1) - 1


def next_beta(
    log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, *, target_ess: float, ceiling: Tensor | None = None
) -> Tensor:
    """The largest β' ∈ (β, ceiling] per observation whose conditional ESS ≥ ``target_ess``
    (to ~1 % of the step; never below the target).

    ``log_weights``, ``log_likelihood``: ``(B, C)``; ``beta``, ``ceiling``: ``(B,)``
    (default ceiling 1). Observations at their ceiling stay there.
    """
    ceiling = torch.ones_like(beta) if ceiling is None else ceiling
    remaining = (ceiling - beta).clamp_min(0.0)
    exponents = torch.linspace(math.log10(GRID_SMALLEST), 0.0, GRID_POINTS, device=beta.device, dtype=beta.dtype)
    coarse = remaining.unsqueeze(1) * torch.pow(10.0, exponents)  # (B, K), last column = remaining
    index = _last_true(_cess_at(log_weights, log_likelihood, coarse) >= target_ess)
    rows = torch.arange(len(beta), device=beta.device)
    low = torch.where(index >= 0, coarse[rows, index.clamp_min(0)], torch.zeros_like(remaining))
    high = coarse[rows, (index + 1).clamp(max=GRID_POINTS - 1)]
    fine = low.unsqueeze(1) + (high - low).unsqueeze(1) * torch.linspace(0, 1, GRID_POINTS, device=beta.device,
                                                                          dtype=beta.dtype)
    fine_index = _last_true(_cess_at(log_weights, log_likelihood, fine) >= target_ess)
    delta = fine[rows, fine_index.clamp_min(0)]
    # Never stall at β (a zero step would loop forever): take the smallest grid step.
    delta = torch.where(delta > 0, delta, coarse[:, 0])
    return torch.where(beta >= ceiling, beta, torch.minimum(beta + delta, ceiling))


def evidence_peak(
    log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, upper: Tensor, correction: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """The β' ∈ [β, upper] that maximises the estimated evidence of the noise scale s_β'.

    The β-tempered target of a Gaussian (Laplace) likelihood with scale s is the posterior
    at the scale s·β^(-1/2) (s·β^(-1)), so ``log Z(β') + correction(β')`` is the log
    evidence of that scale; ``log Z(β') − log Z(β)`` is estimated from the current
    particles by importance sampling. Returns the maximiser ``(B,)`` and whether it lies
    before ``upper`` ``(B,)`` (the evidence peaks within the step: stop tempering there).
    """
    t = torch.cat([torch.logspace(-6, 0, GRID_POINTS, device=beta.device, dtype=beta.dtype),
                   torch.linspace(0, 1, GRID_POINTS, device=beta.device, dtype=beta.dtype)]).unique()  # sorted
    candidates = beta.unsqueeze(1) + (upper - beta).unsqueeze(1) * t  # (B, K), last column = upper
    delta = (candidates - beta.unsqueeze(1)).unsqueeze(-1)
    increment = torch.where(delta == 0, 0.0, delta * log_likelihood.unsqueeze(1))
    log_z = torch.logsumexp(torch.log_softmax(log_weights, -1).unsqueeze(1) + increment, dim=-1)
    evidence = torch.nan_to_num(log_z + correction(candidates), nan=-torch.inf)
    index = evidence.argmax(1)
    peak = candidates[torch.arange(len(beta), device=beta.device), index]
    return peak, (index < candidates.shape[1] - 1) & (beta < upper)


def _advance(
    log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, ceiling: Tensor, *, target_ess: float,
    correction: Callable[[Tensor], Tensor] | None, forced: bool = False,
) -> tuple[Tensor, Tensor]:
    """The next β and ceiling ``(B,)``: the CESS step (or, ``forced``, straight to the ceiling),
    cut at the evidence peak under empirical Bayes, which then becomes the ceiling."""
    new_beta = ceiling if forced else next_beta(log_weights, log_likelihood, beta, target_ess=target_ess,
                                                ceiling=ceiling)
    if correction is None:
        return new_beta, ceiling
    peak, inside = evidence_peak(log_weights, log_likelihood, beta, new_beta, correction)
    settled = inside | forced
    return peak, torch.where(settled, peak, ceiling)


def systematic_resample(rng: torch.Generator, log_weights: Tensor, num: int | None = None) -> Tensor:
    """Ancestor indices ``(B, num)`` (default ``num = C``) by systematic resampling of each
    row of ``log_weights`` ``(B, C)``."""
    b, c = log_weights.shape
    num = c if num is None else num
    w = torch.softmax(log_weights, dim=-1)
    cdf = torch.cumsum(w, dim=-1)
    cdf[:, -1] = 1.0
    u = torch.rand((b, 1), generator=rng, device=w.device, dtype=w.dtype)
    points = (u + torch.arange(num, device=w.device, dtype=w.dtype)) / num
    return torch.searchsorted(cdf, points).clamp(max=c - 1)


def _gather(tensor: Tensor, index: Tensor) -> Tensor:
    """``tensor[b, index[b, c]]`` for a ``(B, C, ...)`` tensor and ``(B, C)`` indices."""
    idx = index.reshape(*index.shape, *([1] * (tensor.dim() - 2))).expand(-1, -1, *tensor.shape[2:])
    return torch.gather(tensor, 1, idx)


def _gather_state(state: HMCState, index: Tensor) -> HMCState:
    evaluation = Evaluation(*(_gather(t, index) for t in state.evaluation))
    return HMCState(_gather(state.position, index), evaluation)


def _particle_variance(position: Tensor, log_weights: Tensor) -> Tensor:
    """Weighted variance per observation and latent dimension, ``(B, 1, D)``."""
    w = torch.softmax(log_weights, dim=-1).unsqueeze(-1)
    mean = (w * position).sum(1, keepdim=True)
    return (w * (position - mean).pow(2)).sum(1, keepdim=True)


def _start_from_candidates(
    posterior: Posterior, *, chains: int, candidates: int, rng: torch.Generator, target_ess: float,
    correction: Callable[[Tensor], Tensor] | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """First tempering step over ``candidates`` prior draws, forward passes only.

    Returns ``chains`` resampled latents ``(B, C, D)``, the reached β ``(B,)``, the
    log-evidence increment ``(B,)`` and the ceiling on β ``(B,)``.
    """
    observed = posterior.observed
    b, d = posterior.batch, posterior.latent_dim
    z = torch.randn((b, candidates, d), generator=rng, device=observed.device, dtype=observed.dtype)
    log_lik = posterior.score(z)
    uniform = torch.full_like(log_lik, -math.log(candidates))
    zeros = torch.zeros(b, device=z.device, dtype=z.dtype)
    beta, ceiling = _advance(uniform, log_lik, zeros, torch.ones_like(zeros), target_ess=target_ess,
                             correction=correction)
    increment = weight_increment(beta, log_lik)
    log_z = torch.logsumexp(uniform + increment, dim=-1)
    ancestors = systematic_resample(rng, increment, num=chains)
    return _gather(z, ancestors), beta, log_z, ceiling


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
    max_steps: int = 1000,
    final_moves: int = 0,
    candidates: int = 0,
    empirical_bayes: bool = False,
    max_grad_evals: int | None = None,
    progress: Progress = None,
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
        max_steps: cap on tempering steps.
        final_moves: extra HMC moves at β = 1 after the last tempering step.
        candidates: if larger than ``chains``, start from this many prior draws scored by
            forward passes only (no gradients, as gd-best's candidates): the first tempering
            step reweights all of them and resamples ``chains`` particles.
        empirical_bayes: fit the noise scale by maximum evidence on the way (type-II
            maximum likelihood). Tempering the likelihood to β is the same as widening its
            scale s to s·β^(-1/2) (Gaussian) or s·β^(-1) (Laplace), so each tempering step
            also estimates the evidence of every scale it passes; tempering stops, per
            observation, where that evidence peaks (:func:`evidence_peak`). Give the noise
            model a small scale s (a floor) and read the fitted one in
            ``diagnostics["noise_scale"]``; ``log_evidence`` is then that scale's.
        max_grad_evals: cap on gradient evaluations per chain (1 + steps·M·L + moves·L).
            When the next tempering step would exceed it, β jumps to 1 (under empirical
            Bayes: to the evidence peak) by reweighting alone; the particles from just
            before the jump are kept in
            ``diagnostics["tempered_latents"]`` (at ``diagnostics["tempered_beta"]``).

    Returns:
        a :class:`SamplerOutput`.
    """
    if not 0 < target_ess < 1:
        raise ValueError(f"target_ess must lie in (0, 1), got {target_ess}")
    cost = hmc_per_temperature * leapfrog
    if max_grad_evals is not None and max_grad_evals < 1:
        raise ValueError(f"max_grad_evals must be at least 1, got {max_grad_evals}")
    observed = posterior.observed
    device, dtype = observed.device, observed.dtype
    b, d = posterior.batch, posterior.latent_dim
    correction = None
    if empirical_bayes:
        if posterior.discriminator is not None:
            raise ValueError("empirical Bayes fits the noise scale of the likelihood alone; "
                             "it cannot be combined with a discriminator term")
        count = posterior.observed_count

        def correction(beta: Tensor) -> Tensor:
            """Per observation (first dim of ``beta``): ``(B,)`` or ``(B, K)`` candidates."""
            return posterior.noise.evidence_correction(beta, count.reshape(-1, *([1] * (beta.dim() - 1))))

    beta = torch.zeros(b, device=device, dtype=dtype)
    ceiling = torch.ones(b, device=device, dtype=dtype)
    log_z = torch.zeros(b, device=device, dtype=dtype)
    steps = 0
    if candidates > chains:
        z, beta, log_z, ceiling = _start_from_candidates(posterior, chains=chains, candidates=candidates, rng=rng,
                                                         target_ess=target_ess, correction=correction)
        steps = 1
    else:
        z = torch.randn((b, chains, d), generator=rng, device=device, dtype=dtype)
    state = hmc_init(z, posterior)
    spent = 1
    log_w = torch.full((b, chains), -math.log(chains), device=device, dtype=dtype)
    eps = torch.full((b, 1), step_size if step_size is not None else 0.5 * d**-0.25, device=device, dtype=dtype)
    inv_mass = torch.ones((b, 1, d), device=device, dtype=dtype)
    trace: dict[str, list] = {"beta": [], "ess": [], "acceptance_rate": [], "step_size": [], "resampled": []}
    divergent = torch.zeros((), dtype=torch.long)

    def mutate(state: HMCState, beta: Tensor, eps: Tensor, inv_mass: Tensor) -> tuple[HMCState, Tensor, Tensor, Tensor]:
        """M HMC moves at ``beta``; returns (state, next ε, mean acceptance (B, C), divergences)."""
        acc = torch.zeros((b, chains), device=device, dtype=dtype)
        divergent = torch.zeros((), dtype=torch.long)
        for _ in range(hmc_per_temperature):
            jitter = torch.empty((b, chains), device=device, dtype=dtype).uniform_(0.8, 1.2, generator=rng)
            state, info = hmc_step(rng, state, posterior, beta=beta, step_size=eps * jitter,
                                   num_leapfrog=leapfrog, inverse_mass=inv_mass)
            acc = acc + info.acceptance_prob / hmc_per_temperature
            divergent = divergent + info.is_divergent.sum().cpu()
        # Robbins–Monro step on log ε per observation toward the target acceptance.
        eps = eps * torch.exp(acc.mean(1, keepdim=True) - target_acceptance)
        return state, eps, acc, divergent

    if steps and (max_grad_evals is None or spent + cost <= max_grad_evals):
        # The candidates' reweighting was the first tempering step: move before the next one.
        trace["beta"].append(beta.clone())
        if adapt_mass:
            inv_mass = _particle_variance(state.position, log_w).clamp(1e-6, 1e6)
        state, eps, acc, div = mutate(state, beta, eps, inv_mass)
        divergent, spent = divergent + div, spent + cost
    tempered_latents, tempered_beta = None, None
    while bool((beta < ceiling).any()) and steps < max_steps:
        out_of_budget = max_grad_evals is not None and spent + cost > max_grad_evals
        forced = out_of_budget or steps == max_steps - 1
        if forced:
            # Keep the particles as they were before the forced jump: still diverse.
            tempered_latents, tempered_beta = state.position.clone(), beta.clone()
        new_beta, ceiling = _advance(log_w, state.evaluation.log_likelihood, beta, ceiling, target_ess=target_ess,
                                     correction=correction, forced=forced)
        increment = weight_increment(new_beta - beta, state.evaluation.log_likelihood)
        log_z = log_z + torch.logsumexp(torch.log_softmax(log_w, -1) + increment, dim=-1)
        log_w = torch.log_softmax(log_w + increment, dim=-1)
        beta = new_beta
        steps += 1
        ess = effective_sample_size(log_w)
        resample = ess < resample_threshold * chains
        if bool(resample.any()):
            ancestors = systematic_resample(rng, log_w)
            keep = torch.arange(chains, device=device).expand(b, chains)
            ancestors = torch.where(resample.unsqueeze(1), ancestors, keep)
            state = _gather_state(state, ancestors)
            log_w = torch.where(resample.unsqueeze(1), torch.full_like(log_w, -math.log(chains)), log_w)
        if adapt_mass:
            inv_mass = _particle_variance(state.position, log_w).clamp(1e-6, 1e6)
        trace["beta"].append(beta.clone())
        trace["ess"].append(ess / chains)
        trace["resampled"].append(resample)
        if out_of_budget:
            break
        state, eps, acc, div = mutate(state, beta, eps, inv_mass)
        divergent = divergent + div
        spent += cost
        trace["acceptance_rate"].append(acc.mean())
        trace["step_size"].append(eps.mean())
        if progress is not None:
            done = spent / max_grad_evals if max_grad_evals is not None else float((beta / ceiling).min())
            progress(min(1.0, done))
    for _ in range(final_moves):
        if max_grad_evals is not None and spent + cost > max_grad_evals:
            break
        state, eps, _, div = mutate(state, beta, eps, inv_mass)
        divergent = divergent + div
        spent += cost
    diagnostics = {
        "beta": torch.stack(trace["beta"], 1).cpu() if trace["beta"] else torch.zeros(b, 0),
        "ess": torch.stack(trace["ess"], 1).cpu() if trace["ess"] else torch.zeros(b, 0),
        "resampled": torch.stack(trace["resampled"], 1).cpu() if trace["resampled"] else torch.zeros(b, 0),
        "acceptance_rate": torch.stack(trace["acceptance_rate"]).cpu() if trace["acceptance_rate"] else torch.zeros(0),
        "step_size": torch.stack(trace["step_size"]).cpu() if trace["step_size"] else torch.zeros(0),
        "divergences": int(divergent),
        "steps": steps,
        # Particles before β was forced up by the budget (the final ones if it was not).
        "tempered_latents": state.position if tempered_latents is None else tempered_latents,
        "tempered_beta": beta.cpu() if tempered_beta is None else tempered_beta.cpu(),
        # The final target: the likelihood's weight β and the noise scale it amounts to.
        "likelihood_weight": beta,
        "noise_scale": posterior.noise.tempered_scale(beta).cpu(),
    }
    return SamplerOutput(
        latents=state.position,
        samples=state.evaluation.sample,
        log_weights=log_w,
        log_evidence=log_z if correction is None else log_z + correction(beta),
        grad_evals=spent,
        diagnostics=diagnostics,
    )
