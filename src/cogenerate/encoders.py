"""An encoder q(z | x) as the proposal where a sampler's particles start.

A model with an ``encoder`` part (VAE, VAE-GAN, AAE, α-GAN) gives, for an observation x_o,
a Gaussian guess of its latent. :class:`EncoderProposal` turns it into a proposal for the
methods' ``init=`` setting (:mod:`cogenerate.proposals`): the samplers weight each draw by
``p(z) / q(z)``, so their samples and evidence estimates stay those of the posterior, while
the particles start where the posterior is. :func:`with_encoder_init` is what ``complete()``
calls: for a model with a mask-aware encoder and a method left at its default
``init="prior"``, it swaps in the encoder proposal (pass a model without its encoder,
``model.with_parts(encoder=None)``, to start from the prior; pass
``init=EncoderProposal(model.encoder)`` to use a plain encoder).

Two ways to encode a partial observation (``variant``):

``"fill"``
    The encoder sees a whole image: the hidden part is filled in by iterating
    ``x ← m·x_o + (1 − m)·G(μ(x))`` from a zero fill, ``fill_iterations`` times (forward
    passes only), the imputation by iterated encoding and decoding of Rezende, Mohamed &
    Wierstra, "Stochastic Backpropagation and Approximate Inference in Deep Generative
    Models", ICML 2014, §5 (their Markov chain, run on the means).
``"mask"``
    A mask-aware encoder (``encoder.mask_aware``, trained with random masks:
    ``training/vae.py``) reads ``(x_o · m, m)`` directly and was trained to give q(z | x_o).
``"auto"``
    ``"mask"`` for a mask-aware encoder, ``"fill"`` otherwise.

**Defensive proposal.** A Gaussian q is lighter-tailed than the posterior, and an encoder
trained on whole images is over-confident about a partial one, so importance weights
``p/q`` can be unbounded. The proposal may be widened and mixed with the prior, the
defensive mixture of Hesterberg, "Weighted Average Importance Sampling and Defensive Mixture
Distributions", Technometrics 1995:

    q(z) = α·p(z) + (1 − α)·N(z; μ, (κ σ)²),

with α = ``prior_weight`` (the weights are then at most 1/α) and κ = ``widen``. The default
is the widened Gaussian alone (κ = 1.5, α = 0): the samplers temper from the prior, so at
β ≈ 0 a draw is weighted by p/q, and the few prior draws of a mixture (p/q ≈ 1/α) outweigh
the encoder's draws (p/q ≈ e^-60 for a 32-dimensional code with σ ≈ 0.15) by so much that
resampling keeps only them, and the encoder is lost (docs/families.md, "encoder proposal").

For operators other than a mask (e.g. ``Downsample``) the encoder cannot be given an image
with a hole, and the proposal falls back to the prior.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, distributions

from cogenerate.methods import MethodSettings
from cogenerate.smc_polish import SMCPolish
from cogenerate.operators import Mask

if TYPE_CHECKING:
    from cogenerate.models.base import GenerativeModel
    from cogenerate.posterior import Posterior

__all__ = ["EncoderProposal", "VARIANTS", "encode_observed", "with_encoder_init"]

VARIANTS = ("auto", "fill", "mask")

DEFAULT_WIDEN = 1.5
"""κ: the encoder's σ is widened by this factor (κ = 1.5 beat 3 on validation images, docs/families.md)."""
DEFAULT_PRIOR_WEIGHT = 0.0
"""α: share of the prior in the mixture; 0 by default (see the module docstring and docs/families.md)."""
DEFAULT_FILL_ITERATIONS = 3
"""Encode-decode iterations that fill the hidden part for the "fill" variant."""


