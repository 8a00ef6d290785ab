"""The one training loop: resume after a kill gives the same weights, grids, step state, config."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cogenerate.checkpoint import list_checkpoints, load_checkpoint
from cogenerate.models.toy import ToyGenerator
from cogenerate.training.dcgan import DCGAN
from cogenerate.training.families import Family, resolve_settings
from cogenerate.training.gan import init_parameters_
from cogenerate.training.loop import train

SETTINGS = resolve_settings("dcgan", {"width": 8, "latent_dim": 8, "batch_size": 8})
DATA = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _sample(n: int, rng: torch.Generator) -> torch.Tensor:
    return DATA[torch.randint(0, DATA.shape[0], (n,), generator=rng)]


def _dcgan(seed: int) -> dict[str, nn.Module]:
    return DCGAN.build(SETTINGS, (1, 28, 28), torch.Generator().manual_seed(seed))


def _assert_same_weights(a: Mapping[str, nn.Module], b: Mapping[str, nn.Module]) -> None:
    for role in a:
        for key, value in a[role].state_dict().items():
            assert torch.equal(value, b[role].state_dict()[key]), (role, key)


def test_resumed_dcgan_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    latents = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    straight = _dcgan(0)
    full = train(DCGAN, straight, _sample, iterations=6, settings=SETTINGS, rng=torch.Generator().manual_seed(0),
                 checkpoint_dir=tmp_path / "full", checkpoint_every=3, grid_latents=latents)
    assert full.start_iteration == 0 and full.iteration == 6 and set(full.losses) == {"loss_d", "loss_g"}
    assert full.grid == tmp_path / "full" / "samples" / "iter_0000006.png"
    assert sorted(p.name for p in (tmp_path / "full" / "samples").iterdir()) == ["iter_0000003.png", "iter_0000006.png"]

    first = train(DCGAN, _dcgan(0), _sample, iterations=3, settings=SETTINGS, rng=torch.Generator().manual_seed(0),
                  checkpoint_dir=tmp_path / "resumed", checkpoint_every=3)
    assert first.checkpoint == tmp_path / "resumed" / "iter_0000003"
    # a new process: differently initialised parts and rng; everything comes from the checkpoint
    resumed_parts = _dcgan(5)
    steps: list[int] = []
    resumed = train(DCGAN, resumed_parts, _sample, iterations=6, settings=SETTINGS, rng=torch.Generator().manual_seed(9),
                    checkpoint_dir=tmp_path / "resumed", checkpoint_every=3, on_step=lambda i, losses: steps.append(i))
    assert resumed.start_iteration == 3 and resumed.resumed_from == tmp_path / "resumed" / "iter_0000003"
    assert steps == [4, 5, 6] and resumed.losses == full.losses
    _assert_same_weights(straight, resumed_parts)
    assert [it for it, _ in list_checkpoints(tmp_path / "resumed")] == [6]  # the periodic one at 3 was pruned

    config = load_checkpoint(tmp_path / "resumed" / "iter_0000006").config
    assert config["family"] == "dcgan" and config["train_settings"] == SETTINGS


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    class Killed(Exception):
        pass

    def kill_at_5(iteration: int, losses: dict[str, float]) -> None:
        if iteration == 5:
            raise Killed

    with pytest.raises(Killed):
        train(DCGAN, _dcgan(0), _sample, iterations=6, settings=SETTINGS, rng=torch.Generator().manual_seed(0),
              checkpoint_dir=tmp_path, checkpoint_every=2, keep=(2,), on_step=kill_at_5)
    assert [it for it, _ in list_checkpoints(tmp_path)] == [2, 4]
    resumed_parts = _dcgan(3)
    result = train(DCGAN, resumed_parts, _sample, iterations=6, settings=SETTINGS, rng=torch.Generator(),
                   checkpoint_dir=tmp_path, checkpoint_every=2, keep=(2,))
    assert result.start_iteration == 4
    straight = _dcgan(0)
    train(DCGAN, straight, _sample, iterations=6, settings=SETTINGS, rng=torch.Generator().manual_seed(0))
    _assert_same_weights(straight, resumed_parts)
    assert [it for it, _ in list_checkpoints(tmp_path)] == [2, 6]


# A family with a state between steps: regression of a toy generator's output onto 1, with a
# running mean of its loss as the step state, so resuming must restore the state too.


def _state_step(modules, optimizers, real, rng, state):
    noise = torch.randn(real.shape[0], 2, generator=rng)
    loss = (modules["generator"](noise) - real).pow(2).mean()
    optimizers["generator"].zero_grad()
    loss.backward()
    optimizers["generator"].step()
    count = state["count"] + 1
    mean = state["mean"] + (loss.item() - state["mean"]) / count
    return {"count": count, "mean": mean}, {"loss": loss.item(), "running_mean": mean}


def _state_optimizers(modules: Mapping[str, nn.Module], settings: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"generator": torch.optim.SGD(modules["generator"].parameters(), lr=settings["lr"])}


STATEFUL = Family(name="stateful-test", step=_state_step, make_optimizers=_state_optimizers,
                  losses=("loss", "running_mean"), init_state=lambda modules, settings: {"count": 0, "mean": 0.0},
                  checkpoint_config=lambda settings: {"energy_scale": 2.0})


def _regression_parts() -> dict[str, nn.Module]:
    return {"generator": init_parameters_(ToyGenerator(2, hidden=8, depth=1), rng=torch.Generator().manual_seed(0))}


def _ones(n: int, rng: torch.Generator) -> torch.Tensor:
    return torch.ones(n, 2)


def test_step_state_is_checkpointed_and_restored(tmp_path: Path) -> None:
    settings = {"batch_size": 4, "lr": 0.2}
    straight = train(STATEFUL, _regression_parts(), _ones, iterations=8, settings=settings,
                     rng=torch.Generator().manual_seed(0))
    assert straight.losses["loss"] < 0.5 * straight.losses["running_mean"], straight.losses  # it learns
    train(STATEFUL, _regression_parts(), _ones, iterations=5, settings=settings, rng=torch.Generator().manual_seed(0),
          checkpoint_dir=tmp_path)
    resumed = train(STATEFUL, _regression_parts(), _ones, iterations=8, settings=settings, rng=torch.Generator(),
                    checkpoint_dir=tmp_path)
    assert resumed.start_iteration == 5 and resumed.losses == straight.losses
    config = load_checkpoint(tmp_path / "iter_0000008").config
    assert config["family"] == "stateful-test" and config["energy_scale"] == 2.0


def test_bad_arguments() -> None:
    parts = _regression_parts()
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        train(STATEFUL, parts, _ones, iterations=-1, settings={"batch_size": 4, "lr": 0.1}, rng=torch.Generator())
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        train(STATEFUL, parts, _ones, iterations=1, settings={"batch_size": 0, "lr": 0.1}, rng=torch.Generator())
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        train(STATEFUL, parts, _ones, iterations=1, settings={"batch_size": 1, "lr": 0.1}, rng=torch.Generator(),
              checkpoint_every=0)
