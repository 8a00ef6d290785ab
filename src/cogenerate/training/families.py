"""The registry of model families that ``cogenerate.training`` (and ``cogen train``) can train.

A family is two files and one registration:

``models/<family>.py``
    The architecture only: ``nn.Module`` classes registered with
    :func:`cogenerate.models.registry.register_architecture`, so checkpoints can rebuild them.
``training/<family>.py``
    Its losses and one training step as pure functions, and a :class:`Family` passed to
    :func:`register_family` at import time.

A :class:`Family` says how to build the parts from an explicit ``torch.Generator``, how to make
their optimizers, how to take one training step, and which hyper-parameters of its own it has
(:attr:`Family.options`, with defaults and help strings: ``cogen train --family NAME`` turns
them into command-line flags). The one loop in :mod:`cogenerate.training.loop` does the rest
(progress, checkpoints, sample grids, resume) for every family.

The settings a family sees are one flat mapping: the common ones (``batch_size``,
``latent_dim``) and the family's own options, each filled in by :func:`resolve_settings`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "COMMON_SETTINGS",
    "FAMILIES",
    "Family",
    "Option",
    "RESERVED_NAMES",
    "RUN_SETTINGS",
    "StepFn",
    "family_names",
    "get_family",
    "register_family",
    "resolve_settings",
]

StepFn = Callable[
    [Mapping[str, nn.Module], Mapping[str, torch.optim.Optimizer], Tensor, torch.Generator, Any],
    tuple[Any, dict[str, float]],
]
"""``step(modules, optimizers, real_batch, rng, state) -> (state, losses)``; see :class:`Family`."""


@dataclass(frozen=True)
class Option:
    """One hyper-parameter of a family (or a common setting).

    Attributes:
        default: the value when none is given; its type is the option's type unless ``type``
            says otherwise.
        help: one line for ``--help`` (the CLI appends the default).
        type: ``int``, ``float``, ``str`` or ``bool``; default: the type of ``default``.
        minimum: smallest allowed value (inclusive), for numbers.
        positive: the value must be > 0, for numbers.
        choices: the allowed values, if only a few are.
    """

    default: Any
    help: str
    type: type | None = None
    minimum: float | None = None
    positive: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def value_type(self) -> type:
        return self.type if self.type is not None else type(self.default)

    def check(self, name: str, value: Any) -> Any:
        """``value`` converted to the option's type; a one-line ValueError if it is not allowed.

        The message names the setting as its command-line flag (``--batch-size``).
        """
        flag = "--" + name.replace("_", "-")
        kind = self.value_type
        try:
            if kind is bool and not isinstance(value, bool):
                raise TypeError
            if kind is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
                raise TypeError
            converted = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{flag} must be {kind.__name__}, got {value!r}") from None
        if self.choices is not None and converted not in self.choices:
            raise ValueError(f"{flag} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.positive and not converted > 0:
            raise ValueError(f"{flag} must be positive, got {value}")
        if self.minimum is not None and not converted >= self.minimum:
            minimum = int(self.minimum) if float(self.minimum).is_integer() else self.minimum
            raise ValueError(f"{flag} must be at least {minimum}, got {value}")
        return converted


COMMON_SETTINGS: dict[str, Option] = {
    "batch_size": Option(64, "batch size", minimum=1),
    "latent_dim": Option(100, "latent dimension", minimum=1),
}
"""Settings every family reads (defaults of the DCGAN paper, Radford et al. 2016, §4)."""

RUN_SETTINGS = ("family", "data", "size", "channels", "seed", "iterations", "checkpoint_every", "keep_every")
"""Settings of a training run besides the family's (see :mod:`cogenerate.training.runs`)."""

RESERVED_NAMES = (*RUN_SETTINGS, "out", "device", "threads", "quiet", "debug")
"""Names a family option may not take: the run's settings and the command line's own options."""


