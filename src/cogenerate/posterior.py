"""The co-generation target: the latent posterior given a partial observation.

    log p_β(z | x_o) = log p(z) + β · [log p(x_o | G(z)) + λ · r(G(z))] + const

with a latent prior ``p(z)`` (standard normal unless given), an observation operator ``A`` and
a noise model (:mod:`cogenerate.operators`), and an optional critic's log density ratio ``r``
(a discriminator's logit) weighted by ``λ`` ("discriminator-driven latent sampling", Che et
al. 2020). β = 0 is the prior, β = 1 the posterior. The prior and the tempered part are two
separate functions (:meth:`Posterior.log_prior_and_grad`, :meth:`Posterior.log_likelihood_and_grad`)
so that a sampler can change β without calling the generator again.

Every tensor is batched as ``(B, C, ...)``: B observations × C chains, evaluated in one
generator call of batch ``B·C`` (or calls of at most ``max_batch`` samples).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, distributions, nn

from cogenerate.operators import NoiseModel, Operator

__all__ = ["Posterior", "Evaluation", "frozen_generator", "log_density_and_grad", "sample_prior"]

Generator = Callable[..., Tensor]


class Evaluation(NamedTuple):
    """The target's pieces at a batch of latents ``z`` of shape ``(B, C, D)``."""

    log_prior: Tensor  # (B, C)
    log_likelihood: Tensor  # (B, C): the tempered part (likelihood + λ·critic)
    grad_log_prior: Tensor  # (B, C, D)
    grad_log_likelihood: Tensor  # (B, C, D)
    sample: Tensor  # (B, C, *x_shape): G(z), detached

    def sanitized(self) -> Evaluation:
        """NaN log-likelihoods become -inf and non-finite gradients 0, so bad states lose weight
        and are left by the next accepted move instead of poisoning the run."""
        log_lik = torch.nan_to_num(self.log_likelihood, nan=-torch.inf)
        grad = self.grad_log_likelihood
        grad = torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad))
        return self._replace(log_likelihood=log_lik, grad_log_likelihood=grad)


def sample_prior(prior: distributions.Distribution | None, shape: tuple[int, ...], dim: int, *,
                 rng: torch.Generator, like: Tensor) -> Tensor:
    """``shape + (dim,)`` draws from ``prior`` (``None``: standard normal) using ``rng`` only.

    ``torch.distributions`` cannot take a ``torch.Generator``, so draws are built from ``rng``:
    normals as ``loc + scale·ε``, anything else with an inverse CDF as ``icdf(u)``.
    """
    size = (*shape, dim)
    if prior is None:
        return torch.randn(size, generator=rng, device=like.device, dtype=like.dtype)
    base = prior.base_dist if isinstance(prior, distributions.Independent) else prior
    if isinstance(base, distributions.Normal):
        eps = torch.randn(size, generator=rng, device=like.device, dtype=like.dtype)
        return base.loc.to(like) + base.scale.to(like) * eps
    u = torch.rand(size, generator=rng, device=like.device, dtype=like.dtype).clamp(1e-7, 1 - 1e-7)
    try:
        return base.icdf(u).to(like)
    except NotImplementedError:
        raise ValueError(f"cannot draw from the prior {prior!r} with an explicit rng: use a distribution with "
                         f"an inverse CDF (Normal, Uniform, Laplace, Cauchy, ...)") from None


def log_density_and_grad(distribution: distributions.Distribution | None, z: Tensor) -> tuple[Tensor, Tensor]:
    """``log q(z)`` ``(B, C)`` and its gradient ``(B, C, D)`` for ``(B, C, D)`` latents under a
    distribution over one latent vector (``None``: the standard normal)."""
    if distribution is None:
        return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi), -z
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        log_q = distribution.log_prob(z)
        if not log_q.requires_grad:  # flat inside its support (a uniform prior)
            return log_q.detach(), torch.zeros_like(z)
        (grad,) = torch.autograd.grad(log_q.sum(), z)
    return log_q.detach(), grad


