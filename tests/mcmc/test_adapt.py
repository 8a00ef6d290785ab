import math

import torch

from cogenerate.mcmc.adapt import dual_averaging_init, dual_averaging_update, paper_rule


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
