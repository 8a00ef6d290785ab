"""Every co-generation method as a frozen settings class, and the registry of their names.

``complete(..., method=cg.SMC(leapfrog=5, target_ess=0.5))`` runs SMC with those settings;
the names ("smc", "gd-best", …) are shorthands for each class's defaults. Settings are
validated when constructed, so a bad one fails before any generator call. A settings object
runs its algorithm with :meth:`MethodSettings.run` on a :class:`~cogenerate.posterior.Posterior`.

Every method has an ``init`` setting: where its chains start (``"prior"``, for the descent
methods also ``"best-of"``, or a proposal callable, :mod:`cogenerate.proposals`). The annealed
samplers (AIS, SMC) also say what they temper from: ``temper_from="prior"``, or ``"init"`` for
the path from the proposal's own density (:mod:`cogenerate.anneal.bridge`).

Add a method by subclassing :class:`MethodSettings` and calling :func:`register_method`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch

from cogenerate.anneal.ais import ADAPT_RULES, ais
from cogenerate.anneal.bridge import check_temper_from
from cogenerate.anneal.compiled import check_compile, check_precision
from cogenerate.anneal.schedules import SCHEDULES
from cogenerate.anneal.smc import SMCInfo, smc
from cogenerate.baselines.gradient import INITS, DescentInfo, gradient_descent, misfit_scale
from cogenerate.baselines.yeh import yeh
from cogenerate.posterior import Posterior
from cogenerate.proposals import Proposal, check_init
from cogenerate.result import Callback, SamplerOutput

__all__ = [
    "MethodSettings", "AIS", "SMC", "GD", "GDBest", "Yeh", "SMCPolish", "PolishInfo",
    "METHODS", "DEFAULT_METHOD", "register_method", "resolve_method", "method_from_options",
]


def _positive(name: str, value: float, *, integer: bool = False, zero: bool = False) -> None:
    ok = value >= 0 if zero else value > 0
    if integer and (isinstance(value, bool) or int(value) != value):
        ok = False
    if not ok:
        kind = "integer" if integer else "number"
        raise ValueError(f"{name} must be a {'non-negative' if zero else 'positive'} {kind}, got {value!r}")


def _fraction(name: str, value: float, *, closed_low: bool = False) -> None:
    if not ((0 <= value < 1) if closed_low else (0 < value < 1)):
        raise ValueError(f"{name} must lie in {'[0, 1)' if closed_low else '(0, 1)'}, got {value!r}")


@dataclass(frozen=True)
class MethodSettings:
    """Base of every method's settings. Class attributes describe the method to ``complete()``."""

    name: ClassVar[str]
    point_estimate: ClassVar[str] = "mean"  # "mean" (weighted posterior mean) or "best" (best fit)
    fits_noise: ClassVar[bool] = False  # can fit the noise std (noise_std="auto")
    steps_field: ClassVar[str | None] = None  # the setting complete(steps=) sets
    leapfrog_field: ClassVar[str | None] = None  # the setting complete(leapfrog=) sets

    def with_overrides(self, *, steps: int | None = None, leapfrog: int | None = None) -> MethodSettings:
        """These settings with ``complete()``'s ``steps=`` / ``leapfrog=`` applied (validated)."""
        changes: dict[str, Any] = {}
        if steps is not None:
            _positive("steps", steps, integer=True)
            if self.steps_field is not None:
                changes[self.steps_field] = int(steps)
        if leapfrog is not None:
            _positive("leapfrog", leapfrog, integer=True)
            if self.leapfrog_field is not None:
                changes[self.leapfrog_field] = int(leapfrog)
        return dataclasses.replace(self, **changes) if changes else self

    def run(self, posterior: Posterior, *, chains: int, rng: torch.Generator, max_grad_evals: int | None,
            empirical_bayes: bool = False, callback: Callback | None = None) -> SamplerOutput:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """Every setting by name: the keyword arguments of the method's algorithm."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _check_descent(settings: GD | Yeh) -> None:
    """The settings the descent methods share."""
    _positive("steps", settings.steps, integer=True)
    _positive("candidates", settings.candidates, integer=True)
    _positive("lr", settings.lr)
    check_init(settings.init, allowed=INITS)


@dataclass(frozen=True)
class AIS(MethodSettings):
    """Annealed importance sampling with HMC moves: the paper's Algorithm 1 (:func:`~cogenerate.anneal.ais.ais`).

    ``compile`` (True, False, "auto") runs each HMC move as one ``torch.compile``d graph and
    ``precision="bf16"`` runs the generator in bfloat16 (:mod:`cogenerate.anneal.compiled`).
    """

    name: ClassVar[str] = "ais"
    steps_field: ClassVar[str] = "steps"
    leapfrog_field: ClassVar[str] = "leapfrog"

    steps: int = 200
    leapfrog: int = 10
    hmc_per_temperature: int = 1
    schedule: str = "sigmoid"
    step_size: float = 0.01
    adapt: str | None = "paper"
    target_acceptance: float = 0.65
    init: str | Proposal = "prior"
    temper_from: str = "prior"
    snapshots: tuple[int, ...] = ()
    compile: bool | str = "auto"
    precision: str = "full"

    def __post_init__(self) -> None:
        for name in ("steps", "leapfrog", "hmc_per_temperature"):
            _positive(name, getattr(self, name), integer=True)
        _positive("step_size", self.step_size)
        _fraction("target_acceptance", self.target_acceptance)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {sorted(SCHEDULES)}")
        if self.adapt not in ADAPT_RULES:
            raise ValueError(f"unknown step-size adaptation {self.adapt!r}; use 'paper', 'dual-averaging' or None")
        check_init(self.init)
        check_temper_from(self.temper_from, self.init)
        check_compile(self.compile)
        check_precision(self.precision)
        object.__setattr__(self, "snapshots", tuple(int(t) for t in self.snapshots))

    def run(self, posterior, *, chains, rng, max_grad_evals, empirical_bayes=False, callback=None):
        return ais(posterior, chains=chains, rng=rng, max_grad_evals=max_grad_evals, callback=callback,
                   **self.settings())


@dataclass(frozen=True)
class SMC(MethodSettings):
    """Adaptive tempered SMC with HMC moves, resampling and particle-tuned kernels
    (:func:`~cogenerate.anneal.smc.smc`); fits the noise std by maximum evidence unless it is given or the
    model carries its own (:func:`~cogenerate.api.model_noise_std`).

    ``compile`` (True, False, "auto") runs each tempering step as two ``torch.compile``d graphs and
    ``precision="bf16"`` runs the generator in bfloat16 (:mod:`cogenerate.anneal.compiled`).
    """

    name: ClassVar[str] = "smc"
    fits_noise: ClassVar[bool] = True
    steps_field: ClassVar[str] = "max_steps"
    leapfrog_field: ClassVar[str] = "leapfrog"

    leapfrog: int = 10
    hmc_per_temperature: int = 1
    step_size: float | None = None
    target_ess: float = 0.5
    resample_threshold: float = 0.5
    target_acceptance: float = 0.65
    adapt_mass: bool = True
    mass_shrinkage: float = 0.0
    max_steps: int = 1000
    final_moves: int = 0
    candidates: int = 0
    init: str | Proposal = "prior"
    temper_from: str = "prior"
    compile: bool | str = "auto"
    precision: str = "full"

    def __post_init__(self) -> None:
        for name in ("leapfrog", "hmc_per_temperature", "max_steps"):
            _positive(name, getattr(self, name), integer=True)
        for name in ("final_moves", "candidates"):
            _positive(name, getattr(self, name), integer=True, zero=True)
        if self.step_size is not None:
            _positive("step_size", self.step_size)
        _positive("mass_shrinkage", self.mass_shrinkage, zero=True)
        for name in ("target_ess", "target_acceptance"):
            _fraction(name, getattr(self, name))
        if not 0 <= self.resample_threshold <= 1:
            raise ValueError(f"resample_threshold must lie in [0, 1], got {self.resample_threshold!r}")
        check_init(self.init)
        check_temper_from(self.temper_from, self.init)
        check_compile(self.compile)
        check_precision(self.precision)

    def run(self, posterior, *, chains, rng, max_grad_evals, empirical_bayes=False, callback=None):
        return smc(posterior, chains=chains, rng=rng, max_grad_evals=max_grad_evals, empirical_bayes=empirical_bayes,
                   callback=callback, **self.settings())


@dataclass(frozen=True)
class GD(MethodSettings):
    """Adam on z from one random prior draw per chain: the paper's first baseline
    (:func:`~cogenerate.baselines.gradient.gradient_descent`)."""

    name: ClassVar[str] = "gd"
    point_estimate: ClassVar[str] = "best"
    steps_field: ClassVar[str] = "steps"

    steps: int = 1000
    lr: float = 0.01
    prior_weight: float = 0.0
    candidates: int = 5000
    init: str | Proposal = "prior"

    def __post_init__(self) -> None:
        _check_descent(self)
        _positive("prior_weight", self.prior_weight, zero=True)

    def run(self, posterior, *, chains, rng, max_grad_evals, empirical_bayes=False, callback=None):
        return gradient_descent(posterior, chains=chains, rng=rng, max_grad_evals=max_grad_evals, callback=callback,
                                **self.settings())


@dataclass(frozen=True)
class GDBest(GD):
    """The best ``chains`` of ``candidates`` prior draws (forward passes only), then Adam:
    the paper's second baseline (N = 5000 there)."""

    name: ClassVar[str] = "gd-best"
    init: str | Proposal = "best-of"


