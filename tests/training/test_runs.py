"""Run folders: train_family, and plan_run / train_run (what `cogen train` calls)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cogenerate.checkpoint import list_checkpoints, load_checkpoint
from cogenerate.models.loading import load_model
from cogenerate.training.runs import LOSSES_FILE, plan_run, train_family, train_run

DATA = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
TINY = {"width": 4, "latent_dim": 4, "batch_size": 4}

# The weights of
#   cogen --threads 1 train --data digits --out RUN --iterations 3 --width 8 --checkpoint-every 2
# at iterations 2 and 3. The `cogen train` of commit 1e8a829, before the training loop was shared
# by all families, gave weights with sha256 b7dd2258… (2) and cabdffc2… (3); the shared loop
# reproduced them bit for bit on that machine. Another CPU rounds differently, so the tensors
# themselves are kept (recorded from the shared loop on an AMD EPYC) and compared to 1e-4
# relative: ``python -m tests.training.test_runs --record``.
GOLDEN_COGEN_TRAIN = Path(__file__).parents[1] / "golden" / "cogen_train.safetensors"
GIVEN = {"data": "digits", "iterations": 3, "width": 8, "checkpoint_every": 2}


def _train_as_cogen(run: Path) -> dict[str, torch.Tensor]:
    plan = plan_run(run, GIVEN, command="cogen train ...")
    assert plan.family == "dcgan" and plan.start == 0 and plan.settings["size"] == 28
    assert train_run(plan).iteration == 3
    return {f"{iteration}.{key}": value for iteration in (2, 3)
            for key, value in load_file(run / f"iter_{iteration:07d}.safetensors").items()}


def test_cogen_train_weights_are_those_recorded_before_the_restructure(tmp_path: Path) -> None:
    weights, recorded = _train_as_cogen(tmp_path / "run"), load_file(GOLDEN_COGEN_TRAIN)
    assert sorted(weights) == sorted(recorded)
    for key, value in weights.items():
        torch.testing.assert_close(value, recorded[key], rtol=1e-4, atol=1e-5, msg=key)
    config = load_checkpoint(tmp_path / "run" / "iter_0000003").config
    assert config["family"] == "dcgan" and config["dataset"] == "digits" and config["command"] == "cogen train ..."
    assert config["cogen_train"]["width"] == 8 and config["cogen_train"]["channels"] == 1
    assert config["x_shape"] == [1, 28, 28] and config["train_images"] > 1000


def test_train_family_writes_a_run_folder_and_resumes(tmp_path: Path) -> None:
    seen: list[int] = []
    result = train_family("dcgan", DATA, out=tmp_path, iterations=4, seed=1, settings=TINY, checkpoint_every=2,
                          keep_every=0, config={"dataset": "noise"}, on_step=lambda i, losses: seen.append(i))
    assert seen == [1, 2, 3, 4] and result.checkpoint == tmp_path / "iter_0000004"
    assert [it for it, _ in list_checkpoints(tmp_path)] == [4]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["iter_0000002.png", "iter_0000004.png"]
    lines = (tmp_path / LOSSES_FILE).read_text().splitlines()
    assert lines[0] == "iteration,loss_d,loss_g" and [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4"]

    again = train_family("dcgan", DATA, out=tmp_path, iterations=6, seed=1, settings=TINY, checkpoint_every=2,
                         keep_every=0)
    assert again.start_iteration == 4
    straight = train_family("dcgan", DATA, out=tmp_path / "straight", iterations=6, seed=1, settings=TINY,
                            checkpoint_every=2)
    assert again.losses == straight.losses
    assert (tmp_path / LOSSES_FILE).read_text() == (tmp_path / "straight" / LOSSES_FILE).read_text()
    model = load_model(tmp_path)  # the run folder's latest checkpoint
    assert model.family == "dcgan" and model.x_shape == (1, 28, 28) and model.config["iteration"] == 6
    with pytest.raises(ValueError, match="already holds a checkpoint at iteration 6 > iterations 5"):
        train_family("dcgan", DATA, out=tmp_path, iterations=5, settings=TINY)


def test_plan_run_merges_with_the_run_it_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="--data is required to start a new run"):
        plan_run(run, {"data": None})
    with pytest.raises(ValueError, match="--hidden: not an option of the DCGAN family"):
        plan_run(run, {"data": "digits", "hidden": 3})
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        plan_run(run, {"data": "digits", "family": "nope"})
    with pytest.raises(ValueError, match="--iterations must be at least 1, got 0"):
        plan_run(run, {"data": "digits", "iterations": 0})
    train_family("dcgan", DATA, out=run, iterations=2, settings=TINY, checkpoint_every=2,
                 config={"cogen_train": {"data": "digits", "size": 28, "channels": 1, **TINY, "lr": 2e-4, "seed": 0,
                                         "checkpoint_every": 2, "keep_every": None, "iterations": 2}, "commands": ["a"]})

    plan = plan_run(run, {"iterations": 5, "width": 4, "family": "dcgan"}, command="b")
    assert plan.start == 2 and plan.iterations == 5 and plan.commands == ["a", "b"]
    assert plan.settings["family"] == "dcgan" and plan.settings["width"] == 4 and plan.settings["lr"] == 2e-4
    with pytest.raises(ValueError) as error:
        plan_run(run, {"width": 8, "seed": 0})
    assert "holds a run with other settings: --width 8 (run: 4);" in str(error.value)
    with pytest.raises(ValueError, match="a checkpoint at iteration 2 > --iterations 1"):
        plan_run(run, {"iterations": 1})
    with pytest.raises(ValueError, match="--lr must be positive"):
        plan_run(run, {"lr": -1.0})

    other = tmp_path / "other"
    train_family("dcgan", DATA, out=other, iterations=1, settings=TINY)  # not a `cogen train` run
    with pytest.raises(ValueError, match="not written by `cogen train`"):
        plan_run(other, {})
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        plan_run(tmp_path / "file", {"data": "digits"})
    assert json.loads((run / "iter_0000002.json").read_text())["family"] == "dcgan"


if __name__ == "__main__" and "--record" in sys.argv:
    with tempfile.TemporaryDirectory() as folder:
        save_file({k: v.contiguous() for k, v in _train_as_cogen(Path(folder) / "run").items()}, str(GOLDEN_COGEN_TRAIN))
