"""MH-GAN: the independence sampler forgets its start and follows p_data under the ideal critic."""

from __future__ import annotations

import torch

from cogenerate.sampling.mh import mh_gan
from tests.sampling.conftest import assert_follows_data


def test_chains_forget_a_wrong_start_and_follow_the_data_density(one_d) -> None:
    # start every chain far from the data (x = 3) to check the kernel, not the starting images
    start = torch.full((50, 1), 3.0)
    result = mh_gan(one_d.model, start, n=3000, rng=torch.Generator().manual_seed(0), chain_length=100)
    assert_follows_data(result.samples)
    assert torch.allclose(result.samples, 1.2 * result.latents)  # generator samples, never the start
    assert 0.3 < result.acceptance_rate < 1.0 and result.stats["restarted"] < 0.01
    assert result.generator_calls == 3000 * 100


def test_a_chain_stuck_at_its_real_start_is_restarted_from_its_first_proposal(one_d) -> None:
    # a start the critic loves so much that no proposal is ever accepted
    critic = lambda x: torch.where(x.reshape(-1) > 50, torch.tensor(1e6), torch.tensor(0.0))  # noqa: E731
    result = mh_gan(one_d.model, torch.full((4, 1), 100.0), n=200, rng=torch.Generator().manual_seed(1),
                    critic=critic, chain_length=20)
    assert result.stats["restarted"] == 1.0 and result.acceptance_rate == 0.0
    assert (result.samples < 50).all() and torch.allclose(result.samples, 1.2 * result.latents)


def test_same_seed_same_samples(one_d) -> None:
    real = one_d.real(20, seed=0)
    a = mh_gan(one_d.model, real, n=50, rng=torch.Generator().manual_seed(3), chain_length=10)
    b = mh_gan(one_d.model, real, n=50, rng=torch.Generator().manual_seed(3), chain_length=10)
    assert torch.equal(a.samples, b.samples)