def encode_observed(encoder: Callable[..., tuple[Tensor, Tensor]], posterior: Posterior, *, variant: str = "auto",
                    fill_iterations: int = DEFAULT_FILL_ITERATIONS) -> tuple[Tensor, Tensor]:
    """``(μ, log σ)`` of q(z | x_o), each ``(B, D)``, for every observation of ``posterior``.

    ``posterior.operator`` must be a :class:`~cogenerate.operators.Mask`. Forward passes only
    (``fill_iterations`` generator calls of one latent per observation for ``"fill"``).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "auto":
        variant = "mask" if getattr(encoder, "mask_aware", False) else "fill"
    operator = posterior.operator
    if not isinstance(operator, Mask):
        raise ValueError(f"the encoder needs a mask to encode a partial observation, not a {type(operator).__name__}")
    m = operator.full(posterior.batch, posterior.x_shape).to(posterior.observed)
    observed = posterior.observed * m
    with torch.no_grad():
        if variant == "mask":
            return encoder(observed, m)
        x = observed
        for _ in range(fill_iterations):
            mean, _ = encoder(x)
            x = observed + (1 - m) * posterior.generate(mean.unsqueeze(1)).squeeze(1)
        return encoder(x)


@dataclass(frozen=True)
class EncoderProposal:
    """The defensive encoder proposal (see the module docstring); a :data:`~cogenerate.proposals.Proposal`.

    Attributes:
        encoder: ``encoder(x, mask=None) -> (μ, log σ)``, each ``(N, D)``.
        variant: "auto", "fill" or "mask".
        widen: κ, the factor on the encoder's σ.
        prior_weight: α, the prior's share of the mixture (0 = the widened Gaussian alone).
        fill_iterations: encode-decode iterations of the "fill" variant.
    """

    encoder: Callable[..., tuple[Tensor, Tensor]]
    variant: str = "auto"
    widen: float = DEFAULT_WIDEN
    prior_weight: float = DEFAULT_PRIOR_WEIGHT
    fill_iterations: int = DEFAULT_FILL_ITERATIONS

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not self.widen > 0:
            raise ValueError(f"widen must be positive, got {self.widen}")
        if not 0 <= self.prior_weight < 1:
            raise ValueError(f"prior_weight must lie in [0, 1), got {self.prior_weight}")
        if isinstance(self.fill_iterations, bool) or int(self.fill_iterations) < 0:
            raise ValueError(f"fill_iterations must be a non-negative integer, got {self.fill_iterations}")

    def _gaussian(self, posterior: Posterior) -> tuple[Tensor, Tensor]:
        """The widened encoder Gaussian's mean and log σ, each ``(B, 1, D)``."""
        mean, log_std = encode_observed(self.encoder, posterior, variant=self.variant,
                                        fill_iterations=int(self.fill_iterations))
        log_scale = log_std.to(posterior.observed) + math.log(self.widen)
        return mean.to(posterior.observed).unsqueeze(1), log_scale.unsqueeze(1)

    def reference(self, posterior: Posterior) -> distributions.Distribution | None:
        """q as a distribution with batch shape ``(B, 1)``, to temper from (``temper_from="init"``,
        :mod:`~cogenerate.anneal.bridge`); ``None`` where the proposal is the prior (operators
        other than a mask). The defensive mixture has no such form: ``prior_weight`` must be 0."""
        if not isinstance(posterior.operator, Mask):
            return None
        if self.prior_weight:
            raise ValueError("tempering from the encoder needs the Gaussian q alone: set prior_weight=0 "
                             "(the path from q needs no defensive mixture)")
        mean, log_scale = self._gaussian(posterior)
        return distributions.Independent(distributions.Normal(mean, log_scale.exp()), 1)

    def __call__(self, posterior: Posterior, num: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """``num`` draws per observation, ``(B, num, D)``, and their log density under q, ``(B, num)``."""
        shape = (posterior.batch, num)
        if not isinstance(posterior.operator, Mask):
            z = posterior.sample_prior(rng, shape)
            return z, posterior.log_prior(z)
        mean, log_scale = self._gaussian(posterior)
        like = posterior.observed
        eps = torch.randn((*shape, posterior.latent_dim), generator=rng, device=like.device, dtype=like.dtype)
        z = mean + log_scale.exp() * eps
        log_gauss = _log_normal(z, mean, log_scale)
        if self.prior_weight == 0:
            return z, log_gauss
        from_prior = torch.rand(shape, generator=rng, device=like.device, dtype=like.dtype) < self.prior_weight
        z = torch.where(from_prior.unsqueeze(-1), posterior.sample_prior(rng, shape), z)
        log_gauss = _log_normal(z, mean, log_scale)
        log_q = torch.logaddexp(math.log(self.prior_weight) + posterior.log_prior(z),
                                math.log1p(-self.prior_weight) + log_gauss)
        return z, log_q


def _log_normal(z: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """``log N(z; mean, diag(exp(log_scale)²))`` summed over the last dim."""
    standard = (z - mean) * torch.exp(-log_scale)
    return (-0.5 * standard.pow(2) - log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)


def with_encoder_init(settings: MethodSettings, model: GenerativeModel, *, mask_aware_only: bool = True,
                      **options: Any) -> MethodSettings:
    """``settings`` with ``init`` set to an :class:`EncoderProposal` of ``model.encoder`` when the
    model has an encoder and the method starts from the prior (``init == "prior"``); otherwise
    ``settings`` unchanged. ``options`` go to :class:`EncoderProposal` (``variant``, ``widen``, ...).

    ``mask_aware_only`` (the default, what ``complete()`` uses): only a mask-aware encoder is
    used. On the shipped models the mask-aware VAE encoder beat the prior start at every budget
    measured, while the "fill" variant of plain encoders (VAE-GAN, AAE, α-GAN) lost to it on top
    halves (AAE: hidden MSE 0.330 against 0.172 at 75 gradients per chain, docs/benchmarks.md §9);
    pass ``init=EncoderProposal(model.encoder)`` to use a plain encoder anyway."""
    if model.encoder is None or (mask_aware_only and not getattr(model.encoder, "mask_aware", False)):
        return settings
    proposal = EncoderProposal(model.encoder, **options)
    if isinstance(settings, SMCPolish):
        if isinstance(settings.smc.init, str) and settings.smc.init == "prior":
            return dataclasses.replace(settings, smc=dataclasses.replace(settings.smc, init=proposal))
        return settings
    names = {f.name for f in dataclasses.fields(settings)}
    init = getattr(settings, "init", None)
    if "init" in names and isinstance(init, str) and init == "prior":
        return dataclasses.replace(settings, init=proposal)
    return settings