@dataclass(frozen=True)
class Family:
    """A trainable model family (see the module docstring).

    Attributes:
        name: registry name, e.g. ``"dcgan"``; stored as ``"family"`` in every checkpoint.
        step: one training step, ``step(modules, optimizers, real_batch, rng, state) ->
            (state, losses)``: ``real_batch`` is ``(batch_size, *x_shape)`` on the modules'
            device and dtype; every random draw (latents, noise) comes from ``rng``; ``state``
            is the family's own state between steps (``None`` for most families; saved in
            checkpoints, so tensors / numbers / lists / dicts only); ``losses`` maps each of
            :attr:`losses` to a float.
        make_optimizers: ``make_optimizers(modules, settings) -> {name: optimizer}``; names are
            stored in checkpoints (by convention the role whose parameters it updates).
        losses: the names of the losses ``step`` reports, in the order of ``losses.csv``.
        build: ``build(settings, image_shape, rng) -> {role: module}``: the initial parts, on
            the CPU, every parameter drawn from ``rng`` (never the global RNG); ``image_shape``
            is ``(C, H, W)``. ``None`` for a family that is only trained on given modules.
        options: the family's own hyper-parameters (name -> :class:`Option`), besides
            :data:`COMMON_SETTINGS`. They fix the run: a resumed run must keep them.
        init_state: ``init_state(modules, settings) -> state`` before the first step; ``None``
            starts with ``state = None``.
        checkpoint_config: ``checkpoint_config(settings) -> {key: value}``: keys every
            checkpoint's JSON records so that :func:`cogenerate.models.loading.load_model`
            rebuilds the model faithfully, e.g. ``{"prior": {"name": "uniform", ...}}`` or
            ``{"energy_scale": 10.0}`` (default: none: a standard normal prior, scale 1).
        title: how messages name the family (e.g. ``"DCGAN"``); default: ``name``.
        description: one line for ``cogen train --help``.
    """

    name: str
    step: StepFn
    make_optimizers: Callable[[Mapping[str, nn.Module], Mapping[str, Any]], dict[str, torch.optim.Optimizer]]
    losses: tuple[str, ...]
    build: Callable[[Mapping[str, Any], tuple[int, ...], torch.Generator], dict[str, nn.Module]] | None = None
    options: Mapping[str, Option] = field(default_factory=dict)
    init_state: Callable[[Mapping[str, nn.Module], Mapping[str, Any]], Any] | None = None
    checkpoint_config: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    title: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"family name {self.name!r} must be letters, digits, '-' or '_'")
        if not self.losses:
            raise ValueError(f"family {self.name!r} must name at least one loss")
        clash = sorted(set(self.options) & set(COMMON_SETTINGS))
        if clash:
            raise ValueError(f"family {self.name!r} redefines the common setting(s) {clash}")
        reserved = sorted(set(self.options) & set(RESERVED_NAMES))
        if reserved:
            raise ValueError(f"family {self.name!r}: option name(s) {reserved} are reserved for the run")
        bad = [name for name in self.options if not name.isidentifier()]
        if bad:
            raise ValueError(f"family {self.name!r}: option names must be identifiers, got {bad}")

    @property
    def label(self) -> str:
        return self.title or self.name


FAMILIES: dict[str, Family] = {}
"""Registered family name -> :class:`Family`."""

# Modules of this package that register families when imported; get_family imports them on a
# lookup miss, so `get_family("dcgan")` works without importing cogenerate.training.dcgan first.
_BUILTIN_FAMILY_MODULES = ("cogenerate.training.dcgan", "cogenerate.training.ebgan", "cogenerate.training.began",
                           "cogenerate.training.vae", "cogenerate.training.vae_gan", "cogenerate.training.aae",
                           "cogenerate.training.alpha_gan", "cogenerate.training.bayesian_gan",
                           "cogenerate.training.triangle")


def register_family(family: Family) -> Family:
    """Register ``family`` under its name (again with the same object is allowed).

    Raises:
        ValueError: the name is taken by another family.
    """
    existing = FAMILIES.get(family.name)
    if existing is not None and existing is not family:
        raise ValueError(f"model family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def _import_builtin_families() -> None:
    for module_name in _BUILTIN_FAMILY_MODULES:
        importlib.import_module(module_name)


def family_names() -> list[str]:
    """Every registered family name, sorted (the built-in families included)."""
    _import_builtin_families()
    return sorted(FAMILIES)


def get_family(name: str | Family) -> Family:
    """The family registered as ``name`` (a :class:`Family` is returned as is).

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    if isinstance(name, Family):
        return name
    if name not in FAMILIES:
        _import_builtin_families()
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def resolve_settings(family: str | Family, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full settings of ``family``: :data:`COMMON_SETTINGS` and its options, checked.

    Args:
        family: a family or its registered name.
        given: values to use instead of the defaults; ``None`` values count as not given.

    Returns:
        ``{name: value}`` for every common setting and option, in that order.

    Raises:
        ValueError: a name that is neither a common setting nor one of the family's options,
            or a value of the wrong type or out of range (one line, naming the flag).
    """
    family = get_family(family)
    known = {**COMMON_SETTINGS, **family.options}
    given = {key: value for key, value in (given or {}).items() if value is not None}
    unknown = sorted(set(given) - set(known))
    if unknown:
        flags = ", ".join("--" + key.replace("_", "-") for key in unknown)
        raise ValueError(f"{flags}: not an option of the {family.label} family (its options: "
                         f"{', '.join('--' + key.replace('_', '-') for key in family.options) or 'none'})")
    return {name: option.check(name, given.get(name, option.default)) for name, option in known.items()}
