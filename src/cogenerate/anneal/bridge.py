"""Tempering from a proposal q instead of the prior: the geometric bridge q^(1−β) (p·L)^β.

The annealed samplers (:mod:`~cogenerate.anneal.ais`, :mod:`~cogenerate.anneal.smc`) temper
``log p(z) + β·log L(z)`` from the prior at β = 0. Started from a proposal q(z | x_o) (an
encoder), their draws carry weights p/q at β = 0, and a Gaussian q lighter-tailed than the
posterior makes those weights heavy-tailed: on the shipped VAE the log-evidence of the encoder
start fell 18–20 nats below the prior start's at 1,000 gradients per chain
(docs/benchmarks.md §9). With ``temper_from="init"`` the path runs from q itself:

    log π_β(z) = (1 − β)·log q(z) + β·(log p(z) + log L(z))
               = log q(z) + β·(log p(z) + log L(z) − log q(z)),

the geometric path of Neal's AIS ("Annealed importance sampling", Statistics and Computing
2001, eq. 3) with q as the tractable end. The draws from q start with equal weights, each
reweighting multiplies by (p·L/q)^Δβ, and the product of the mean increments estimates
``∫ q · (p·L / q) = ∫ p·L``, the same evidence as from the prior. At β = 1 the target is the
posterior itself. :class:`BridgedPosterior` is the posterior with q in the prior's place and
``log p − log q`` added to the tempered part, so the samplers run unchanged.

Fitting the noise scale by evidence (``empirical_bayes``) reads β as a noise scale, which the
added ``log p − log q`` breaks: the two do not combine. The compiled graphs
(:mod:`~cogenerate.anneal.compiled`) evaluate the prior themselves and run eagerly here.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, distributions

from cogenerate.posterior import Posterior, log_density_and_grad, sample_prior
from cogenerate.proposals import Proposal

__all__ = ["TEMPER_FROM", "BridgedPosterior", "check_temper_from", "temper_from_init"]

TEMPER_FROM = ("prior", "init")


def check_temper_from(value: object, init: object) -> None:
    """Raise ``ValueError`` unless ``value`` is "prior" or "init", and "init" comes with an
    ``init`` that is the prior or a proposal with a ``reference`` density."""
    if value not in TEMPER_FROM:
        raise ValueError(f"temper_from must be one of {TEMPER_FROM}, got {value!r}")
    if value == "init" and not isinstance(init, str) and not callable(getattr(init, "reference", None)):
        raise ValueError("temper_from='init' needs a proposal with a density to temper from (a reference(posterior) "
                         "method, as EncoderProposal has); this init has none: use temper_from='prior'")


@dataclasses.dataclass(frozen=True)
class BridgedPosterior(Posterior):
    """``posterior`` tempered from ``reference`` (q): q takes the prior's place at β = 0 and the
    tempered part becomes ``log L + log p − log q`` (see the module docstring).

    Attributes:
        reference: q, a distribution over one latent vector with batch shape ``(B, 1)``
            (one per observation), e.g. ``Independent(Normal(μ (B, 1, D), σ (B, 1, D)), 1)``.
    """

    reference: distributions.Distribution | None = None

    def sample_prior(self, rng: torch.Generator, shape: tuple[int, int]) -> Tensor:
        """``(B, N, D)`` draws from q."""
        return sample_prior(self.reference, shape, self.latent_dim, rng=rng, like=self.observed)

    def log_prior_and_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``log q(z)`` and its gradient: the β = 0 end of the path."""
        return log_density_and_grad(self.reference, z)

    def _correction(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``log p(z) − log q(z)`` ``(B, C)`` and its gradient."""
        log_p, grad_p = log_density_and_grad(self.prior, z)
        log_q, grad_q = log_density_and_grad(self.reference, z)
        return log_p - log_q, grad_p - grad_q

    def log_likelihood_and_grad(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        log_lik, grad, sample = super().log_likelihood_and_grad(z)
        log_ratio, grad_ratio = self._correction(z)
        return log_lik + log_ratio, grad + grad_ratio, sample

    def log_likelihood_no_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        log_lik, sample = super().log_likelihood_no_grad(z)
        return log_lik + self._correction(z)[0], sample


def temper_from_init(posterior: Posterior, init: str | Proposal, temper_from: str, *, empirical_bayes: bool,
                     compile: bool | str) -> tuple[Posterior, str | Proposal, bool | str]:
    """``(posterior, init, compile)`` for a sampler: unchanged for ``temper_from="prior"`` (or a
    prior start, or a proposal that falls back to the prior for this posterior); else the
    :class:`BridgedPosterior` from the proposal's ``reference(posterior)``, whose draws (now
    ``init="prior"``) come from q with equal weights, and ``compile=False``."""
    check_temper_from(temper_from, init)
    if temper_from == "prior" or isinstance(init, str):
        return posterior, init, compile
    if empirical_bayes:
        raise ValueError("temper_from='init' cannot fit the noise scale by evidence (noise_std='auto'): along a path "
                         "from q, β is no longer a noise scale; give noise_std a number or use temper_from='prior'")
    if compile is True:
        raise ValueError("temper_from='init' runs eagerly: the compiled graphs temper from the prior; "
                         "use compile=False or 'auto'")
    reference = init.reference(posterior)
    if reference is None:
        return posterior, init, compile
    fields = {f.name: getattr(posterior, f.name) for f in dataclasses.fields(posterior)}
    return BridgedPosterior(**fields, reference=reference), "prior", False
