"""The BEGAN family: loss, k_t and M_global formulas by hand; steps reduce the losses; k_t resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cogenerate.models.loading import load_model
from cogenerate.training.began import (
    ARCHITECTURES, BEGAN, began_discriminator_loss, began_generator_loss, began_step, convergence_measure, update_k,
)
from cogenerate.training.families import resolve_settings
from cogenerate.training.loop import train


LEARNING_RATES = {"paper": 1e-3, "dcgan": 1e-2}  # DCGAN's N(0, 0.02) weights start slower


def _tiny(seed: int = 0, architecture: str = "paper", **given):
    settings = resolve_settings("began", {"width": 4, "depth": 1, "code_dim": 8, "latent_dim": 8, "batch_size": 8,
                                          "lr": LEARNING_RATES[architecture], "architecture": architecture, **given})
    rng = torch.Generator().manual_seed(seed)
    modules = BEGAN.build(settings, (1, 28, 28), rng)
    return settings, modules, BEGAN.make_optimizers(modules, settings), rng, BEGAN.init_state(modules, settings)


def _real() -> torch.Tensor:
    return torch.linspace(-1, 1, 28).expand(8, 1, 28, 28).clone()


def test_losses_control_and_convergence_measure_by_hand() -> None:
    real, fake = torch.tensor([0.2, 0.4]), torch.tensor([0.1, 0.3])
    assert began_discriminator_loss(real, fake, 0.5).item() == pytest.approx(0.3 - 0.5 * 0.2)
    assert began_generator_loss(fake).item() == pytest.approx(0.2)
    # k + λ_k (γ L(x) − L(G)) = 0.5 + 0.001 · (0.5 · 0.3 − 0.1)
    assert update_k(0.5, 0.3, 0.1) == pytest.approx(0.50005)
    assert update_k(0.0, 0.1, 0.9) == 0.0 and update_k(1.0, 0.9, 0.0, lambda_k=1.0) == 1.0
    assert convergence_measure(0.3, 0.1) == pytest.approx(0.3 + abs(0.15 - 0.1))
    assert convergence_measure(0.3, 0.2, gamma=1.0) == pytest.approx(0.4)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_few_steps_reduce_the_discriminator_loss_and_k_follows_the_control(architecture: str) -> None:
    _, modules, optimizers, rng, state = _tiny(architecture=architecture)
    assert state == {"k": 0.0, "gamma": 0.5, "lambda_k": 0.001}
    trace = []
    for _ in range(15):
        previous = state["k"]
        state, losses = began_step(modules, optimizers, _real(), rng, state)
        trace.append(losses["loss_d"])
        assert losses["k"] == previous and 0.0 <= state["k"] <= 1.0
        real_loss = losses["loss_d"] + previous * 0  # k was 0 or tiny: L_D ≈ L(x)
        assert losses["m_global"] >= real_loss - 1e-3
    assert trace[-1] < 0.8 * trace[0], trace


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_few_steps_reduce_the_generator_loss_against_a_fixed_discriminator(architecture: str) -> None:
    _, modules, optimizers, rng, state = _tiny(architecture=architecture)
    for group in optimizers["energy"].param_groups:
        group["lr"] = 0.0
    trace = []
    for _ in range(10):
        state, losses = began_step(modules, optimizers, _real(), rng, state)
        trace.append(losses["loss_g"])
    assert trace[-1] < 0.9 * trace[0], trace


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_resumed_run_keeps_k_and_equals_the_uninterrupted_run(tmp_path: Path, architecture: str) -> None:
    def data(n: int, rng: torch.Generator) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=rng) * 2 - 1

    settings, whole, _, rng, _ = _tiny(architecture=architecture, gamma=2.0, lambda_k=0.05)  # a γ that makes k move
    whole_result = train(BEGAN, whole, data, iterations=4, settings=settings, rng=rng)
    settings, part, _, rng, _ = _tiny(architecture=architecture, gamma=2.0, lambda_k=0.05)
    train(BEGAN, part, data, iterations=2, settings=settings, rng=rng, checkpoint_dir=tmp_path)
    settings, resumed, _, rng, _ = _tiny(seed=5, architecture=architecture, gamma=2.0, lambda_k=0.05)
    result = train(BEGAN, resumed, data, iterations=4, settings=settings, rng=rng, checkpoint_dir=tmp_path)
    assert result.losses == whole_result.losses and result.losses["k"] > 0
    for role in whole:
        for a, b in zip(whole[role].parameters(), resumed[role].parameters()):
            assert torch.equal(a, b), role
    model = load_model(tmp_path)
    assert model.family == "began" and model.energy is not None
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.equal(model.energy(x), resumed["energy"](x))  # the checkpoint round-trips


def test_cogen_train_family_began_logs_k_and_m_global(tmp_path: Path) -> None:
    from cogenerate.cli import main

    out = tmp_path / "run"
    assert main(["--quiet", "train", "--family", "began", "--data", "digits", "--out", str(out), "--iterations", "2",
                 "--width", "4", "--depth", "1", "--code-dim", "4", "--latent-dim", "4", "--batch-size", "4"]) == 0
    lines = (out / "losses.csv").read_text().splitlines()
    assert lines[0] == "iteration,loss_d,loss_g,k,m_global" and len(lines) == 3
