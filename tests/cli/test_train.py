"""``cogen train``: checkpoints, sample grids, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cogenerate.checkpoint import list_checkpoints, load_checkpoint
from cogenerate.cli import main
from tests.cli.helpers import error_line


def _train(out: Path, iterations: int, *extra: str) -> int:
    return main(["--quiet", "train", "--data", "digits", "--size", "28", "--width", "4", "--latent-dim", "8",
                 "--iterations", str(iterations), "--checkpoint-every", "3", "--out", str(out), *extra])


def test_train_checkpoints_grids_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(run, 6) == 0
    assert [it for it, _ in list_checkpoints(run)] == [3, 6]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["iter_0000003.png", "iter_0000006.png"]
    checkpoint = load_checkpoint(run / "iter_0000006")
    assert set(checkpoint.modules) == {"generator", "discriminator"}
    config = checkpoint.config
    assert config["dataset"] == "digits" and config["image_size"] == 28 and config["channels"] == 1
    assert config["command"].startswith("cogen --quiet train --data digits")
    capsys.readouterr()

    # resume: same result as an uninterrupted run, options taken from the checkpoint
    assert main(["--quiet", "train", "--out", str(run), "--iterations", "9"]) == 0
    assert "resumed from iteration 6" in capsys.readouterr().out
    assert [it for it, _ in list_checkpoints(run)] == [3, 6, 9]
    straight = tmp_path / "straight"
    assert _train(straight, 9) == 0
    resumed = load_checkpoint(run / "iter_0000009").modules["generator"].state_dict()
    uninterrupted = load_checkpoint(straight / "iter_0000009").modules["generator"].state_dict()
    for key, value in uninterrupted.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)
    lines = (run / "losses.csv").read_text().splitlines()
    assert lines[0] == "iteration,loss_d,loss_g"
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 10))
    assert lines == (straight / "losses.csv").read_text().splitlines()
    assert load_checkpoint(run / "iter_0000009").config["commands"][-1].endswith("--iterations 9")


def test_train_resume_after_a_lost_tail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A killed run leaves losses logged past its last checkpoint; resuming drops them."""
    run = tmp_path / "run"
    assert _train(run, 6) == 0
    for suffix in (".json", ".safetensors", ".optim.pt"):
        (run / f"iter_0000006{suffix}").unlink()  # as if killed between iterations 3 and 6
    assert _train(run, 6) == 0
    assert "resumed from iteration 3" in capsys.readouterr().out
    iterations = [int(line.split(",")[0]) for line in (run / "losses.csv").read_text().splitlines()[1:]]
    assert iterations == [1, 2, 3, 4, 5, 6]


def test_train_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    line = error_line(capsys, ["train", "--out", str(run)])
    assert "--data is required" in line
    line = error_line(capsys, ["train", "--data", str(tmp_path / "missing"), "--out", str(run)])
    assert "unknown data set" in line
    assert _train(run, 3) == 0
    capsys.readouterr()
    line = error_line(capsys, ["train", "--out", str(run), "--width", "8"])
    assert "--width 8 (run: 4)" in line
    line = error_line(capsys, ["train", "--out", str(run), "--iterations", "2"])
    assert "iteration 3" in line
    assert main(["--quiet", "train", "--out", str(run), "--iterations", "3"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_train_family_flag_and_family_options_from_the_registry(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from cogenerate.training.dcgan import gan_step, make_dcgan_optimizers
    from cogenerate.training.families import FAMILIES, Family, Option, register_family

    line = error_line(capsys, ["train", "--family", "nope", "--data", "digits", "--out", str(tmp_path / "a")])
    assert "unknown model family 'nope'; known: " in line and "dcgan" in line
    # a newly registered family brings its own flags: no change to the command line needed
    register_family(Family(name="cli-test-family", step=gan_step, make_optimizers=make_dcgan_optimizers,
                           losses=("loss",), options={"depth_scale": Option(3, "how deep it goes")},
                           description="a family registered by a test"))
    try:
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        help_text = capsys.readouterr().out
        assert "cli-test-family" in help_text and "a family registered by a test" in help_text
        assert "--depth-scale" in help_text and "how deep it goes (default: 3)" in help_text
        flat = " ".join(help_text.split())
        assert "--width" in help_text and "DCGAN width: channels" in flat  # a shared option shows DCGAN's help
        assert "BEGAN: 0.0001" in flat and "(default: 0.0002)" in flat  # --lr: every family's own default
        line = error_line(capsys, ["train", "--data", "digits", "--out", str(tmp_path / "b"), "--depth-scale", "2"])
        assert "--depth-scale: not an option of the DCGAN family" in line
    finally:
        FAMILIES.pop("cli-test-family", None)
