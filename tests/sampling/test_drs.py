"""DRS: with γ = 0 and ε = 0 it is exact rejection sampling, so its samples follow p_data."""

from __future__ import annotations

import pytest
import torch

from cogenerate.sampling.drs import acceptance_logit, drs
from tests.sampling.conftest import assert_follows_data, ideal_critic, sup_ratio


def test_acceptance_logit_is_the_rejection_probability_when_gamma_and_epsilon_vanish() -> None:
    log_ratio = torch.tensor([-3.0, -1.0, -0.1], dtype=torch.float64)
    p = torch.sigmoid(acceptance_logit(log_ratio, 0.0, epsilon=0.0))
    assert torch.allclose(p, log_ratio.exp())  # σ(D̃ − D̃_M − log(1 − e^{D̃ − D̃_M})) = e^{D̃ − D̃_M}
    assert torch.sigmoid(acceptance_logit(torch.tensor([0.0]), 0.0, epsilon=0.0)).item() == 1.0


def test_exact_rejection_sampling_follows_the_data_density(one_d) -> None:
    result = drs(one_d.model, n=4000, rng=torch.Generator().manual_seed(0), percentile=None, epsilon=0.0,
                 burn_in=20_000, batch_size=2000)
    assert result.samples.shape == (4000, 1) and torch.allclose(result.samples, 1.2 * result.latents)
    assert_follows_data(result.samples)
    # rejection sampling accepts 1/M of the proposals
    proposals = result.stats["proposals"]
    expected = 1.0 / sup_ratio()
    assert abs(result.acceptance_rate - expected) < 4.5 * (expected * (1 - expected) / proposals) ** 0.5
    assert result.generator_calls == 20_000 + proposals


def test_the_percentile_shift_is_reported_and_favours_high_ratios(one_d) -> None:
    # here most samples lie near the ratio's maximum, so γ (95th percentile of F) is positive and
    # DRS keeps fewer samples than exact rejection sampling, those of highest ratio
    exact = drs(one_d.model, n=500, rng=torch.Generator().manual_seed(1), percentile=None, burn_in=1000)
    shifted = drs(one_d.model, n=500, rng=torch.Generator().manual_seed(1), burn_in=1000)
    assert shifted.stats["percentile"] == 95.0 and shifted.stats["epsilon"] == 1e-6 and shifted.stats["gamma_mean"] > 0
    assert shifted.acceptance_rate < exact.acceptance_rate
    assert ideal_critic(shifted.samples).mean() > ideal_critic(exact.samples).mean()


def test_same_seed_same_samples_and_the_global_rng_is_left_alone(one_d) -> None:
    state = torch.get_rng_state()
    a = drs(one_d.model, n=100, rng=torch.Generator().manual_seed(5), burn_in=500, batch_size=256)
    b = drs(one_d.model, n=100, rng=torch.Generator().manual_seed(5), burn_in=500, batch_size=256)
    assert torch.equal(a.samples, b.samples) and torch.equal(torch.get_rng_state(), state)


def test_hopeless_targets_stop_with_a_message(one_d) -> None:
    with pytest.raises(ValueError, match="max_proposals"):
        drs(one_d.model, n=10, rng=torch.Generator(), percentile=None, burn_in=0, batch_size=4,
            critic=lambda x: -1e4 * (x.reshape(-1) - 3.0).abs(), max_proposals=8)
    with pytest.raises(ValueError, match="percentile"):
        drs(one_d.model, n=1, rng=torch.Generator(), percentile=120.0)
