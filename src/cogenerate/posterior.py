"""The co-generation target: the latent posterior given a partial observation.

    log p_β(z | x_o) = log p(z) + β · [log p(x_o | G(z)) + λ · d(G(z))] + const

with a standard normal prior ``p(z)``, an observation operator ``A`` and a noise model
(:mod:`cogenerate.operators`), and an optional discriminator logit ``d`` weighted by ``λ``
("discriminator-driven latent sampling", Che et al. 2020). β = 0 is the prior, β = 1 the
posterior. The tempered part is kept apart from the prior so that a sampler can change β
without calling the generator again.

Every tensor is batched as ``(B, C, ...)``: B observations × C chains, evaluated in one
generator call of batch ``B·C``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from cogenerate.operators import NoiseModel, Operator

__all__ = ["Posterior", "Evaluation", "frozen_generator"]

Generator = Callable[[Tensor], Tensor]


class Evaluation(NamedTuple):
    """The target's pieces at a batch of latents ``z`` of shape ``(B, C, D)``."""

    log_prior: Tensor  # (B, C)
    log_likelihood: Tensor  # (B, C): the tempered part (likelihood + λ·discriminator)
    grad_log_prior: Tensor  # (B, C, D)
    grad_log_likelihood: Tensor  # (B, C, D)
    sample: Tensor  # (B, C, *x_shape): G(z), detached


@dataclass(frozen=True)
class Posterior:
    """Describes ``p(z | x_o)``; evaluating it is the only place the generator is called.

    Attributes:
        generator: maps ``(N, D)`` latents to ``(N, *x_shape)`` samples.
        observed: ``(B, *x_shape)`` observations (hidden entries may hold anything finite).
        operator: what is observed of a sample.
        noise: the observation noise model.
        latent_dim: D.
        discriminator: optional ``(N, *x_shape) -> (N,)`` logits added to the tempered part.
        discriminator_weight: λ.
    """

    generator: Generator
    observed: Tensor
    operator: Operator
    noise: NoiseModel
    latent_dim: int
    discriminator: Generator | None = None
    discriminator_weight: float = 1.0

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

    def generate(self, z: Tensor) -> Tensor:
        """``G(z)`` for ``z`` of shape ``(B, C, D)`` -> ``(B, C, *x_shape)``, one generator call."""
        b, c, d = z.shape
        x = self.generator(z.reshape(b * c, d))
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

    def log_prior(self, z: Tensor) -> Tensor:
        """Standard normal ``log p(z)`` for ``(B, C, D)`` -> ``(B, C)``."""
        return -0.5 * z.pow(2).sum(-1) - 0.5 * self.latent_dim * math.log(2 * math.pi)

    def evaluate(self, z: Tensor) -> Evaluation:
        """All pieces of the target with gradients: one generator forward and backward."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            x = self.generate(z)
            log_lik = self.log_likelihood_of_samples(x)
            (grad,) = torch.autograd.grad(log_lik.sum(), z)
        z = z.detach()
        return Evaluation(
            log_prior=self.log_prior(z),
            log_likelihood=log_lik.detach(),
            grad_log_prior=-z,
            grad_log_likelihood=grad,
            sample=x.detach(),
        )

    def log_likelihood_no_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The tempered part and ``G(z)`` without gradients (a forward pass only)."""
        with torch.no_grad():
            x = self.generate(z)
            return self.log_likelihood_of_samples(x), x

    def score(self, z: Tensor, *, chunk: int = 4096) -> Tensor:
        """Tempered part ``(B, N)`` of many latents ``(B, N, D)`` by forward passes of at most
        ``chunk`` samples each; NaN becomes -inf."""
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
            saved.append((module, module.training, [p.requires_grad for p in module.parameters()]))
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
    try:
        yield
    finally:
        for module, training, flags in saved:
            module.train(training)
            for p, flag in zip(module.parameters(), flags, strict=True):
                p.requires_grad_(flag)
