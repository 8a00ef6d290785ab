"""CRPS against its closed forms and a numerical integral; the energy score; the 95 % summaries."""

from __future__ import annotations

import math

import pytest
import torch

from cogenerate.evaluation.scores import (
    Z_95, crps_ensemble, crps_gaussian_mixture, energy_score, expected_absolute, summarise,
)


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def test_expected_absolute_value_of_a_normal() -> None:
    # E|N(0, 1)| = √(2/π); with σ = 0 it is |μ|
    assert float(expected_absolute(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0))) == pytest.approx(
        math.sqrt(2 / math.pi), rel=1e-12)
    assert float(expected_absolute(torch.tensor(-1.5), torch.tensor(0.0))) == 1.5


def test_crps_of_one_gaussian_is_gneiting_and_rafterys_closed_form() -> None:
    # CRPS(N(μ, σ²), y) = σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π], z = (y − μ)/σ (Gneiting & Raftery 2007)
    mu, sigma, y = 0.3, 0.7, -0.4
    z = (y - mu) / sigma
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    expected = sigma * (z * (2 * float(_normal_cdf(torch.tensor(z, dtype=torch.float64))) - 1) + 2 * phi - 1 / math.sqrt(math.pi))
    f64 = torch.float64
    value = crps_gaussian_mixture(torch.tensor([[mu, mu]], dtype=f64), torch.log(torch.tensor([[0.4, 0.6]], dtype=f64)),
                                  sigma, torch.tensor([y], dtype=f64))
    assert float(value) == pytest.approx(expected, rel=1e-10)


def test_crps_of_a_mixture_matches_the_integral_of_the_squared_cdf_gap() -> None:
    # CRPS(F, y) = ∫ (F(x) − 1{x ≥ y})² dx, integrated on a fine grid
    f64 = torch.float64
    means, weights = torch.tensor([-0.8, 0.1, 0.9], dtype=f64), torch.tensor([0.2, 0.5, 0.3], dtype=f64)
    sigma, y = 0.25, 0.4

    def cdf(x: torch.Tensor) -> torch.Tensor:
        return (weights[:, None] * _normal_cdf((x - means[:, None]) / sigma)).sum(0)

    below, above = torch.linspace(-6, y, 100_001, dtype=f64), torch.linspace(y, 6, 100_001, dtype=f64)
    integral = float(torch.trapezoid(cdf(below) ** 2, below) + torch.trapezoid((1 - cdf(above)) ** 2, above))
    value = crps_gaussian_mixture(means[None, :, None], weights.log()[None], torch.tensor([sigma]),
                                  torch.tensor([[y]], dtype=f64))
    assert float(value) == pytest.approx(integral, rel=1e-8)


def test_ensemble_crps_by_hand() -> None:
    # point mass: |x − y|; two equal-weight points {0, 1} at y = 0: E|X − y| − ½E|X − X'| = 0.5 − 0.25
    assert float(crps_ensemble(torch.tensor([[2.0]]), torch.zeros(1, 1), torch.tensor([0.5]))) == 1.5
    value = crps_ensemble(torch.tensor([[[0.0, 3.0], [1.0, 3.0]]]), torch.log(torch.tensor([[0.5, 0.5]])),
                          torch.tensor([[0.0, 3.0]]))
    assert value.flatten().tolist() == pytest.approx([0.25, 0.0])


def test_crps_per_image_noise_and_shapes() -> None:
    samples = torch.zeros(2, 3, 1, 2, 2, dtype=torch.float64)
    value = crps_gaussian_mixture(samples, torch.full((2, 3), -math.log(3), dtype=torch.float64), torch.tensor([0.0, 1.0]),
                                  torch.zeros(2, 1, 2, 2))
    assert value.shape == (2, 1, 2, 2)
    assert value[0].abs().max() == 0  # exact forecast, no noise
    assert float(value[1, 0, 0, 0]) == pytest.approx(math.sqrt(2 / math.pi) - 1 / math.sqrt(math.pi), rel=1e-9)
    with pytest.raises(ValueError, match="do not fit"):
        crps_gaussian_mixture(samples, torch.zeros(2, 2), 1.0, torch.zeros(2, 1, 2, 2))


def test_energy_score_by_hand_and_in_one_dimension() -> None:
    # two equal-weight points (0, 0) and (3, 4) at y = (0, 0): ½·0 + ½·5 − ½·(2·¼·5) = 1.25
    points = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    value = energy_score(points, torch.log(torch.tensor([[0.5, 0.5]])), torch.zeros(1, 2))
    assert value.tolist() == pytest.approx([1.25])
    # in one dimension it is the CRPS
    rng = torch.Generator().manual_seed(0)
    samples, truth = torch.randn(3, 5, 1, generator=rng), torch.randn(3, 1, generator=rng)
    log_weights = torch.log_softmax(torch.randn(3, 5, generator=rng), dim=1)
    assert energy_score(samples, log_weights, truth).tolist() == pytest.approx(
        crps_ensemble(samples, log_weights, truth).flatten().tolist(), rel=1e-9)
    assert energy_score(samples[..., 0], log_weights, truth[:, 0]).tolist() == pytest.approx(
        energy_score(samples, log_weights, truth).tolist())  # scalar observations
    with pytest.raises(ValueError, match="do not fit"):
        energy_score(samples, log_weights[:, :4], truth)


def test_energy_score_prefers_the_true_joint_over_independent_marginals() -> None:
    # truth ~ N(0, [[1, .95], [.95, 1]]): ensembles from the true joint beat ensembles with the
    # same marginals but independent coordinates, on average over many truths
    rng = torch.Generator().manual_seed(1)
    chol = torch.linalg.cholesky(torch.tensor([[1.0, 0.95], [0.95, 1.0]], dtype=torch.float64))
    truth = torch.randn(2000, 2, generator=rng, dtype=torch.float64) @ chol.T
    joint = torch.randn(2000, 64, 2, generator=rng, dtype=torch.float64) @ chol.T
    independent = torch.randn(2000, 64, 2, generator=rng, dtype=torch.float64)
    uniform = torch.full((2000, 64), -math.log(64), dtype=torch.float64)
    assert energy_score(joint, uniform, truth).mean() < energy_score(independent, uniform, truth).mean() - 0.02


def test_summaries_are_normal_intervals_over_finite_values() -> None:
    s = summarise(torch.tensor([1.0, 2.0, 3.0, math.nan]))
    assert (s.mean, s.n) == (2.0, 3)
    assert s.high - s.mean == pytest.approx(Z_95 * 1.0 / math.sqrt(3))
    assert summarise(torch.tensor([math.nan])).n == 0 and math.isnan(summarise(torch.tensor([5.0])).low)
