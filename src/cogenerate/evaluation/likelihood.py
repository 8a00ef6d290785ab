"""Log-likelihood of decoder models by AIS, with a bidirectional Monte Carlo (BDMC) sandwich.

Wu, Burda, Salakhutdinov & Grosse, "On the Quantitative Analysis of Decoder-Based Generative
Models", ICLR 2017: a decoder ``G`` with a Gaussian observation model

    p(x) = ∫ p(z) N(x; G(z), σ² I) dz

is evaluated by annealed importance sampling from the prior to the posterior (Neal 2001),
whose mean weight is an unbiased estimate of p(x), so ``log`` of it is a stochastic *lower*
bound. Here that AIS is :func:`cogenerate.complete` with nothing hidden (an all-ones mask,
method :class:`cogenerate.AIS` started from the prior): no second AIS is written.

**BDMC** (Grosse, Ghahramani & Adams, "Sandwiching the marginal likelihood using
bidirectional Monte Carlo", 2015; Wu et al. §3.2): on data simulated from the model,
x = G(z*) + σε with z* ~ p(z), z* is an exact posterior sample, so AIS can also run in
reverse, from the posterior at z* back to the prior; its mean weight is an unbiased estimate of
1/p(x), and minus its log a stochastic *upper* bound. The reverse run is the same AIS code on
the reversed path π_s ∝ p(z) L(z)^(1−s): a :class:`~cogenerate.posterior.Posterior` whose
"prior" is the unnormalised posterior p(z)·L(z) and whose tempered part is −log L(z)
(:func:`reverse_ais_upper_bound`). The sigmoid schedule is symmetric (β_t = 1 − β_(T−t)), so
the reverse run visits the forward run's temperatures in reverse order. The gap between the
bounds bounds the error of both on simulated data, and must shrink as temperatures are added.

For models with an encoder q(z | x) the usual bounds sit below: the ELBO ``E_q[log p(x, z) −
log q(z | x)]`` and the importance-weighted bound ``IWAE_K = E[log (1/K) Σ_k p(x, z_k) /
q(z_k | x)]`` (Burda, Grosse & Salakhutdinov 2016), which rises to log p(x) as K grows
(:func:`elbo`, :func:`iwae_bound`).

σ is a property of the evaluation, not of the model: :func:`fit_noise_std` fits it on the
validation split by maximum evidence (SMC's ``noise_std="auto"`` per image; the root mean
square of the fitted σ's, the pooled maximum-likelihood value of a Gaussian misfit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from cogenerate.methods import AIS, SMC
from cogenerate.models.base import GenerativeModel
from cogenerate.operators import Gaussian, Mask, NoiseModel
from cogenerate.posterior import Posterior, frozen_generator

__all__ = [
    "BDMCResult", "ais_log_likelihood", "bdmc", "elbo", "fit_noise_std", "iwae_bound", "loglik_report",
    "reverse_ais_upper_bound", "simulate",
]

DEFAULT_STEPS = 1000
"""Annealing temperatures: the scale of issue 11 (up to 1,000 temperatures, 4 chains, 50 images)."""
DEFAULT_CHAINS = 4


def _settings(steps: int, leapfrog: int, step_size: float, init: object = "prior") -> AIS:
    return AIS(steps=steps, leapfrog=leapfrog, schedule="sigmoid", step_size=step_size, adapt="paper", init=init)


def _without_encoder(model: GenerativeModel) -> GenerativeModel:
    return model.with_parts(encoder=None) if model.encoder is not None else model


def ais_log_likelihood(model: GenerativeModel, images: Tensor, *, noise_std: float, steps: int = DEFAULT_STEPS,
                       chains: int = DEFAULT_CHAINS, leapfrog: int = 10, step_size: float = 0.01, seed: int = 0,
                       rng: torch.Generator | None = None, max_batch: int | None = None) -> Tensor:
    """Forward AIS estimate of ``log p(x)`` per image, ``(N, *x_shape) -> (N,)`` (a stochastic lower bound).

    ``complete()`` with an all-ones mask and ``AIS(steps, leapfrog, schedule="sigmoid")`` from
    the prior (an encoder, if the model has one, is not used); a model with several generators
    gives the log of their mean likelihood (:mod:`cogenerate.mixture`).
    """
    from cogenerate.api import complete

    mask = torch.ones(images.shape[1:], dtype=images.dtype)
    out = complete(_without_encoder(model), images, mask, method=_settings(steps, leapfrog, step_size), chains=chains,
                   noise_std=noise_std, seed=seed, rng=rng, max_batch=max_batch)
    return out.log_evidence


class _Negated(NoiseModel):
    """``−log p(residual)`` of a noise model: the reversed path's tempered part."""

    def __init__(self, inner: NoiseModel):
        self.inner, self.scale, self.power, self.std_per_scale = inner, inner.scale, inner.power, inner.std_per_scale

    def log_prob(self, residual: Tensor, count: Tensor) -> Tensor:
        return -self.inner.log_prob(residual, count)

    def log_normaliser(self, count: Tensor) -> Tensor:
        return -self.inner.log_normaliser(count)