@dataclass(frozen=True)
class Yeh(MethodSettings):
    """Yeh et al. (2017): contextual L1 + λ·log(1 − D(G(z))) by Adam
    (:func:`~cogenerate.baselines.yeh.yeh`); needs a discriminator."""

    name: ClassVar[str] = "yeh"
    point_estimate: ClassVar[str] = "best"
    steps_field: ClassVar[str] = "steps"

    perceptual_weight: float = 0.1
    steps: int = 1000
    lr: float = 0.01
    candidates: int = 5000
    init: str | Proposal = "prior"

    def __post_init__(self) -> None:
        _check_descent(self)
        _positive("perceptual_weight", self.perceptual_weight, zero=True)

    def run(self, posterior, *, chains, rng, max_grad_evals, empirical_bayes=False, callback=None):
        return yeh(posterior, chains=chains, rng=rng, max_grad_evals=max_grad_evals, callback=callback,
                   **self.settings())


class PolishInfo(NamedTuple):
    """What smc-polish did: SMC's info, the polish's, the polished latents, and per observation
    the best polished fit's misfit (the noise scale its residual implies, over σ*) and whether
    that fit is exact, and so the estimate (else the polished chains' mean)."""

    smc: SMCInfo
    polish: DescentInfo | None
    polished_latents: torch.Tensor | None  # (B, C, D)
    forward_evals: int
    best_misfit: torch.Tensor | None = None  # (B,)
    exact_fit: torch.Tensor | None = None  # (B,) bool

    def diagnostics(self) -> dict:
        extra = {} if self.polish is None else {"polish": self.polish.diagnostics(),
                                                "polished_latents": self.polished_latents,
                                                "forward_evals": self.forward_evals,
                                                "best_misfit": self.best_misfit, "exact_fit": self.exact_fit}
        return {**self.smc.diagnostics(), **extra}


