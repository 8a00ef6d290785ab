import math

import torch

from cogenerate.mcmc.adapt import (adapt_mass, dual_averaging_init, dual_averaging_update, paper_rule,
                                   particle_tuning_init)


def test_paper_rule_moves_toward_target_and_clips():
    step = torch.tensor([0.1, 0.1, 0.5, 1e-4])
    acc = torch.tensor([0.9, 0.1, 0.9, 0.1])
    new = paper_rule(step, acc)
    torch.testing.assert_close(new, torch.tensor([0.102, 0.098, 0.5, 1e-4]))


def test_dual_averaging_finds_the_step_size_with_target_acceptance():
    # A deterministic acceptance curve a(ε) = exp(-ε): the step with a = 0.65 is -log 0.65.
    state = dual_averaging_init(torch.tensor([0.01, 1.0, 5.0]))
    for _ in range(2000):
        state = dual_averaging_update(state, torch.exp(-state.log_step.exp()), target=0.65)
    torch.testing.assert_close(state.log_step_avg.exp(), torch.full((3,), -math.log(0.65)), rtol=0.02, atol=0)


def test_mass_shrinkage_adds_pseudo_particles_at_the_prior_variance():
    rng = torch.Generator().manual_seed(0)
    position = torch.randn(2, 16, 5, generator=rng) * 0.1
    log_w = torch.zeros(2, 16)
    tuning = particle_tuning_init(2, 5, like=position)
    plain = adapt_mass(tuning, position, log_w).inverse_mass
    torch.testing.assert_close(plain, position.var(1, unbiased=False, keepdim=True))
    shrunk = adapt_mass(tuning, position, log_w, shrinkage=2.0, prior_variance=4.0).inverse_mass
    torch.testing.assert_close(shrunk, (16 * plain + 2 * 4.0) / 18)
    # A collapsed cloud keeps a step: k / (C + k) of the prior's variance, not the floor.
    same = position[:, :1].expand(-1, 16, -1)
    collapsed = adapt_mass(tuning, same, log_w, shrinkage=2.0).inverse_mass
    torch.testing.assert_close(collapsed, torch.full_like(collapsed, 2 / 18))
