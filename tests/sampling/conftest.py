"""A 1-D problem where the ideal critic is known in closed form.

Generator ``G(z) = μ_G + σ_G z`` with ``z ~ N(0, 1)``, so ``p_G = N(μ_G, σ_G²)``; data
``p_data = N(μ_D, σ_D²)`` with ``σ_D < σ_G``, so the density ratio is bounded and rejection
sampling is possible. The ideal critic is ``d(x) = log N(x; μ_D, σ_D) − log N(x; μ_G, σ_G)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from cogenerate.models.base import GenerativeModel

MU_G, SIGMA_G = 0.0, 1.2
MU_D, SIGMA_D = 0.5, 0.7


class AffineGenerator(nn.Module):
    """``G(z) = μ_G + σ_G z``: ``(N, 1) -> (N, 1)``."""

    latent_dim = 1

    def forward(self, z: Tensor) -> Tensor:
        return MU_G + SIGMA_G * z


def normal_log_pdf(x: Tensor, mu: float, sigma: float) -> Tensor:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def ideal_critic(x: Tensor) -> Tensor:
    """``log p_data(x) / p_G(x)`` for ``x`` of shape ``(N, 1)`` -> ``(N,)``."""
    x = x.reshape(-1)
    return normal_log_pdf(x, MU_D, SIGMA_D) - normal_log_pdf(x, MU_G, SIGMA_G)


def sup_ratio() -> float:
    """``M = max_x p_data(x) / p_G(x)``, on a fine grid."""
    grid = torch.linspace(-10, 10, 200_001, dtype=torch.float64)
    return ideal_critic(grid).exp().max().item()


@dataclass
class OneDimensional:
    model: GenerativeModel
    data_mean: float = MU_D
    data_std: float = SIGMA_D

    def real(self, n: int, seed: int) -> Tensor:
        """``(n, 1)`` exact draws from ``p_data``."""
        return MU_D + SIGMA_D * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def one_d() -> OneDimensional:
    model = GenerativeModel.from_generator(AffineGenerator(), latent_dim=1, discriminator=ideal_critic)
    return OneDimensional(model)


def assert_follows_data(x: Tensor, *, p_min: float = 1e-3) -> None:
    """Kolmogorov–Smirnov test of ``x`` against ``N(μ_D, σ_D²)``, and the first two moments
    within 4.5 standard errors."""
    from scipy import stats

    values = x.reshape(-1).double()
    n = values.numel()
    p_value = stats.kstest(values.numpy(), "norm", args=(MU_D, SIGMA_D)).pvalue
    assert p_value > p_min, f"KS p-value {p_value:.2e}: the samples do not follow the data density"
    assert abs(values.mean().item() - MU_D) < 4.5 * SIGMA_D / n**0.5, values.mean()
    assert abs(values.std().item() - SIGMA_D) < 4.5 * SIGMA_D / (2 * n) ** 0.5, values.std()