@dataclass(frozen=True)
class _JointAsPrior:
    """The unnormalised posterior ``log p(z) + log L(z)`` of ``(B, C, D)`` latents: the reversed
    path's starting density, in the place of a prior (only ``log_prob`` is used)."""

    posterior: Posterior

    def log_prob(self, z: Tensor) -> Tensor:
        log_prior = -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
        if self.posterior.prior is not None:
            log_prior = self.posterior.prior.log_prob(z)
        return log_prior + self.posterior.log_likelihood_of_samples(self.posterior.generate(z))


def reverse_ais_upper_bound(model: GenerativeModel, images: Tensor, latents: Tensor, *, noise_std: float,
                            steps: int = DEFAULT_STEPS, chains: int = DEFAULT_CHAINS, leapfrog: int = 10,
                            step_size: float = 0.01, rng: torch.Generator) -> Tensor:
    """Reverse AIS from exact posterior samples: ``−log`` of the mean reverse weight, ``(N,)``,
    a stochastic upper bound on ``log p(x)``.

    Args:
        model: its (first) generator made ``images``.
        images: ``(N, *x_shape)`` simulated as ``G(latents) + noise_std·ε``.
        latents: ``(N, D)`` the latents that made them: exact posterior samples.
        noise_std: σ of the Gaussian observation model (the one that simulated ``images``).
        steps, chains, leapfrog, step_size: as the forward AIS (every chain starts at the
            image's own latent).
        rng: draws the HMC momenta.
    """
    generator = model.generator
    with frozen_generator(*model.modules.values()):
        forward = Posterior(generator=generator, observed=images, operator=Mask(torch.ones_like(images[:1])),
                            noise=Gaussian(noise_std), latent_dim=model.latent_dim, prior=model.prior)
        reverse = Posterior(generator=generator, observed=images, operator=forward.operator,
                            noise=_Negated(forward.noise), latent_dim=model.latent_dim, prior=_JointAsPrior(forward))

        def exact_start(posterior: Posterior, num: int, _: torch.Generator) -> tuple[Tensor, Tensor]:
            z = latents.to(images).unsqueeze(1).expand(-1, num, -1).clone()
            return z, posterior.log_prior(z)  # weight p/q = 1: the start is the normalised posterior

        output = _settings(steps, leapfrog, step_size, init=exact_start).run(reverse, chains=chains, rng=rng,
                                                                            max_grad_evals=None)
    return -output.log_evidence


def simulate(model: GenerativeModel, num: int, *, noise_std: float, rng: torch.Generator) -> tuple[Tensor, Tensor]:
    """``num`` images ``x = G(z*) + σε`` with ``z* ~ p(z)`` from the model's (first) generator:
    ``(images (num, *x_shape), latents (num, D))``."""
    like = next((p for m in model.modules.values() for p in m.parameters()), torch.zeros(()))
    z = torch.randn(num, model.latent_dim, generator=rng, device=rng.device, dtype=like.dtype).to(like.device)
    if model.prior is not None:
        from cogenerate.posterior import sample_prior

        z = sample_prior(model.prior, (num,), model.latent_dim, rng=rng, like=z)
    with frozen_generator(*model.modules.values()), torch.no_grad():
        x = model.generator(z)
    noise = torch.randn(x.shape, generator=rng, device=rng.device, dtype=x.dtype).to(x.device)
    return x + noise_std * noise, z


class BDMCResult(NamedTuple):
    """The BDMC sandwich on simulated data (all ``(N,)``): ``lower ≤ log p(x) ≤ upper`` in expectation."""

    lower: Tensor
    upper: Tensor
    images: Tensor  # (N, *x_shape)
    latents: Tensor  # (N, D)

    @property
    def gap(self) -> Tensor:
        """``upper − lower`` per image: at least the error of either bound."""
        return self.upper - self.lower


def bdmc(model: GenerativeModel, num: int, *, noise_std: float, steps: int = DEFAULT_STEPS,
         chains: int = DEFAULT_CHAINS, leapfrog: int = 10, step_size: float = 0.01,
         rng: torch.Generator) -> BDMCResult:
    """Simulate ``num`` images from the model (:func:`simulate`), then sandwich their ``log p(x)``
    between forward AIS (:func:`ais_log_likelihood`) and reverse AIS (:func:`reverse_ais_upper_bound`).
    A model with several generators is sandwiched through its first one."""
    single = _without_encoder(model)
    if len(single.generators) > 1:
        single = single.with_parts(**{name: None for name in single.parts if name.startswith("generator_")})
    images, latents = simulate(single, num, noise_std=noise_std, rng=rng)
    lower = ais_log_likelihood(single, images, noise_std=noise_std, steps=steps, chains=chains, leapfrog=leapfrog,
                               step_size=step_size, rng=rng)
    upper = reverse_ais_upper_bound(single, images, latents, noise_std=noise_std, steps=steps, chains=chains,
                                    leapfrog=leapfrog, step_size=step_size, rng=rng)
    return BDMCResult(lower, upper, images, latents)


