"""The divergence triangle family: each KL term by hand, a few steps on a tiny batch, exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import distributions

from cogenerate.training.triangle import (
    DECODER_STD,
    energy_term,
    generated_energy_term,
    prior_kl_term,
    reconstruction_term,
    sleep_term,
    triangle_losses,
    triangle_step,
)
from tests.training.family_helpers import check_resume_and_load, ramp, tiny


def test_each_term_by_hand() -> None:
    # α's part of KL(P‖Π) − KL(Q‖Π): mean E(data) − mean E(fakes)
    assert energy_term(torch.tensor([1.0, 3.0]), torch.tensor([0.5])).item() == pytest.approx(1.5)
    assert generated_energy_term(torch.tensor([0.5, -1.5])).item() == pytest.approx(-0.5)
    # likelihood part of KL(Q‖P): ‖x − g‖² / (2s²); s² = ½ is the plain sum of squares
    x, g = torch.zeros(1, 1, 1, 2), torch.tensor([1.0, 2.0]).reshape(1, 1, 1, 2)
    assert DECODER_STD ** 2 == pytest.approx(0.5)
    assert reconstruction_term(x, g).item() == pytest.approx(5.0)
    assert reconstruction_term(x, g, decoder_std=1.0).item() == pytest.approx(2.5)
    # prior part of KL(Q‖P): KL(N((1, 0), diag(1, 4)) ‖ N(0, I)) = ½(1 + 4 − 1 − 2 log 2) per the closed form
    mean, log_std = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    kl = 0.5 * (1.0 + (4.0 - 1.0 - 2 * math.log(2.0)))
    assert prior_kl_term(mean, log_std, reduction="sum").item() == pytest.approx(kl)
    assert prior_kl_term(mean, log_std).item() == pytest.approx(kl / 2)
    q = distributions.Independent(distributions.Normal(mean, log_std.exp()), 1)
    p = distributions.Independent(distributions.Normal(torch.zeros(2), torch.ones(2)), 1)
    assert prior_kl_term(mean, log_std, reduction="sum").item() == pytest.approx(distributions.kl_divergence(q, p).item())
    with pytest.raises(ValueError, match="reduction"):
        prior_kl_term(mean, log_std, reduction="max")
    # sleep part of KL(P‖Π): −log q(z | g(z))
    z = torch.tensor([[0.5, -1.0]])
    assert sleep_term(z, mean, log_std).item() == pytest.approx(-q.log_prob(z).item(), rel=1e-6)


def test_the_players_losses_combine_the_terms() -> None:
    x, g = torch.zeros(1, 1, 1, 2), torch.tensor([1.0, 2.0]).reshape(1, 1, 1, 2)
    mean, log_std = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    z, fake_mean, fake_log_std = torch.tensor([[0.5, -1.0]]), torch.zeros(1, 2), torch.zeros(1, 2)
    sleep = 0.5 * (0.25 + 1.0) + math.log(2 * math.pi)
    kl = 0.5 * (1.0 + (4.0 - 1.0 - 2 * math.log(2.0)))
    losses = triangle_losses(x, g, mean, log_std, z, fake_mean, fake_log_std, torch.tensor([2.0]),
                             torch.tensor([-1.0, 0.0]), kl_reduction="sum", sleep_weight=0.1, vae_weight=2.0)
    assert losses.sleep.item() == pytest.approx(sleep)
    assert losses.loss_e.item() == pytest.approx(2.5)
    assert losses.loss_i.item() == pytest.approx(2.0 * (5.0 + kl) + 0.1 * sleep)
    assert losses.loss_g.item() == pytest.approx(2.0 * 5.0 - 0.5 + 0.1 * sleep)


def test_a_few_steps_reduce_the_losses_and_update_every_player() -> None:
    _, modules, optimizers, rng = tiny("triangle", energy_lr=3e-3, generator_lr=3e-3, encoder_lr=3e-3)
    before = {role: [p.detach().clone() for p in module.parameters()] for role, module in modules.items()}
    trace = [triangle_step(modules, optimizers, ramp(), rng, None)[1] for _ in range(15)]
    assert trace[-1]["reconstruction"] < 0.7 * trace[0]["reconstruction"], [t["reconstruction"] for t in trace]
    assert trace[-1]["loss_i"] < 0.7 * trace[0]["loss_i"], [t["loss_i"] for t in trace]
    assert trace[-1]["loss_g"] < trace[0]["loss_g"], [t["loss_g"] for t in trace]
    assert min(t["loss_e"] for t in trace[1:]) < trace[0]["loss_e"]
    for role, module in modules.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[role], module.parameters())), role


def test_the_energy_step_alone_separates_data_from_fakes() -> None:
    """With the generator and inference model frozen (learning rate 0), α descends
    E_data[E] − E_P[E]: the data's energy falls below the fakes'."""
    _, modules, optimizers, rng = tiny("triangle", energy_lr=1e-3)
    for role in ("generator", "encoder"):
        for group in optimizers[role].param_groups:
            group["lr"], group["weight_decay"] = 0.0, 0.0
    trace = [triangle_step(modules, optimizers, ramp(), rng, None)[1]["loss_e"] for _ in range(10)]
    assert trace[-1] < trace[0] and trace[-1] < 0, trace


def test_resume_and_load(tmp_path: Path) -> None:
    model = check_resume_and_load("triangle", tmp_path)
    assert set(model.parts) == {"generator", "energy", "encoder"}
    x = torch.zeros(2, 1, 28, 28)
    assert torch.allclose(model.log_ratio(x), -model.energy(x))
    mean, log_std = model.encoder(x)
    assert mean.shape == log_std.shape == (2, 4)
