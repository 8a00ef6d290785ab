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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from cogenerate.anneal.ais import ADAPT_RULES, ais
from cogenerate.anneal.bridge import check_temper_from
from cogenerate.anneal.compiled import check_compile, check_precision
from cogenerate.anneal.schedules import SCHEDULES
from cogenerate.anneal.smc import smc
from cogenerate.baselines.gradient import INITS, gradient_descent
from cogenerate.baselines.yeh import yeh
from cogenerate.posterior import Posterior
from cogenerate.proposals import Proposal, check_init
from cogenerate.result import Callback, SamplerOutput

__all__ = [
    "MethodSettings", "AIS", "SMC", "GD", "GDBest", "Yeh",
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
    final_leapfrog: int | None = None
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
        if self.final_leapfrog is not None:
            _positive("final_leapfrog", self.final_leapfrog, integer=True)
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


METHODS: dict[str, type[MethodSettings]] = {}
"""Name -> settings class of every registered method."""
DEFAULT_METHOD = "smc-polish"
"""The default method's name; :mod:`cogenerate.smc_polish` registers it."""


def register_method(settings_class: type[MethodSettings]) -> type[MethodSettings]:
    """Make ``settings_class`` available as ``complete(..., method=settings_class.name)``."""
    METHODS[settings_class.name] = settings_class
    return settings_class


for _settings_class in (AIS, SMC, GD, GDBest, Yeh):
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
    For a method with a nested part (smc-polish's ``smc``, its ``nested`` class attribute), keys
    that are settings of that part and not of the method go to the part."""
    settings_class = type(resolve_method(name))
    options = dict(options or {})
    part = getattr(settings_class, "nested", None)
    if part is not None:
        default = getattr(settings_class(), part)
        own = {f.name for f in dataclasses.fields(settings_class)}
        part_keys = {f.name for f in dataclasses.fields(default)} - own
        part_options = {key: options.pop(key) for key in list(options) if key in part_keys}
        if part_options:
            options[part] = dataclasses.replace(default, **part_options)
    known = {f.name for f in dataclasses.fields(settings_class)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"method {name!r} has no setting(s) {unknown}; its settings are {sorted(known)}")
    return settings_class(**options)


