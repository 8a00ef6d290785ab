"""The EBGAN family: loss formulas by hand, a few steps reduce each loss, checkpoints resume exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cogenerate.models.loading import load_model
from cogenerate.training.ebgan import (
    EBGAN, ebgan_discriminator_loss, ebgan_generator_loss, ebgan_step, pulling_away,
)
from cogenerate.training.families import resolve_settings
from cogenerate.training.loop import train


def _tiny(seed: int = 0, **given):
    settings = resolve_settings("ebgan", {"width": 8, "code_dim": 8, "latent_dim": 8, "batch_size": 16, "lr": 1e-3,
                                          **given})
    rng = torch.Generator().manual_seed(seed)
    modules = EBGAN.build(settings, (1, 28, 28), rng)
    return settings, modules, EBGAN.make_optimizers(modules, settings), rng


def _real() -> torch.Tensor:
    return torch.linspace(-1, 1, 28).expand(16, 1, 28, 28).clone()


def test_losses_by_hand() -> None:
    # L_D = mean(1, 2) + mean([10 − 5]⁺, [10 − 12]⁺) = 1.5 + 2.5
    assert ebgan_discriminator_loss(torch.tensor([1.0, 2.0]), torch.tensor([5.0, 12.0]), margin=10.0).item() == 4.0
    # codes (1,0), (0,1), (1,1): squared cosines 0, ½, ½ for the 3 pairs, each counted twice, / (3·2)
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert pulling_away(codes).item() == pytest.approx(1 / 3)
    assert pulling_away(torch.tensor([[1.0, 2.0], [-2.0, -4.0]])).item() == pytest.approx(1.0)
    assert ebgan_generator_loss(torch.tensor([3.0, 5.0]), codes, pt_weight=0.1).item() == pytest.approx(4 + 0.1 / 3)
    assert ebgan_generator_loss(torch.tensor([3.0, 5.0])).item() == 4.0
    with pytest.raises(ValueError, match="codes"):
        ebgan_generator_loss(torch.tensor([1.0]), None, pt_weight=0.1)


def test_build_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    _, a, _, _ = _tiny(seed=3)
    _, b, _, _ = _tiny(seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    for role in ("generator", "energy"):
        for key, value in a[role].state_dict().items():
            assert torch.equal(value, b[role].state_dict()[key]), key


def test_a_few_steps_reduce_the_discriminator_loss_on_a_fixed_batch() -> None:
    _, modules, optimizers, rng = _tiny(lr=3e-3)  # the N(0, 0.02) start is slow at 1e-3
    for group in optimizers["generator"].param_groups:
        group["lr"] = 0.0
    trace = [ebgan_step(modules, optimizers, _real(), rng, None)[1]["loss_d"] for _ in range(15)]
    assert trace[-1] < 0.8 * trace[0], trace


@pytest.mark.parametrize("pt_weight", [0.0, 0.1])
def test_a_few_steps_reduce_the_generator_loss_against_a_fixed_discriminator(pt_weight: float) -> None:
    _, modules, optimizers, rng = _tiny(pt_weight=pt_weight)
    for group in optimizers["energy"].param_groups:
        group["lr"] = 0.0
    before = [p.detach().clone() for p in modules["energy"].parameters()]
    trace = [ebgan_step(modules, optimizers, _real(), rng, None, pt_weight=pt_weight)[1]["loss_g"] for _ in range(10)]
    assert trace[-1] < 0.9 * trace[0], trace
    assert all(torch.equal(a, b) for a, b in zip(before, modules["energy"].parameters()))


def test_resumed_run_equals_uninterrupted_run_and_loads_as_an_energy_model(tmp_path: Path) -> None:
    def data(n: int, rng: torch.Generator) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=rng) * 2 - 1

    settings, whole, _, rng = _tiny(pt_weight=0.1)
    train(EBGAN, whole, data, iterations=4, settings=settings, rng=rng)
    settings, part, _, rng = _tiny(pt_weight=0.1)
    train(EBGAN, part, data, iterations=2, settings=settings, rng=rng, checkpoint_dir=tmp_path)
    settings, resumed, _, rng = _tiny(seed=9, pt_weight=0.1)
    result = train(EBGAN, resumed, data, iterations=4, settings=settings, rng=rng, checkpoint_dir=tmp_path)
    assert result.start_iteration == 2
    for role in whole:
        for a, b in zip(whole[role].parameters(), resumed[role].parameters()):
            assert torch.equal(a, b), role

    model = load_model(tmp_path)
    assert model.family == "ebgan" and set(model.parts) == {"generator", "energy"}
    x = torch.zeros(2, 1, 28, 28)
    assert torch.allclose(model.log_ratio(x), -model.energy(x))
    assert model.config["train_settings"]["pt_weight"] == 0.1


def test_cogen_train_family_ebgan(tmp_path: Path) -> None:
    from cogenerate.cli import main

    out = tmp_path / "run"
    assert main(["--quiet", "train", "--family", "ebgan", "--data", "digits", "--out", str(out), "--iterations", "2",
                 "--width", "4", "--code-dim", "4", "--latent-dim", "4", "--batch-size", "8",
                 "--pt-weight", "0.1"]) == 0
    header = (out / "losses.csv").read_text().splitlines()[0]
    assert header == "iteration,loss_d,loss_g,energy_real,energy_fake,pull_away"
    assert load_model(out).family == "ebgan" and math.isfinite(load_model(out).config["train_settings"]["margin"])
