"""The α-GAN family: the L1 term by hand, the four players' losses, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cogenerate.training.alpha_gan import ALPHA_GAN_LAMBDA, alpha_gan_step, l1_reconstruction
from tests.training.family_helpers import check_resume_and_load, ramp, tiny


def test_l1_by_hand() -> None:
    x = torch.zeros(1, 1, 2, 2)
    assert l1_reconstruction(x, torch.tensor([1.0, -2.0, 0.5, 0.5]).reshape(1, 1, 2, 2)).item() == pytest.approx(1.0)
    assert ALPHA_GAN_LAMBDA == 10.0


def test_a_few_steps_reduce_the_reconstruction_and_update_every_player() -> None:
    _, modules, optimizers, rng = tiny("alpha-gan", lr=3e-3, code_hidden=16)
    before = {role: [p.detach().clone() for p in module.parameters()] for role, module in modules.items()}
    trace = [alpha_gan_step(modules, optimizers, ramp(), rng, None)[1] for _ in range(15)]
    assert trace[-1]["l1"] < 0.85 * trace[0]["l1"], [t["l1"] for t in trace]
    for role, module in modules.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[role], module.parameters())), role
    # with λ = 0 the generator's loss is the two negative logits alone
    _, modules, optimizers, rng = tiny("alpha-gan", code_hidden=16)
    losses = alpha_gan_step(modules, optimizers, ramp(), rng, None, weight=0.0)[1]
    assert losses["loss_e"] != pytest.approx(losses["l1"])


def test_resume_and_load(tmp_path: Path) -> None:
    model = check_resume_and_load("alpha-gan", tmp_path, code_hidden=16)
    assert set(model.parts) == {"generator", "encoder", "discriminator"}
