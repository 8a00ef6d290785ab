"""The tempered HMC move and the SMC tempering step as compiled graphs, and the generator in bf16.

The annealed samplers keep their data-dependent loops in Python. AIS
(:mod:`~cogenerate.anneal.ais`) hands each HMC move to a *mover* built here:
``move(rng, state, beta, step_size=..., inverse_mass=...) -> (state, info)``. SMC
(:mod:`~cogenerate.anneal.smc`) hands each tempering step to a :class:`Stepper`: the reweighing
to the next β (:func:`~cogenerate.anneal.smc_step.reweigh`), then the resampling, re-tuning and
HMC moves (:func:`~cogenerate.anneal.smc_step.resample_and_move`).

* ``compile=False``: eager; gradients by ``torch.autograd.grad``.
* ``compile=True``: the same functions traced whole by ``torch.compile(fullgraph=True,
  dynamic=False)``: the L leapfrog steps unrolled, each gradient by ``torch.func.grad`` through
  the generator, the Metropolis–Hastings accept and the per-chain ``torch.where``; for SMC also
  the next-β search, the weights, systematic resampling (a ``torch.where`` per observation
  between the ancestors and the chains themselves) and the mass and step-size updates. The
  random numbers are drawn eagerly from the sampler's ``torch.Generator`` first
  (:func:`~cogenerate.mcmc.hmc.hmc_draws`, :func:`~cogenerate.anneal.smc_step.step_draws`: the
  same draws in the same order as the eager run), so the compiled run follows the eager one up
  to floating-point rounding. Everything that changes between calls (observations, β, step
  sizes, the noise scale, the evidence correction's terms) enters the graph as a tensor, so one
  compilation serves every later call with the same generator, shapes, dtype and number of
  leapfrog steps (``torch.compile``'s own cache, per process; up to ``GRAPH_LIMIT`` graphs,
  eager after that). The chains' first evaluation (:func:`make_starter`) is a smaller graph of
  the same kind.
* ``compile="auto"``: compiled only for runs long enough to earn the compilation back
  (:func:`resolve_compile`).

``precision="bf16"`` runs the generator (and the critic) under ``torch.autocast`` in bfloat16
and casts its output back to the observations' dtype, so the likelihood, the energies and the
accept stay in float32 (float64). Autocast leaves float64 inputs alone: it only acts on
float32 generators.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from cogenerate.anneal.smc_step import MoveSettings, Moved, Reweighed, StepDraws, resample_and_move, reweigh, step_draws
from cogenerate.anneal.tempering import evaluator, start, tempered_density
from cogenerate.mcmc.adapt import ParticleTuning
from cogenerate.mcmc.hmc import DIVERGENCE_THRESHOLD, HMCInfo, HMCState, hmc_draws, hmc_init, hmc_move, hmc_step
from cogenerate.operators import Gaussian, Laplace, NoiseModel
from cogenerate.posterior import Evaluation, Posterior

try:  # a private helper of dynamo's: without it, every compiled call raises the recompile limit
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list as _cache_entries
except ImportError:  # pragma: no cover
    _cache_entries = None

__all__ = ["COMPILE_CHOICES", "PRECISIONS", "Mover", "Starter", "Stepper", "make_mover", "make_starter",
           "resolve_compile", "with_precision", "check_compile", "check_precision"]

COMPILE_CHOICES = (False, True, "auto")
PRECISIONS = ("full", "bf16")

# Inductor options of the compiled graphs. Its layout optimisation converts the generator's
# convolution weights to channels-last inside the graph on every call (the weights are graph
# inputs, not constants): on the 28×28 DCGAN with 8 chains that made the compiled move no
# faster than the eager one; without it, 1.45× faster. The C++ wrapper calls the graph's
# kernels from generated C++ instead of Python: a move of 10 leapfrog steps on the toy MLP
# took 0.83 ms instead of 1.3 (docs/benchmarks.md, section 10).
COMPILE_OPTIONS = {"layout_optimization": False, "cpp_wrapper": True}

# Graphs kept per process for the one compiled move (distinct generators, shapes, dtypes and
# leapfrog counts). torch.compile's default limit, 8, would make the ninth a hard error under
# fullgraph=True; past this limit the move runs eagerly (the same function, not compiled).
GRAPH_LIMIT = 64

# "auto" compiles a run that plans at least this many gradient evaluations per chain: only a
# long run earns back a compilation of tens of seconds (docs/benchmarks.md, section 10).
AUTO_MIN_GRAD_EVALS = 100_000

Mover = Callable[..., tuple[HMCState, HMCInfo]]
"""``move(rng, state, beta (B,), *, step_size (B, C), inverse_mass) -> (HMCState, HMCInfo)``."""
Starter = Callable[[Tensor, Tensor], HMCState]
"""``start(position (B, C, D), beta (B,)) -> HMCState``: one gradient evaluation per chain."""


def check_compile(value: Any) -> None:
    if not (value is True or value is False or value == "auto"):
        raise ValueError(f"compile must be True, False or 'auto', got {value!r}")


def check_precision(value: Any) -> None:
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {value!r}")


def resolve_compile(setting: bool | str, posterior: Posterior, *, planned_grad_evals: int) -> bool:
    """Whether to compile the move: ``setting`` itself, or for ``"auto"`` the measured rule.

    A compilation costs 8–36 s (cold, on two CPU cores; cached for the rest of the process)
    and saves 0.2 ms (toy MLP, 100 chains) to 10 ms (28×28 DCGAN, 64 chains) per gradient
    evaluation: it is earned back after 2,000–100,000 gradients per chain (docs/benchmarks.md,
    section 10), more than one call with the default settings spends. So ``"auto"`` compiles
    a run that plans at least ``AUTO_MIN_GRAD_EVALS`` gradient evaluations per chain
    (``planned_grad_evals``: the budget, or what the settings allow), the highest measured
    break-even, and whose chains fit one generator call (no ``max_batch``).
    The rule reads the settings only, never timings, so a call gives the same result every time.
    """
    if setting != "auto":
        return bool(setting)
    return planned_grad_evals >= AUTO_MIN_GRAD_EVALS and posterior.max_batch is None


class _Autocast:
    """A generator (or critic) run under ``torch.autocast`` in bfloat16, output cast back to ``dtype``."""

    def __init__(self, module: Callable[..., Tensor], dtype: torch.dtype):
        self.module = module
        self.dtype = dtype
        self.latent_dim = getattr(module, "latent_dim", None)

    def __call__(self, *args: Tensor) -> Tensor:
        with torch.autocast(device_type=args[0].device.type, dtype=torch.bfloat16):
            out = self.module(*args)
        return out.to(self.dtype)


def with_precision(posterior: Posterior, precision: str) -> Posterior:
    """``posterior`` whose generator (and critic) run in ``precision`` ("full": unchanged;
    "bf16": autocast to bfloat16, outputs back in the observations' dtype)."""
    check_precision(precision)
    if precision == "full":
        return posterior
    dtype = posterior.observed.dtype
    critic = posterior.discriminator
    return dataclasses.replace(posterior, generator=_Autocast(posterior.generator, dtype),
                               discriminator=None if critic is None else _Autocast(critic, dtype))


class _Inputs(NamedTuple):
    """The tensors of the target that enter the compiled graph as inputs (not constants)."""

    observed_projection: Tensor  # (B, 1, *y_shape)
    count: Tensor  # (B,)
    scale: Tensor  # () the noise scale
    condition: Tensor | None  # (B, ...) or None


@dataclasses.dataclass(frozen=True)
class _Target:
    """What the compiled graph is specialised on: the modules and the kinds of operator and noise.
    ``noise`` is the noise model at scale 1: its scale enters as a tensor (:class:`_Inputs`)."""

    generator: Callable[..., Tensor]
    operator: Callable[[Tensor], Tensor]
    noise: NoiseModel
    discriminator: Callable[[Tensor], Tensor] | None
    discriminator_weight: float
    prior: Any
    latent_dim: int
    x_shape: tuple[int, ...]


def _unit_noise(noise: NoiseModel) -> tuple[NoiseModel, float]:
    """The noise model at scale 1 and the scale, for the location-scale families we know:
    ``log p_s(r) = log p_1(r / s) − count · log s``. Any other model keeps its scale (baked into
    the graph: a new scale compiles anew)."""
    if type(noise) in (Gaussian, Laplace):
        return type(noise)(1.0), noise.scale
    return noise, 1.0


def _log_likelihood(target: _Target, inputs: _Inputs, z: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """The tempered part at ``z`` ``(B, C, D)`` as :meth:`Posterior.log_likelihood_of_samples` of
    :meth:`Posterior.generate`: ``(sum, (log L (B, C), G(z) (B, C, *x_shape)))``."""
    b, c, d = z.shape
    flat = z.reshape(b * c, d)
    if inputs.condition is None:
        x = target.generator(flat)
    else:
        x = target.generator(flat, inputs.condition.repeat_interleave(c, dim=0))
    x = x.reshape(b, c, *target.x_shape)
    residual = (target.operator(x) - inputs.observed_projection) / inputs.scale
    log_lik = target.noise.log_prob(residual, inputs.count) - inputs.count.unsqueeze(1) * inputs.scale.log()
    if target.discriminator is not None:
        logits = target.discriminator(x.reshape(b * c, *target.x_shape)).reshape(b, c)
        log_lik = log_lik + target.discriminator_weight * logits
    return log_lik.sum(), (log_lik, x)


def _log_prior(target: _Target, z: Tensor) -> tuple[Tensor, Tensor]:
    """``log p(z)`` ``(B, C)`` and its gradient, as :meth:`Posterior.log_prior_and_grad`."""
    if target.prior is None:
        return -0.5 * z.pow(2).sum(-1) - 0.5 * target.latent_dim * math.log(2 * math.pi), -z

    def total(v: Tensor) -> tuple[Tensor, Tensor]:
        log_prior = target.prior.log_prob(v)
        return log_prior.sum(), log_prior

    grad, log_prior = torch.func.grad(total, has_aux=True)(z)
    return log_prior, grad


def _evaluate(target: _Target, inputs: _Inputs, z: Tensor) -> Evaluation:
    """Every piece of the target at ``z``, gradients by ``torch.func``: one gradient evaluation."""
    grad, (log_lik, sample) = torch.func.grad(functools.partial(_log_likelihood, target, inputs), has_aux=True)(z)
    log_prior, grad_prior = _log_prior(target, z)
    return Evaluation(log_prior, log_lik, grad_prior, grad, sample).sanitized()


def _tempered_move(target: _Target, inputs: _Inputs, state: HMCState, noise: Tensor, uniform: Tensor, beta: Tensor,
                   step_size: Tensor, inverse_mass: Tensor | float, num_leapfrog: int,
                   divergence_threshold: float) -> tuple[HMCState, HMCInfo]:
    """One HMC move under ``log p(z) + β·log L(z)``: the function ``torch.compile`` captures."""
    density = tempered_density(functools.partial(_evaluate, target, inputs), beta)
    return hmc_move(state, density, noise, uniform, step_size=step_size, num_leapfrog=num_leapfrog,
                    inverse_mass=inverse_mass, divergence_threshold=divergence_threshold)


def _tempered_start(target: _Target, inputs: _Inputs, position: Tensor, beta: Tensor) -> HMCState:
    """Chains at ``position`` under ``log p(z) + β·log L(z)``: the start ``torch.compile`` captures."""
    return hmc_init(position, tempered_density(functools.partial(_evaluate, target, inputs), beta))


@functools.cache
def _compiled(function: Callable[..., Any]) -> Callable[..., Any]:
    """The one compiled wrapper of ``function`` (its cache of graphs lives as long as the process)."""
    return torch.compile(function, fullgraph=True, dynamic=False, options=COMPILE_OPTIONS)


def _run_compiled(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` compiled, or eagerly once ``GRAPH_LIMIT`` graphs exist.

    Below dynamo's own recompile limit the call goes straight to the compiled function: raising
    the limit for every call (``config.patch``) cost about 0.1 ms per call, 0.8 ms of a 51-gradient
    toy run (docs/benchmarks.md, section 10)."""
    compiled = _compiled(function)
    if _cache_entries is not None and len(_cache_entries(function.__code__)) < torch._dynamo.config.recompile_limit:
        return compiled(*args)
    try:
        with torch._dynamo.config.patch(recompile_limit=GRAPH_LIMIT):
            return compiled(*args)
    except torch._dynamo.exc.FailOnRecompileLimitHit:
        return function(*args)


def _graph_inputs(posterior: Posterior) -> tuple[_Target, _Inputs]:
    """What the compiled functions are specialised on, and the tensors they take as inputs."""
    noise, scale = _unit_noise(posterior.noise)
    target = _Target(posterior.generator, posterior.operator, noise, posterior.discriminator,
                     float(posterior.discriminator_weight), posterior.prior, posterior.latent_dim, posterior.x_shape)
    like = posterior.observed
    inputs = _Inputs(posterior.observed_projection, posterior.observed_count,
                     torch.tensor(scale, device=like.device, dtype=like.dtype), posterior.condition)
    return target, inputs


def _check_one_call(posterior: Posterior, chains: int) -> None:
    if posterior.max_batch is not None and chains > posterior.max_batch:
        raise ValueError(f"the compiled move evaluates all {chains} chains in one generator call, more than "
                         f"max_batch={posterior.max_batch}: drop max_batch or use compile=False")


def make_starter(posterior: Posterior, *, compile: bool) -> Starter:
    """``start(position, beta) -> HMCState``: the chains evaluated under the tempered target of
    ``posterior`` (:func:`~cogenerate.anneal.tempering.start`), eagerly or as one compiled graph
    (the same evaluation as the compiled move's, so a compiled run starts as the eager one does
    up to rounding)."""
    if not compile:
        evaluate = evaluator(posterior.log_prior_and_grad, posterior.log_likelihood_and_grad)
        return lambda position, beta: start(position, evaluate, beta)
    target, inputs = _graph_inputs(posterior)

    def compiled_start(position: Tensor, beta: Tensor) -> HMCState:
        _check_one_call(posterior, position.shape[0] * position.shape[1])
        return _run_compiled(_tempered_start, target, inputs, position.detach(), beta)

    return compiled_start


def make_mover(posterior: Posterior, *, num_leapfrog: int, compile: bool,
               divergence_threshold: float = DIVERGENCE_THRESHOLD) -> Mover:
    """The HMC move of the tempered target of ``posterior``, eager or compiled.

    Returns ``move(rng, state, beta, *, step_size, inverse_mass=1.0) -> (HMCState, HMCInfo)``
    with ``beta`` ``(B,)``, ``step_size`` ``(B, C)`` and ``inverse_mass`` broadcastable to
    ``(B, C, D)``; ``state`` must be at ``beta`` (:func:`~cogenerate.anneal.tempering.retemper`).
    The compiled move calls the generator once on all ``B·C`` chains: it refuses a posterior
    whose ``max_batch`` is smaller.
    """
    if not compile:
        evaluate = evaluator(posterior.log_prior_and_grad, posterior.log_likelihood_and_grad)

        def eager(rng: torch.Generator, state: HMCState, beta: Tensor, *, step_size: Tensor,
                  inverse_mass: Tensor | float = 1.0) -> tuple[HMCState, HMCInfo]:
            return hmc_step(rng, state, tempered_density(evaluate, beta), step_size=step_size,
                            num_leapfrog=num_leapfrog, inverse_mass=inverse_mass,
                            divergence_threshold=divergence_threshold)

        return eager
    target, inputs = _graph_inputs(posterior)

    def move(rng: torch.Generator, state: HMCState, beta: Tensor, *, step_size: Tensor,
             inverse_mass: Tensor | float = 1.0) -> tuple[HMCState, HMCInfo]:
        _check_one_call(posterior, state.position.shape[0] * state.position.shape[1])
        noise_draws, uniform = hmc_draws(rng, state.position)
        return _run_compiled(_tempered_move, target, inputs, state, noise_draws, uniform, beta, step_size,
                             inverse_mass, num_leapfrog, float(divergence_threshold))

    return move


def _flags(reweighed: Reweighed) -> Tensor:
    """``[some observation resamples, some observation is short of its ceiling]``: what the
    sampler's Python loop reads after a reweighing, in one transfer."""
    return torch.stack([reweighed.resample.any(), (reweighed.beta < reweighed.ceiling).any()])


def _reweigh_step(log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, ceiling: Tensor, log_z: Tensor,
                  target_ess: float, resample_threshold: float,
                  correction: Callable[[Tensor], Tensor] | None) -> tuple[Reweighed, Tensor]:
    """:func:`~cogenerate.anneal.smc_step.reweigh` and its flags: the function ``torch.compile`` captures."""
    reweighed = reweigh(log_weights, log_likelihood, beta, ceiling, log_z, target_ess=target_ess,
                        resample_threshold=resample_threshold, correction=correction)
    return reweighed, _flags(reweighed)


def _move_step(target: _Target, inputs: _Inputs, state: HMCState, log_weights: Tensor, resample: Tensor,
               draws: StepDraws, tuning: ParticleTuning, beta: Tensor, settings: MoveSettings) -> Moved:
    """:func:`~cogenerate.anneal.smc_step.resample_and_move` on the compiled target: the function
    ``torch.compile`` captures."""
    return resample_and_move(functools.partial(_evaluate, target, inputs), state, log_weights, resample, draws,
                             tuning, beta, settings)


class Stepper:
    """One SMC tempering step (:mod:`~cogenerate.anneal.smc_step`) of the tempered target of a
    posterior, eager or compiled.

    Compiled, a step is two graphs: the reweighing (no generator call), then the resampling,
    mass re-tuning, M HMC moves and step-size update. Between them the sampler reads two flags
    (does some observation resample, is some short of its ceiling) and draws the step's random
    numbers eagerly, in the eager step's order, so a compiled run follows the eager one up to
    rounding. A reweighing ``forced`` to the ceiling (once per budgeted run) runs eagerly.
    """

    def __init__(self, posterior: Posterior, *, settings: MoveSettings, target_ess: float,
                 resample_threshold: float, correction: Callable[[Tensor], Tensor] | None, compile: bool):
        self.settings = settings
        self.target_ess = target_ess
        self.resample_threshold = resample_threshold
        self.correction = correction
        self.compile = compile
        self.posterior = posterior
        self.evaluate = evaluator(posterior.log_prior_and_grad, posterior.log_likelihood_and_grad)
        if compile:
            self.target, self.inputs = _graph_inputs(posterior)

    def reweigh(self, log_weights: Tensor, log_likelihood: Tensor, beta: Tensor, ceiling: Tensor, log_z: Tensor, *,
                forced: bool = False) -> tuple[Reweighed, bool, bool]:
        """The particles reweighted to the next β, whether some observation resamples, and
        whether some observation is still short of its ceiling."""
        args = (log_weights, log_likelihood, beta, ceiling, log_z, self.target_ess, self.resample_threshold,
                self.correction)
        if self.compile and not forced:
            reweighed, flags = _run_compiled(_reweigh_step, *args)
        else:
            reweighed = reweigh(*args[:5], target_ess=self.target_ess, resample_threshold=self.resample_threshold,
                                correction=self.correction, forced=forced)
            flags = _flags(reweighed)
        resample, unfinished = flags.tolist()
        return reweighed, resample, unfinished

    def move(self, rng: torch.Generator, state: HMCState, log_weights: Tensor, tuning: ParticleTuning, beta: Tensor,
             *, moves: int, resample: Tensor | None = None) -> Moved:
        """Resample the observations flagged in ``resample`` ``(B,)`` (None: nobody resamples),
        re-tune the mass and move every chain ``moves`` times
        (:func:`~cogenerate.anneal.smc_step.resample_and_move`)."""
        graph = self.compile and moves > 0  # zero moves (a budgeted run's last resampling): eager
        draws = step_draws(rng, state.position, resample=resample is not None, moves=moves, placeholder=graph)
        if not graph:
            return resample_and_move(self.evaluate, state, log_weights, resample, draws, tuning, beta, self.settings)
        _check_one_call(self.posterior, state.position.shape[0] * state.position.shape[1])
        if resample is None:
            resample = torch.zeros(log_weights.shape[0], dtype=torch.bool, device=log_weights.device)
        return _run_compiled(_move_step, self.target, self.inputs, state, log_weights, resample, draws, tuning, beta,
                             self.settings)