@dataclass(frozen=True)
class Posterior:
    """Describes ``p(z | x_o)``; evaluating it is the only place the generator is called.

    Attributes:
        generator: maps ``(N, D)`` latents (and ``(N, ...)`` conditions) to ``(N, *x_shape)``.
        observed: ``(B, *x_shape)`` observations (hidden entries may hold anything finite).
        operator: what is observed of a sample.
        noise: the observation noise model.
        latent_dim: D.
        discriminator: optional critic ``(N, *x_shape) -> (N,)`` log density ratio (a logit)
            added to the tempered part.
        discriminator_weight: λ.
        prior: latent prior over one latent vector; ``None`` is the standard normal.
        condition: ``(B, ...)`` passed to the generator as ``G(z, condition)`` (each chain of an
            observation gets its observation's condition); ``None`` calls ``G(z)``.
        max_batch: cap on the samples of one generator call (chunked over chains); ``None``: no cap.
    """

    generator: Generator
    observed: Tensor
    operator: Operator
    noise: NoiseModel
    latent_dim: int
    discriminator: Generator | None = None
    discriminator_weight: float = 1.0
    prior: distributions.Distribution | None = None
    condition: Tensor | None = None
    max_batch: int | None = None

    @property
    def batch(self) -> int:
        return self.observed.shape[0]

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(self.observed.shape[1:])

    @functools.cached_property
    def observed_projection(self) -> Tensor:
        """``A(x)`` of the observations, ``(B, 1, *y_shape)`` (computed once)."""
        return self.operator(self.observed.unsqueeze(1))

    @functools.cached_property
    def observed_count(self) -> Tensor:
        """Observed scalars per observation, ``(B,)`` (computed once)."""
        return self.operator.observed_count(self.batch, self.x_shape).to(self.observed)

    def sample_prior(self, rng: torch.Generator, shape: tuple[int, int]) -> Tensor:
        """``(B, N, D)`` prior draws for ``shape = (B, N)``."""
        return sample_prior(self.prior, shape, self.latent_dim, rng=rng, like=self.observed)

    def _chains_per_call(self, chains: int) -> int:
        if self.max_batch is None:
            return chains
        return max(1, min(chains, self.max_batch // max(1, self.batch)))

    def generate(self, z: Tensor) -> Tensor:
        """``G(z)`` for ``z`` of shape ``(B, C, D)`` -> ``(B, C, *x_shape)``, one generator call."""
        b, c, d = z.shape
        flat = z.reshape(b * c, d)
        x = self.generator(flat) if self.condition is None else self.generator(
            flat, self.condition.repeat_interleave(c, dim=0))
        return x.reshape(b, c, *self.x_shape)

    def log_likelihood_of_samples(self, x: Tensor) -> Tensor:
        """The tempered part for samples ``x`` of shape ``(B, C, *x_shape)`` -> ``(B, C)``."""
        residual = self.operator(x) - self.observed_projection
        log_lik = self.noise.log_prob(residual, self.observed_count)
        if self.discriminator is not None:
            b, c = x.shape[:2]
            logits = self.discriminator(x.reshape(b * c, *self.x_shape)).reshape(b, c)
            log_lik = log_lik + self.discriminator_weight * logits
        return log_lik

    def log_prior_and_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``log p(z)`` ``(B, C)`` and its gradient ``(B, C, D)`` for ``(B, C, D)`` latents."""
        return log_density_and_grad(self.prior, z)

    def log_prior(self, z: Tensor) -> Tensor:
        """``log p(z)`` for ``(B, C, D)`` -> ``(B, C)``."""
        return self.log_prior_and_grad(z)[0]

    def log_likelihood_and_grad(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The tempered part ``(B, C)``, its gradient ``(B, C, D)`` and ``G(z)`` (detached):
        one generator forward and backward (per chunk of at most ``max_batch`` samples)."""
        per_call = self._chains_per_call(z.shape[1])
        pieces = [self._likelihood_chunk(z[:, i : i + per_call]) for i in range(0, z.shape[1], per_call)]
        if len(pieces) == 1:
            return pieces[0]
        return tuple(torch.cat(parts, dim=1) for parts in zip(*pieces, strict=True))  # type: ignore[return-value]

    def _likelihood_chunk(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            x = self.generate(z)
            log_lik = self.log_likelihood_of_samples(x)
            (grad,) = torch.autograd.grad(log_lik.sum(), z)
        return log_lik.detach(), grad, x.detach()

    def evaluate(self, z: Tensor) -> Evaluation:
        """All pieces of the target with gradients: one generator forward and backward."""
        log_lik, grad, sample = self.log_likelihood_and_grad(z)
        log_prior, grad_prior = self.log_prior_and_grad(z.detach())
        return Evaluation(log_prior, log_lik, grad_prior, grad, sample)

    def log_likelihood_no_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The tempered part and ``G(z)`` without gradients (forward passes only)."""
        with torch.no_grad():
            x = self.generate(z)
            return self.log_likelihood_of_samples(x), x

    def score(self, z: Tensor, *, chunk: int = 4096) -> Tensor:
        """Tempered part ``(B, N)`` of many latents ``(B, N, D)`` by forward passes of at most
        ``chunk`` (and ``max_batch``) samples each; NaN becomes -inf."""
        chunk = chunk if self.max_batch is None else min(chunk, self.max_batch)
        per_call = max(1, chunk // self.batch)
        scores = [self.log_likelihood_no_grad(z[:, i : i + per_call])[0] for i in range(0, z.shape[1], per_call)]
        return torch.nan_to_num(torch.cat(scores, dim=1), nan=-torch.inf)


@contextlib.contextmanager
def frozen_generator(*modules: object) -> Iterator[None]:
    """Put ``nn.Module``s in eval mode with parameters frozen; restore both afterwards.

    Sampling needs gradients with respect to z only, and batch norm in training mode would
    couple the chains of a batch; the user's modules are handed back as they came.
    """
    saved = []
    for module in modules:
        if isinstance(module, nn.Module):
            # Only what must change is touched (a frozen module in eval mode costs one walk).
            modes = [(m, m.training) for m in module.modules()]
            training = any(mode for _, mode in modes)
            trainable = [p for p in module.parameters() if p.requires_grad]
            saved.append((module, modes if training else None, trainable))
            if training:
                module.eval()
            for p in trainable:
                p.requires_grad_(False)
    try:
        yield
    finally:
        for module, modes, trainable in saved:
            if modes is not None:
                module.train(modes[0][1])
                for m, mode in modes[1:]:  # submodules whose mode differed from the root's
                    if m.training != mode:
                        m.training = mode
            for p in trainable:
                p.requires_grad_(True)
