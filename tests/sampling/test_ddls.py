"""DDLS: Langevin in latent space on E(z) = ½‖z‖² − d(G(z)) turns p_G into p_data under the ideal critic."""

from __future__ import annotations

import pytest
import torch

from cogenerate.sampling.ddls import ddls, latent_energy
from tests.sampling.conftest import SIGMA_G, assert_follows_data, ideal_critic


def test_latent_energy_and_its_gradient(one_d) -> None:
    z = torch.tensor([[-1.0], [0.0], [0.7]], dtype=torch.float64)
    energy, grad, x = latent_energy(one_d.model, ideal_critic, z)
    assert torch.allclose(energy, 0.5 * z.reshape(-1) ** 2 - ideal_critic(SIGMA_G * z))
    assert torch.allclose(x, SIGMA_G * z)
    # p_t(z) = N(z; (μ_D − μ_G)/σ_G, (σ_D/σ_G)²): E'(z) = (z − m)/s²
    m, s2 = 0.5 / SIGMA_G, (0.7 / SIGMA_G) ** 2
    assert torch.allclose(grad, (z - m) / s2)


def test_unadjusted_langevin_at_the_papers_step_follows_the_data_density(one_d) -> None:
    result = ddls(one_d.model, n=3000, rng=torch.Generator().manual_seed(0), steps=600)
    assert result.stats["step_size"] == 0.01 and result.stats["adjusted"] is False
    assert result.acceptance_rate == 1.0 and result.generator_calls == 3000 * 601
    assert_follows_data(result.samples)  # ULA's O(ε) variance bias is 0.7 % here, below the test's resolution


def test_metropolis_adjusted_langevin_follows_the_data_density(one_d) -> None:
    result = ddls(one_d.model, n=3000, rng=torch.Generator().manual_seed(1), step_size=0.2, steps=150, adjusted=True)
    assert 0.5 < result.acceptance_rate < 1.0
    assert_follows_data(result.samples)


def test_zero_steps_are_prior_samples_and_the_seed_decides(one_d) -> None:
    a = ddls(one_d.model, n=64, rng=torch.Generator().manual_seed(2), steps=0)
    b = ddls(one_d.model, n=64, rng=torch.Generator().manual_seed(2), steps=0)
    expected = SIGMA_G * torch.randn(64, 1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.samples, b.samples) and torch.allclose(a.samples, expected)
    with pytest.raises(ValueError, match="step_size"):
        ddls(one_d.model, n=1, rng=torch.Generator(), step_size=0.0)