def _scaled(callback: Callback | None, low: float, high: float) -> Callback | None:
    """``callback`` with the fraction of a part of the work mapped onto ``[low, high]``."""
    if callback is None:
        return None
    return lambda step: callback(step._replace(fraction=low + (high - low) * step.fraction))


@dataclass(frozen=True)
class SMCPolish(MethodSettings):
    """SMC to find the right basins, then a short Adam polish of every particle (the default).

    On a benign landscape a careful gradient descent is hard to beat on the point estimate,
    while on a ragged one it starts in the wrong basin. This spends ``1 − polish_fraction`` of
    the budget on SMC (:attr:`smc`), whose particles spread over the posterior's basins in
    proportion to their mass, and the rest on Adam from each particle. The SMC particles stay
    the result's samples (with their weights, evidence and uncertainty map); the polished
    copies only provide the point estimate (:attr:`estimate`).

    Attributes:
        smc: the SMC part's settings. Five leapfrog steps per move (rather than SMC's 10) let
            the tempering reach β = 1 within half of a few-hundred-gradient budget on 28×28
            images; 1,000 forward-only prior draws start it (docs/benchmarks.md); its mass
            estimate from 16 or so particles is shrunk toward the prior's by 2 pseudo-particles
            (``mass_shrinkage``), which with ``rejuvenate`` roughly doubles the samples' spread.
        polish_fraction: share of ``max_grad_evals`` kept for the polish; what SMC leaves
            unspent (it stops early at a fitted noise scale) goes to the polish too.
        polish_steps: polish iterations when no budget is given.
        lr: Adam learning rate of the polish.
        prior_weight: 1 polishes toward the posterior mode, 0 toward the best fit of Eq. (1).
        polish_from: "tempered" (the particles from before a budget-forced jump to β = 1,
            which still cover the basins) or "final" (SMC's final, resampled particles).
        rejuvenate: spend what the SMC share leaves after tempering (it stops early at a
            fitted noise scale) on HMC moves at the final β, so that the samples spread over
            the posterior again after the last resampling; False hands it to the polish.
            On, by measurement (docs/benchmarks.md §7, target 2): with the shrunk mass it
            doubles the samples' spread; the point estimate kept no significant loss to
            gd-best where re-measured, though exact (in-range) targets lose part of their
            margin to the shorter polish.
        rejuvenate_steps: gradient evaluations per chain of those moves when no budget is
            given (SMC then tempers to its end, and ``polish_steps`` follow the moves). 200,
            by measurement (docs/benchmarks.md §7, "Target 2 without a budget"): without them
            the last resampling leaves near-copies (on 20 held-out top halves, 0.46 of a
            reference's spread on 19, the 20th's 16 completions identical); 200 gradients
            of moves give 0.73–0.78.
        restart_fraction: share of the polished chains that start from the best-fitting of
            SMC's candidate draws (gd-best's starts, no extra draws) instead of SMC's
            particles: a hedge for when SMC's particles all sit in one wrong basin. Half, by
            measurement (docs/benchmarks.md, "The default across regimes"): no pooled loss to
            gd-best where the pure SMC polish lost (held-out boxes at 8 × 300, 1.09×).
        refit_below: r. Once a polished chain's residual implies a noise scale below r times
            the fitted σ, its prior term fades with the misfit, so an observation the generator
            reproduces exactly is polished to the exact fit instead of to the mode at a σ fitted
            to the whole posterior (:func:`~cogenerate.baselines.gradient.gradient_descent`).
            0.25, by measurement (docs/benchmarks.md §7, "the prior term fades on exact fits"):
            polished fits end at 0.11–0.41 σ on in-range targets and 0.18–0.74 σ on held-out
            Fashion-MNIST images (3 of 118 held-out images reached 0.25 σ); in-range hidden
            MSE at 8 × 3,000 fell from 0.037 to 0.0039 (gd-best 0.0058), MNIST in-range at
            8 × 3,000 rose from 0.051 to 0.092. 0 keeps the objective fixed.
        estimate: the point estimate from the polished chains. "mean": their equal-weight
            mean, unless the best of them fits the observed part exactly (below
            ``exact_below`` times σ*; then that fit); "best": the best fit (before the issue
            "A default that wins in every regime", target 1). "mean", by measurement
            (docs/benchmarks.md §7, "Target 1, fourth attempt"): on held-out Fashion-MNIST
            top halves at 8 × 300 the hidden MSE fell from 0.229 to 0.168 (gd-best 0.231),
            and none of the nine cells measured both ways got worse.
            Where the chains end in different basins, their mean hedges between them, and it
            does not need to know which basin is right.
        exact_below: r; a polished fit whose residual implies a noise scale below r·σ*
            (:func:`~cogenerate.baselines.gradient.misfit_scale`) is exact: the generator
            reproduces the observed part, and that fit is the estimate (never where no more
            values are observed than z has dimensions, as for ``refit_below``). 0.03, by
            measurement (8 × 300): the best fits of in-range targets that were recovered ended below
            0.016·σ* (64×64, latent 512) and 0.001·σ* (28×28); every other best fit, at
            0.048·σ* or above.
    """

    name: ClassVar[str] = "smc-polish"
    point_estimate: ClassVar[str] = "best"
    fits_noise: ClassVar[bool] = True
    steps_field: ClassVar[str] = "polish_steps"

    smc: SMC = field(default_factory=lambda: SMC(leapfrog=5, candidates=1000, mass_shrinkage=2.0))
    polish_fraction: float = 0.5
    polish_steps: int = 200
    lr: float = 0.01
    prior_weight: float = 1.0
    polish_from: str = "tempered"
    rejuvenate: bool = True
    rejuvenate_steps: int = 200
    restart_fraction: float = 0.5
    refit_below: float = 0.25
    estimate: str = "mean"
    exact_below: float = 0.03

    def __post_init__(self) -> None:
        _positive("refit_below", self.refit_below, zero=True)
        _positive("exact_below", self.exact_below, zero=True)
        if self.estimate not in ("mean", "best"):
            raise ValueError(f"estimate must be 'mean' or 'best', got {self.estimate!r}")
        if not 0 <= self.restart_fraction <= 1:
            raise ValueError(f"restart_fraction must lie in [0, 1], got {self.restart_fraction!r}")
        if not isinstance(self.smc, SMC):
            raise ValueError(f"smc must be SMC settings (cg.SMC(...)), got {type(self.smc).__name__}")
        _fraction("polish_fraction", self.polish_fraction, closed_low=True)
        _positive("polish_steps", self.polish_steps, integer=True)
        _positive("rejuvenate_steps", self.rejuvenate_steps, integer=True, zero=True)
        _positive("lr", self.lr)
        _positive("prior_weight", self.prior_weight, zero=True)
        if self.polish_from not in ("tempered", "final"):
            raise ValueError(f"polish_from must be 'tempered' or 'final', got {self.polish_from!r}")

    @property
    def init(self) -> str | Proposal:
        return self.smc.init

    def with_overrides(self, *, steps: int | None = None, leapfrog: int | None = None) -> SMCPolish:
        settings = super().with_overrides(steps=steps)
        if leapfrog is None:
            return settings  # type: ignore[return-value]
        return dataclasses.replace(settings, smc=self.smc.with_overrides(leapfrog=leapfrog))

    def run(self, posterior, *, chains, rng, max_grad_evals, empirical_bayes=False, callback=None):
        smc_budget = None if max_grad_evals is None else max(1, round((1 - self.polish_fraction) * max_grad_evals))
        share = 1 - self.polish_fraction  # of the progress
        smc_settings = self.smc
        if self.rejuvenate:  # moves to the end of the SMC share, or rejuvenate_steps' worth without a budget
            cost = smc_settings.leapfrog * smc_settings.hmc_per_temperature
            moves = smc_budget if smc_budget is not None else math.ceil(self.rejuvenate_steps / cost)
            smc_settings = dataclasses.replace(smc_settings, final_moves=max(smc_settings.final_moves, moves))
        sampled = smc_settings.run(posterior, chains=chains, rng=rng, max_grad_evals=smc_budget,
                                   empirical_bayes=empirical_bayes, callback=_scaled(callback, 0.0, share))
        info = PolishInfo(sampled.info, None, None, self.smc.candidates)
        steps = self.polish_steps if max_grad_evals is None else max_grad_evals - sampled.grad_evals
        if steps < 1 or sampled.cancelled:
            return sampled._replace(info=info)
        start = sampled.info.tempered_latents if self.polish_from == "tempered" else sampled.latents
        restarts = round(self.restart_fraction * chains)
        if restarts and sampled.info.best_candidates is not None:
            start = torch.cat([start[:, : chains - restarts], sampled.info.best_candidates[:, :restarts]], dim=1)
        polished = gradient_descent(
            posterior, chains=chains, rng=rng, steps=steps, lr=self.lr, init=start,
            prior_weight=self.prior_weight, likelihood_weight=sampled.info.likelihood_weight,
            refit_below=self.refit_below, callback=_scaled(callback, share, 1.0),
        )
        points, misfit, exact = polished.samples, None, None
        if self.estimate == "mean":
            points, misfit, exact = self._mean_or_exact(posterior, points, sampled.info.likelihood_weight)
        return sampled._replace(
            grad_evals=sampled.grad_evals + polished.grad_evals,
            point_samples=points,
            info=info._replace(polish=polished.info, polished_latents=polished.latents, best_misfit=misfit,
                               exact_fit=exact),
            cancelled=polished.cancelled,
        )

    def _mean_or_exact(self, posterior: Posterior, points: torch.Tensor,
                       likelihood_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, 1, *x)`` the estimate from ``(B, C, *x)`` polished chains: their mean over the
        finite ones, or the best fit where it is exact; the best fit's misfit and whether it is
        exact, ``(B,)`` each. No fit is exact where no more values are observed than z has
        dimensions: every such observation has one."""
        fit = torch.nan_to_num(posterior.log_likelihood_of_samples(points), nan=-torch.inf)
        best_fit, best = fit.max(1)
        misfit = misfit_scale(posterior, best_fit.unsqueeze(1), likelihood_weight)[:, 0]
        exact = (misfit < self.exact_below) & (posterior.observed_count > posterior.latent_dim)
        finite = torch.isfinite(fit).to(points.dtype).reshape(*fit.shape, *([1] * (points.dim() - 2)))
        mean = (finite * torch.nan_to_num(points)).sum(1) / finite.sum(1).clamp_min(1)
        chosen = points[torch.arange(points.shape[0], device=points.device), best]
        shape = (-1, *([1] * (points.dim() - 2)))
        return torch.where(exact.reshape(shape), chosen, mean).unsqueeze(1), misfit, exact


METHODS: dict[str, type[MethodSettings]] = {}
"""Name -> settings class of every registered method."""
DEFAULT_METHOD = "smc-polish"


def register_method(settings_class: type[MethodSettings]) -> type[MethodSettings]:
    """Make ``settings_class`` available as ``complete(..., method=settings_class.name)``."""
    METHODS[settings_class.name] = settings_class
    return settings_class


for _settings_class in (AIS, SMC, GD, GDBest, Yeh, SMCPolish):
    register_method(_settings_class)


def resolve_method(method: str | MethodSettings) -> MethodSettings:
    """The settings object a name stands for (its defaults), or ``method`` itself."""
    if isinstance(method, MethodSettings):
        return method
    if isinstance(method, str) and method in METHODS:
        return METHODS[method]()
    raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)} or pass settings such as cg.SMC(...)")


def method_from_options(name: str, options: Mapping[str, Any] | None = None) -> MethodSettings:
    """Settings from a name and a plain mapping (a JSON config): ``("smc", {"target_ess": 0.7})``.
    For smc-polish, keys that are SMC settings go to its ``smc`` part."""
    settings_class = type(resolve_method(name))
    options = dict(options or {})
    if settings_class is SMCPolish:
        smc_keys = {f.name for f in dataclasses.fields(SMC)} - {f.name for f in dataclasses.fields(SMCPolish)}
        smc_options = {key: options.pop(key) for key in list(options) if key in smc_keys}
        if smc_options:
            options["smc"] = dataclasses.replace(SMCPolish().smc, **smc_options)
    known = {f.name for f in dataclasses.fields(settings_class)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"method {name!r} has no setting(s) {unknown}; its settings are {sorted(known)}")
    return settings_class(**options)


