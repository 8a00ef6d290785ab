"""A trained model as a bundle of named parts: the one type every model family loads into.

A :class:`GenerativeModel` holds a family name and its parts by role:

``generator``
    z -> x, ``(N, latent_dim) -> (N, *x_shape)``; called as ``generator(z, condition)`` when
    the model is conditional. A model may hold several generators (a Bayesian GAN's weight
    samples) as ``generator``, ``generator_1``, ``generator_2``, ... (:attr:`generators`).
``discriminator``
    x -> logit d(x), ``(N, *x_shape) -> (N,)``. For an optimal discriminator
    ``d(x) = log p_data(x) / p_G(x)``, so it is used as the critic's log density ratio as is.
``energy``
    x -> energy E(x), ``(N, *x_shape) -> (N,)``, lower = more like the data (an autoencoder's
    reconstruction error, an energy-based model). It enters as the log density ratio
    ``-E(x) / energy_scale`` (:meth:`log_ratio`); ``energy_scale`` is stored with the model.
``encoder``
    x -> q(z | x), called as ``encoder(x, mask=None)`` and returning ``(mean, log_std)``,
    each ``(N, latent_dim)``; ``mask`` (1 = observed) lets an encoder see which pixels are real.

Besides the parts: the latent prior (a ``torch.distributions`` object over one latent vector,
standard normal when ``None``), the sample shape, the training config and the command that
trained it. :func:`cogenerate.models.loading.load_model` builds one from a shipped name, a
checkpoint, a run folder, ``module.path:factory`` or a bare ``nn.Module``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, distributions, nn

__all__ = ["GenerativeModel", "ROLES", "standard_normal", "prior_from_config", "prior_config"]

ROLES = ("generator", "discriminator", "energy", "encoder")
"""The roles a part may play; extra generators are named ``generator_1``, ``generator_2``, ..."""

_EXTRA_GENERATOR = re.compile(r"generator_(\d+)$")


def standard_normal(latent_dim: int, *, like: Tensor | None = None) -> distributions.Distribution:
    """``N(0, I)`` over a latent vector of size ``latent_dim`` (on ``like``'s device and dtype)."""
    zeros = torch.zeros(latent_dim) if like is None else torch.zeros(latent_dim, device=like.device, dtype=like.dtype)
    return distributions.Independent(distributions.Normal(zeros, torch.ones_like(zeros)), 1)


def prior_config(prior: distributions.Distribution | None) -> dict[str, Any]:
    """A JSON description of a latent prior that :func:`prior_from_config` inverts."""
    base = prior.base_dist if isinstance(prior, distributions.Independent) else prior
    if prior is None:
        return {"name": "normal"}
    if isinstance(base, distributions.Normal) and bool((base.loc == 0).all() and (base.scale == 1).all()):
        return {"name": "normal"}
    if isinstance(base, distributions.Uniform):
        return {"name": "uniform", "low": float(base.low.flatten()[0]), "high": float(base.high.flatten()[0])}
    raise ValueError(f"cannot store the latent prior {prior!r} in a checkpoint; use a standard normal or a uniform")


def prior_from_config(config: Mapping[str, Any] | None, latent_dim: int) -> distributions.Distribution | None:
    """The prior described by ``config`` (``None`` for the standard normal)."""
    if not config or config.get("name", "normal") == "normal":
        return None
    if config["name"] == "uniform":
        low = torch.full((latent_dim,), float(config.get("low", -1.0)))
        high = torch.full((latent_dim,), float(config.get("high", 1.0)))
        return distributions.Independent(distributions.Uniform(low, high, validate_args=False), 1)
    raise ValueError(f"unknown latent prior {config!r}; known: normal, uniform")


@dataclass(frozen=True)
class GenerativeModel:
    """A trained model: a family name and its parts by role (see the module docstring).

    Attributes:
        family: e.g. ``"dcgan"``, ``"toy-gan"``, ``"custom"`` for a bare generator.
        parts: role -> module or callable; ``"generator"`` is required.
        latent_dim: size of one latent vector.
        x_shape: shape of one sample, or ``None`` if not known yet.
        prior: latent prior over one latent vector; ``None`` means ``N(0, I)``.
        energy_scale: the energy's scale in :meth:`log_ratio`.
        conditional: the generator takes a condition: ``generator(z, condition)``.
        config: the training config (the checkpoint's JSON) or ``{}``.
        command: the command line that trained it, if known.
    """

    family: str
    parts: Mapping[str, Callable[..., Any]]
    latent_dim: int
    x_shape: tuple[int, ...] | None = None
    prior: distributions.Distribution | None = None
    energy_scale: float = 1.0
    conditional: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)
    command: str | None = None

    def __post_init__(self) -> None:
        if "generator" not in self.parts:
            raise ValueError(f"a {self.family} model needs a 'generator' part (has {sorted(self.parts)})")
        unknown = [name for name in self.parts if name not in ROLES and not _EXTRA_GENERATOR.match(name)]
        if unknown:
            raise ValueError(f"unknown part role(s) {unknown}; roles are {ROLES} (and generator_1, generator_2, ...)")
        if int(self.latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {self.latent_dim}")
        if not self.energy_scale > 0:
            raise ValueError(f"energy_scale must be positive, got {self.energy_scale}")

    @property
    def generator(self) -> Callable[..., Tensor]:
        return self.parts["generator"]

    @property
    def generators(self) -> tuple[Callable[..., Tensor], ...]:
        """Every generator: ``generator`` first, then ``generator_1``, ``generator_2``, ..."""
        extra = sorted((int(m.group(1)), name) for name in self.parts if (m := _EXTRA_GENERATOR.match(name)))
        return (self.generator, *(self.parts[name] for _, name in extra))

    @property
    def discriminator(self) -> Callable[[Tensor], Tensor] | None:
        return self.parts.get("discriminator")

    @property
    def energy(self) -> Callable[[Tensor], Tensor] | None:
        return self.parts.get("energy")

    @property
    def encoder(self) -> Callable[..., tuple[Tensor, Tensor]] | None:
        return self.parts.get("encoder")

    @property
    def has_critic(self) -> bool:
        """Whether :meth:`log_ratio` is available (a discriminator or an energy)."""
        return "discriminator" in self.parts or "energy" in self.parts

    @property
    def modules(self) -> dict[str, nn.Module]:
        """The parts that are ``nn.Module``s (what a checkpoint stores)."""
        return {name: part for name, part in self.parts.items() if isinstance(part, nn.Module)}

    def log_ratio(self, x: Tensor) -> Tensor:
        """The critic's log density ratio ``log p_data(x) / p_G(x)`` estimate, ``(N, *x_shape) -> (N,)``:
        the discriminator's logit, or ``-energy(x) / energy_scale``; higher = more like the data."""
        if "discriminator" in self.parts:
            return self.parts["discriminator"](x)
        if "energy" in self.parts:
            return -self.parts["energy"](x) / self.energy_scale
        raise ValueError(f"this {self.family} model has no discriminator or energy, so no log_ratio")

    def latent_prior(self, *, like: Tensor | None = None) -> distributions.Distribution:
        """The latent prior (standard normal if none was given)."""
        return self.prior if self.prior is not None else standard_normal(self.latent_dim, like=like)

    def to(self, device: torch.device | str) -> GenerativeModel:
        """Move every ``nn.Module`` part to ``device`` (in place) and return the model."""
        for module in self.modules.values():
            module.to(device)
        return self

    def with_parts(self, **parts: Callable[..., Any] | None) -> GenerativeModel:
        """A copy with parts replaced (``None`` removes one)."""
        merged = {**self.parts, **parts}
        return replace(self, parts={name: part for name, part in merged.items() if part is not None})

    @classmethod
    def from_generator(cls, generator: Callable[..., Tensor], *, latent_dim: int | None = None,
                       prior: distributions.Distribution | None = None, family: str = "custom",
                       **parts: Callable[..., Any]) -> GenerativeModel:
        """Wrap a bare generator; ``latent_dim`` defaults to its ``latent_dim`` attribute."""
        if latent_dim is None:
            latent_dim = getattr(generator, "latent_dim", None)
            if latent_dim is None:
                raise ValueError("cannot infer the latent size: pass latent_dim= or give the generator a "
                                 "`latent_dim` attribute")
        return cls(family=family, parts={"generator": generator, **parts}, latent_dim=int(latent_dim), prior=prior)
