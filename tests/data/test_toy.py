"""The ring of Gaussians of Fang & Schwing (2019), §3.1."""

from __future__ import annotations

import math

import pytest
import torch

from cogenerate.data.toy import ring_means, ring_of_gaussians


def test_ring_means_are_equally_spaced_on_the_circle_starting_at_angle_zero() -> None:
    means = ring_means()
    assert means.shape == (5, 2)
    torch.testing.assert_close(means[0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(means.norm(dim=1), torch.ones(5))
    angles = torch.atan2(means[:, 1], means[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles, torch.arange(5) * (2 * math.pi / 5))
    torch.testing.assert_close(ring_means(4, 2.0), torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]]), atol=1e-6, rtol=0)


def test_samples_have_the_mixture_statistics() -> None:
    n = 100_000
    x = ring_of_gaussians(n, rng=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and x.dtype == torch.get_default_dtype()
    means = ring_means()
    nearest = torch.cdist(x, means).argmin(dim=1)
    weights = torch.bincount(nearest, minlength=5) / n
    # modes are 1.18 apart and std 0.14: nearest-mean assignment is almost exact
    torch.testing.assert_close(weights, torch.full((5,), 0.2), atol=0.006, rtol=0)
    for k in range(5):
        cluster = x[nearest == k]
        torch.testing.assert_close(cluster.mean(0), means[k], atol=0.005, rtol=0)
        # per-coordinate variance 0.02, isotropic, uncorrelated
        covariance = torch.cov(cluster.T)
        torch.testing.assert_close(covariance, 0.02 * torch.eye(2), atol=0.0012, rtol=0)


def test_same_seed_same_samples_and_global_rng_untouched() -> None:
    before = torch.get_rng_state()
    a = ring_of_gaussians(64, rng=torch.Generator().manual_seed(3))
    b = ring_of_gaussians(64, rng=torch.Generator().manual_seed(3))
    c = ring_of_gaussians(64, rng=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), before)


def test_options_zero_variance_dtype_and_empty() -> None:
    x = ring_of_gaussians(50, rng=torch.Generator().manual_seed(1), modes=3, radius=2.0, variance=0.0, dtype=torch.float64)
    assert x.dtype == torch.float64
    distances = torch.cdist(x, ring_means(3, 2.0, dtype=torch.float64)).min(dim=1).values
    assert distances.max().item() < 1e-12
    assert ring_of_gaussians(0, rng=torch.Generator()).shape == (0, 2)
    with pytest.raises(ValueError):
        ring_of_gaussians(-1, rng=torch.Generator())
    with pytest.raises(ValueError):
        ring_means(0)