def _log_weights(model: GenerativeModel, images: Tensor, *, noise_std: float, samples: int,
                 rng: torch.Generator) -> Tensor:
    """``log p(x, z_k) − log q(z_k | x)`` for ``samples`` draws of the encoder's q, ``(N, samples)``."""
    if model.encoder is None:
        raise ValueError(f"this {model.family} model has no encoder, so no ELBO or IWAE bound")
    with frozen_generator(*model.modules.values()), torch.no_grad():
        mean, log_std = model.encoder(images)
        eps = torch.randn((*mean.shape[:1], samples, mean.shape[1]), generator=rng, device=rng.device,
                          dtype=mean.dtype).to(mean.device)
        z = mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * eps
        log_q = (-0.5 * eps.pow(2) - log_std.unsqueeze(1) - 0.5 * math.log(2 * math.pi)).sum(-1)
        posterior = Posterior(generator=model.generator, observed=images, operator=Mask(torch.ones_like(images[:1])),
                              noise=Gaussian(noise_std), latent_dim=model.latent_dim, prior=model.prior)
        log_prior = posterior.log_prior(z)
        chunk = max(1, 4096 // images.shape[0])
        log_lik = torch.cat([posterior.log_likelihood_no_grad(z[:, i : i + chunk])[0]
                             for i in range(0, samples, chunk)], dim=1)
    return log_prior + log_lik - log_q


def elbo(model: GenerativeModel, images: Tensor, *, noise_std: float, samples: int = 100,
         rng: torch.Generator) -> Tensor:
    """Monte Carlo ELBO ``E_q[log p(x, z) − log q(z | x)]`` per image, ``(N,)`` (needs an encoder)."""
    return _log_weights(model, images, noise_std=noise_std, samples=samples, rng=rng).mean(1)


def iwae_bound(model: GenerativeModel, images: Tensor, *, noise_std: float, samples: int = 5000,
               rng: torch.Generator) -> Tensor:
    """The importance-weighted bound with ``samples`` draws of q per image, ``(N,)`` (needs an encoder)."""
    weights = _log_weights(model, images, noise_std=noise_std, samples=samples, rng=rng)
    return torch.logsumexp(weights, dim=1) - math.log(samples)


def fit_noise_std(model: GenerativeModel, images: Tensor, *, chains: int = 8, max_grad_evals: int = 300,
                  seed: int = 0) -> float:
    """σ fitted on ``images`` (the validation split): each image's maximum-evidence σ by SMC
    (``noise_std="auto"``, nothing hidden), pooled as the root of their mean square."""
    from cogenerate.api import complete

    mask = torch.ones(images.shape[1:], dtype=images.dtype)
    out = complete(_without_encoder(model), images, mask, method=SMC(leapfrog=5), chains=chains, noise_std="auto",
                   max_grad_evals=max_grad_evals, seed=seed)
    return float(out.noise_std.pow(2).mean().sqrt())


def loglik_report(model: GenerativeModel, dataset: str, *, images: int = 50, steps: int = DEFAULT_STEPS,
                  chains: int = DEFAULT_CHAINS, bdmc_images: int = 10, sigma_images: int = 50,
                  seed: int = 0) -> dict:
    """What ``cogen evaluate --loglik`` reports: σ fitted on the first ``sigma_images`` validation
    images, the AIS ``log p(x)`` of the first ``images`` report images (mean and normal 95 %
    interval, nats per image), and the BDMC gap on ``bdmc_images`` simulated images at the same
    ``steps`` and ``chains``."""
    from cogenerate.evaluation.splits import load_split

    sigma = fit_noise_std(model, load_split(dataset, "validation")[:sigma_images], seed=seed)
    values = ais_log_likelihood(model, load_split(dataset, "report")[:images], noise_std=sigma, steps=steps,
                                chains=chains, rng=torch.Generator().manual_seed(seed))
    sandwich = bdmc(model, bdmc_images, noise_std=sigma, steps=steps, chains=chains,
                    rng=torch.Generator().manual_seed(seed + 1))
    half = 1.96 * float(values.std()) / max(1, len(values)) ** 0.5 if len(values) > 1 else 0.0
    return {"sigma": sigma, "mean": float(values.mean()), "low": float(values.mean()) - half,
            "high": float(values.mean()) + half, "images": len(values), "steps": steps, "chains": chains,
            "bdmc_lower": float(sandwich.lower.mean()), "bdmc_upper": float(sandwich.upper.mean()),
            "bdmc_gap": float(sandwich.gap.mean()), "bdmc_images": bdmc_images}
