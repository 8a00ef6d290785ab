"""FD, its bootstrap interval, precision and recall: closed forms, hand-computed cases, invariances."""

from __future__ import annotations

import math

import pytest
import torch

from cogenerate.evaluation.sample_quality import (
    bootstrap_frechet_distance, feature_statistics, frechet_distance, frechet_distance_gaussians, manifold_radii,
    precision_recall,
)


def _spd(dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return a @ a.T / dim + 0.1 * torch.eye(dim, dtype=torch.float64)


def test_fd_of_one_dimensional_gaussians_is_the_squared_mean_and_std_gaps() -> None:
    # W2²(N(m1, s1²), N(m2, s2²)) = (m1 − m2)² + (s1 − s2)²
    value = frechet_distance_gaussians(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]),
                                       torch.tensor([[0.25]]))
    assert value == pytest.approx(9.0 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_fd_of_commuting_covariances_closed_form() -> None:
    # diagonal Σ: tr((Σa Σb)^½) = Σ √(a_i b_i), so FD = ‖Δμ‖² + Σ (√a_i − √b_i)²
    f64 = torch.float64
    a, b = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=f64), torch.tensor([0.3, 2.0, 4.0, 0.1], dtype=f64)
    mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=f64), torch.tensor([1.0, 1.0, 0.0, 3.0], dtype=f64)
    expected = float((mu_a - mu_b).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    assert frechet_distance_gaussians(mu_a, torch.diag(a), mu_b, torch.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_fd_matches_scipy_sqrtm_for_general_covariances() -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    cov_a, cov_b = _spd(12, 0), _spd(12, 1)
    mu_a, mu_b = torch.zeros(12, dtype=torch.float64), torch.full((12,), 0.5, dtype=torch.float64)
    root = scipy_linalg.sqrtm((cov_a @ cov_b).numpy()).real
    expected = 12 * 0.25 + float(cov_a.trace() + cov_b.trace()) - 2 * float(root.trace())
    assert frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance_gaussians(mu_a, cov_a, mu_a, cov_a) == pytest.approx(0.0, abs=1e-9)


def test_fd_does_not_depend_on_sample_order() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(400, 8, generator=g), torch.randn(300, 8, generator=g) + 0.3
    before = frechet_distance(feature_statistics(a), feature_statistics(b))
    after = frechet_distance(feature_statistics(a[torch.randperm(400, generator=g)]),
                             feature_statistics(b[torch.randperm(300, generator=g)]))
    assert after == pytest.approx(before, rel=1e-10)


def test_feature_statistics_are_the_unbiased_moments() -> None:
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 1.0]])
    stats = feature_statistics(x)
    assert stats.mean.tolist() == pytest.approx([3.0, 1.0])
    assert torch.allclose(stats.covariance, torch.tensor([[4.0, 1.0], [1.0, 1.0]], dtype=torch.float64))  # N − 1 = 2
    assert stats.count == 3
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(x[:1])


def test_bootstrap_interval_is_reproducible_and_brackets_the_estimate() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(500, 4, generator=g), torch.randn(500, 4, generator=g) + 0.5
    fd = frechet_distance(feature_statistics(a), feature_statistics(b))
    first = bootstrap_frechet_distance(a, b, rng=torch.Generator().manual_seed(0), resamples=100)
    again = bootstrap_frechet_distance(a, b, rng=torch.Generator().manual_seed(0), resamples=100)
    assert first == again
    assert first.low < fd < first.high and first.level == 0.95
    # population FD is 4 · 0.5² = 1; the interval's width is a few sampling errors, not the whole scale
    assert first.high - first.low < 1.0
    both = bootstrap_frechet_distance(a, b, rng=torch.Generator().manual_seed(0), resamples=100, resample_reference=True)
    assert both.high - both.low > first.high - first.low  # two sources of noise instead of one


def test_precision_and_recall_of_a_hand_computed_case() -> None:
    # k = 1 in one dimension. Real 0, 1, 2, 3, 10: radii to the nearest other point 1, 1, 1, 1, 7.
    # Generated 0.5, 2.5 (inside), 5 (inside the ball of 10), 20, 100 (outside): precision 3/5.
    # Generated radii 2, 2, 2.5, 15, 80: every real point is covered (10 by the ball of 20): recall 1.
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    generated = torch.tensor([[0.5], [5.0], [20.0], [2.5], [100.0]])
    result = precision_recall(real, generated, k=1)
    assert (result.precision, result.recall) == (pytest.approx(0.6), pytest.approx(1.0))
    assert result.chunks == 1 and result.precision_interval is None
    assert manifold_radii(real, k=1).tolist() == [1.0, 1.0, 1.0, 1.0, 49.0]  # squared distances


def test_precision_and_recall_of_identical_and_of_distant_sets() -> None:
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(4))
    same = precision_recall(x, x.clone())
    assert (same.precision, same.recall) == (1.0, 1.0) and same.k == 3
    far = precision_recall(x, x + 100.0)
    assert (far.precision, far.recall) == (0.0, 0.0)


def test_precision_recall_chunks_the_larger_set_and_ignores_batch_size() -> None:
    g = torch.Generator().manual_seed(5)
    real, generated = torch.randn(50, 3, generator=g), torch.randn(120, 3, generator=g) * 1.5
    result = precision_recall(real, generated, batch_size=7)
    parts = [precision_recall(real, generated[i * 50:(i + 1) * 50]) for i in range(2)]  # 20 left over
    assert result.chunks == 2
    assert result.precision == pytest.approx(sum(p.precision for p in parts) / 2)
    assert result.recall == pytest.approx(sum(p.recall for p in parts) / 2)
    assert result.precision_interval is not None and result.precision_interval.low <= result.precision
    assert precision_recall(real, generated[:50], batch_size=3) == precision_recall(real, generated[:50])


def test_bad_features_raise_one_line_errors() -> None:
    with pytest.raises(ValueError, match="NaN"):
        feature_statistics(torch.tensor([[math.nan], [1.0]]))
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        precision_recall(torch.zeros(10), torch.zeros(10))
    with pytest.raises(ValueError, match="differ in size"):
        precision_recall(torch.randn(10, 2), torch.randn(10, 3))
