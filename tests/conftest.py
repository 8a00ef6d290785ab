"""Shared fixtures: a linear-Gaussian generator with a closed-form posterior and evidence."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from cogenerate.data.images import FASHION_MNIST_ROOT, fashion_mnist_available

FASHION_MNIST_MISSING = (
    f"needs the Fashion-MNIST data, not found in {FASHION_MNIST_ROOT} (apt-get install dataset-fashion-mnist, "
    f"or set COGENERATE_FASHION_MNIST_ROOT to a folder of its IDX files)"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fashion_mnist: needs the Fashion-MNIST data set; skipped when it is missing")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``@pytest.mark.fashion_mnist`` skip, with the reason, where the data is missing."""
    if fashion_mnist_available():
        return
    skip = pytest.mark.skip(reason=FASHION_MNIST_MISSING)
    for item in items:
        if item.get_closest_marker("fashion_mnist") is not None:
            item.add_marker(skip)


class LinearGenerator(nn.Module):
    """G(z) = A z + b."""

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone())
        self.latent_dim = weight.shape[1]

    def forward(self, z: Tensor) -> Tensor:
        return z @ self.weight.T + self.bias


@dataclass
class LinearGaussianProblem:
    """z ~ N(0, I), x = A z + b + σ ε; the entries with mask 1 are observed.

    With O the observed rows: z | x_o ~ N(μ, Σ), Σ = (I + A_Oᵀ A_O / σ²)⁻¹,
    μ = Σ A_Oᵀ (x_O − b_O) / σ², and x_O ~ N(b_O, A_O A_Oᵀ + σ² I).
    """

    generator: LinearGenerator
    observed: Tensor  # (B, X)
    mask: Tensor  # (X,)
    sigma: float
    mean: Tensor  # (B, D)
    cov: Tensor  # (D, D)
    log_evidence: Tensor  # (B,)


def linear_gaussian_posterior(generator: LinearGenerator, observed: Tensor, mask: Tensor,
                              sigma: float | Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Closed-form posterior mean ``(B, D)``, covariance ``(B, D, D)`` and log-evidence ``(B,)``
    of observations ``(B, X)`` at noise std ``sigma`` (a number or one per observation)."""
    o = mask.bool()
    a_o, b_o = generator.weight.detach()[o], generator.bias.detach()[o]
    var = torch.as_tensor(sigma, dtype=a_o.dtype).pow(2).expand(observed.shape[0]).reshape(-1, 1, 1)
    eye_d, eye_o = torch.eye(a_o.shape[1], dtype=a_o.dtype), torch.eye(a_o.shape[0], dtype=a_o.dtype)
    cov = torch.linalg.inv(eye_d + a_o.T @ a_o / var)
    mean = torch.einsum("bij,bj->bi", cov, (observed[:, o] - b_o) @ a_o) / var[:, :, 0]
    marginal = torch.distributions.MultivariateNormal(b_o, a_o @ a_o.T + var * eye_o)
    return mean, cov, marginal.log_prob(observed[:, o])


def make_linear_gaussian(*, latent_dim: int = 3, x_dim: int = 6, batch: int = 2, sigma: float = 0.5,
                         seed: int = 1) -> LinearGaussianProblem:
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float64
    weight = torch.randn(x_dim, latent_dim, generator=g, dtype=dtype)
    bias = 0.3 * torch.randn(x_dim, generator=g, dtype=dtype)
    mask = torch.zeros(x_dim, dtype=dtype)
    mask[: x_dim // 2] = 1.0
    z = torch.randn(batch, latent_dim, generator=g, dtype=dtype)
    observed = z @ weight.T + bias + sigma * torch.randn(batch, x_dim, generator=g, dtype=dtype)
    generator = LinearGenerator(weight, bias)
    mean, cov, log_evidence = linear_gaussian_posterior(generator, observed, mask, sigma)
    return LinearGaussianProblem(generator, observed, mask, sigma, mean, cov[0], log_evidence)


class ExactEncoder:
    """q(z | x_o) = the closed-form posterior's mean and marginal stds times ``scale`` (a diagonal
    Gaussian; ``scale < 1`` is an over-confident encoder)."""

    mask_aware = True

    def __init__(self, problem, *, scale: float = 1.0):
        self.problem, self.scale, self.calls = problem, scale, 0

    def __call__(self, x, mask=None):
        self.calls += 1
        mask = self.problem.mask if mask is None else mask[0]
        mean, cov, _ = linear_gaussian_posterior(self.problem.generator, x, mask, self.problem.sigma)
        std = torch.diagonal(cov, dim1=-2, dim2=-1).sqrt() * self.scale
        return mean, std.log()


@pytest.fixture(autouse=True)
def _one_thread():
    """The tests use tiny models: intra-op threads gain nothing, and on a shared 2-core machine
    two spinning OpenMP threads make them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def linear_gaussian() -> LinearGaussianProblem:
    return make_linear_gaussian()


def weighted_moments(latents: Tensor, log_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Weighted mean ``(B, D)`` and covariance ``(B, D, D)`` of ``(B, C, D)`` particles."""
    w = log_weights.exp().unsqueeze(-1)
    mean = (w * latents).sum(1)
    centred = latents - mean.unsqueeze(1)
    cov = torch.einsum("bc,bci,bcj->bij", log_weights.exp(), centred, centred)
    return mean, cov


def assert_unbiased(estimates: Tensor, truth: Tensor, *, z: float = 4.5, bias_allowance: Tensor | float = 0.0) -> Tensor:
    """Check R independent replicate estimates ``(R, ...)`` against ``truth``.

    The tolerance is derived from the Monte Carlo error itself: the mean of R replicates
    must lie within ``z`` standard errors (replicate spread / √R) of the truth, plus an
    allowance for a known O(variance) bias (e.g. Jensen's bias of log-evidence estimates).
    Returns the standard error so callers can also check that the test is not vacuous.
    """
    r = estimates.shape[0]
    se = estimates.std(0) / r**0.5
    error = (estimates.mean(0) - truth).abs()
    tolerance = z * se + bias_allowance
    assert (error <= tolerance).all(), f"error {error} exceeds tolerance {tolerance} (standard error {se})"
    return se
