"""The ``cogen`` command, called in-process through ``cogenerate.cli.main``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cogenerate.cli import build_parser, main
from cogenerate.models.pretrained import PRETRAINED
from cogenerate.checkpoint import list_checkpoints, load_checkpoint

SUBCOMMANDS = ("demo", "reproduce", "train", "complete", "models")
REPORT_KEYS = {
    "model", "input", "image_shape", "mask", "method", "chains", "grad_evals", "log_evidence", "ess",
    "weights", "metrics", "diagnostics", "files", "seconds", "noise_std", "seed",
}
METRIC_KEYS = {"hidden_mse", "mse", "psnr", "ssim", "ms_ssim"}



def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``cogen argv``; it must fail with status 2 and exactly one stderr line."""
    assert main(["--quiet", *argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cogen: error: ")
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS])
def test_help_explains_with_examples(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"] if command is None else [command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out
    assert "usage: cogen" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_common_options_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--seed", "3", "models"]).seed == 3
    assert parser.parse_args(["models", "--seed", "4"]).seed == 4
    assert parser.parse_args(["--seed", "3", "models", "--seed", "4"]).seed == 4
    assert parser.parse_args(["models"]).device == "cpu"


def test_console_script_entry_point() -> None:
    cogen = Path(sys.executable).parent / "cogen"
    command = [str(cogen)] if cogen.exists() else [sys.executable, "-m", "cogenerate.cli"]
    done = subprocess.run([*command, "models"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "fashion-mnist" in done.stdout


# ---------------------------------------------------------------------------- models


def test_models_lists_the_shipped_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in PRETRAINED:
        assert name in out
    assert "1×28×28" in out and "MB" in out


# ---------------------------------------------------------------------------- complete


@pytest.mark.parametrize(
    ("method", "extra", "mask"),
    [("gd", ["--steps", "5"], "centre"), ("smc", ["--budget", "30"], "mb10"), ("smc", ["--budget", "30"], "sr4"),
     ("smc-polish", ["--budget", "30", "--noise-std", "auto"], "centre")],
)
def test_complete_writes_figure_and_report(method: str, extra: list[str], mask: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quiet", "complete", "--model", "fashion-mnist", "--index", "3", "--mask", mask,
            "--method", method, "--chains", "4", *extra, "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "completion.png" in out
    report = json.loads((tmp_path / "completion.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["method"] == method and report["chains"] == 4 and report["image_shape"] == [1, 28, 28]
    assert report["input"] == {"dataset": "fashion-mnist", "split": "test", "index": 3}
    assert report["grad_evals"] >= 1
    if method.startswith("smc"):
        assert report["grad_evals"] <= 30
        assert isinstance(report["log_evidence"], float)
    fitted = report["noise_std"] == "auto"
    assert fitted == (method != "gd")  # the default: fitted where the method can
    assert fitted or report["fitted_noise_std"] == pytest.approx(report["noise_std"])
    if fitted:  # far above the floor, 1 % of the image's scale
        assert 0.05 < report["fitted_noise_std"] < 1
    assert len(report["weights"]) == 4 and abs(sum(report["weights"]) - 1) < 1e-4
    assert 1 <= report["ess"] <= 4 + 1e-4
    for key in ("posterior_mean", "estimate", "best_sample"):
        assert METRIC_KEYS <= set(report["metrics"][key])
    assert 0 <= report["metrics"]["truth_within_2_predictive_std"] <= 1
    assert (report["metrics"]["posterior_mean"]["hidden_mse"] is None) == (mask == "sr4")
    assert report["metrics"]["best_sample"]["mse"] <= report["metrics"]["estimate"]["mse"] + 1e-6 or method != "gd"
    for name in ("figure", "mean", "samples"):
        assert Path(report["files"][name]).is_file()
    with Image.open(tmp_path / "mean.png") as im:
        assert im.size == (28, 28)


def test_complete_resizes_an_image_file_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    mask = np.full((40, 50), 255, np.uint8)
    mask[10:30, 15:35] = 0
    Image.fromarray(mask).save(tmp_path / "hole.png")
    argv = ["complete", "--model", "mnist", "--image", str(tmp_path / "photo.png"),
            "--mask", f"file:{tmp_path / 'hole.png'}", "--method", "gd", "--steps", "3", "--chains", "2",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "resized it from 50×40 to 28×28" in err and "converted it to grey" in err
    report = json.loads((tmp_path / "out" / "completion.json").read_text())
    assert report["input"]["original_size"] == [50, 40]
    assert report["hidden_pixels"] > 0


def test_complete_on_a_training_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["--quiet", "train", "--data", "digits", "--size", "28", "--width", "4", "--latent-dim", "4",
                 "--iterations", "2", "--out", str(run)]) == 0
    argv = ["--quiet", "complete", "--model", str(run), "--index", "0", "--mask", "top-half", "--method", "gd",
            "--steps", "2", "--chains", "2", "--out", str(tmp_path / "out"), "--discriminator-weight", "0.1"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "completion.json").read_text())
    assert report["input"]["dataset"] == "digits"  # the run's own data set
    assert report["model"].endswith("iter_0000002")


def test_complete_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["complete", "--method", "gd", "--steps", "2", "--chains", "2", "--out", str(tmp_path / "out")]
    line = _error_line(capsys, [*base, "--model", "cifar-gan", "--index", "0", "--mask", "centre"])
    assert "unknown model 'cifar-gan'" in line and "fashion-mnist" in line
    line = _error_line(capsys, [*base, "--model", "mnist", "--image", str(tmp_path / "nope.png"), "--mask", "box"])
    assert "does not exist" in line
    line = _error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", "blob"])
    assert "unknown observation spec 'blob'" in line and "centre" in line
    line = _error_line(capsys, [*base, "--model", "mnist", "--index", "100000", "--mask", "centre"])
    assert "out of range" in line
    line = _error_line(capsys, [*base, "--model", "mnist", "--mask", "centre"])
    assert "--image FILE" in line
    line = _error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", "sr3"])
    assert "not divisible" in line
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small-mask.png")
    line = _error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", f"file:{tmp_path / 'small-mask.png'}"])
    assert "10×10" in line and "28×28" in line
    (tmp_path / "broken.png").write_bytes(b"not an image")
    line = _error_line(capsys, [*base, "--model", "mnist", "--image", str(tmp_path / "broken.png"), "--mask", "box"])
    assert "cannot read image" in line
    line = _error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", "centre", "--method", "magic"])
    assert "unknown method 'magic'" in line
    line = _error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", "centre", "--noise-std", "auto"])
    assert "noise_std='auto' needs a method that fits the noise scale (smc, smc-polish)" in line
    if not torch.cuda.is_available():
        line = _error_line(capsys, ["--device", "cuda", *base, "--model", "mnist", "--index", "0", "--mask", "centre"])
        assert "CUDA is not available" in line
    assert not (tmp_path / "out" / "completion.json").exists()


def test_debug_reraises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        main(["--debug", "--quiet", "complete", "--model", "nope", "--index", "0", "--mask", "centre"])


# ---------------------------------------------------------------------------- train


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
    line = _error_line(capsys, ["train", "--out", str(run)])
    assert "--data is required" in line
    line = _error_line(capsys, ["train", "--data", str(tmp_path / "missing"), "--out", str(run)])
    assert "unknown data set" in line
    assert _train(run, 3) == 0
    capsys.readouterr()
    line = _error_line(capsys, ["train", "--out", str(run), "--width", "8"])
    assert "--width 8 (run: 4)" in line
    line = _error_line(capsys, ["train", "--out", str(run), "--iterations", "2"])
    assert "iteration 3" in line
    assert main(["--quiet", "train", "--out", str(run), "--iterations", "3"]) == 0
    assert "nothing to do" in capsys.readouterr().out


# ---------------------------------------------------------------------------- reproduce


def test_reproduce_toy_with_a_tiny_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole `reproduce toy` path (training, every method, figures, table) on a tiny config."""
    argv = ["--quiet", "reproduce", "toy", "--quick", "--out", str(tmp_path), "--set", "iterations=[50]",
            "--set", "chains=8", "--set", 'gd={"steps": 10, "options": {"lr": 0.01}}',
            "--set", 'ais={"steps": 10, "leapfrog": 3}', "--set", 'smc={"leapfrog": 3, "max_grad_evals": 20}']
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| iteration | method |" in out and "| 50 | smc |" in out
    for name in ("fig1_landscape.png", "fig2_reconstructions.png", "results.md", "results.json"):
        assert (tmp_path / name).is_file()
        assert str(tmp_path / name) in out


def test_reproduce_rejects_unknown_config_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error_line(capsys, ["reproduce", "toy", "--quick", "--set", "chainz=3", "--out", str(tmp_path)])
    assert "no field 'chainz'" in line


def test_reproduce_images_is_wired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import cogenerate.experiments.images  # noqa: F401
    except ModuleNotFoundError:
        line = _error_line(capsys, ["reproduce", "images", "--quick", "--out", str(tmp_path)])
        assert "cogenerate.experiments.images" in line
    else:
        line = _error_line(capsys, ["reproduce", "images", "--quick", "--set", "no_such_field=1",
                                    "--out", str(tmp_path)])
        assert "no field 'no_such_field'" in line


@pytest.fixture(autouse=True)
def _no_stray_output(tmp_path: Path):
    """The commands write only where told (their --out), never into the working directory."""
    before = set(Path.cwd().iterdir())
    yield
    created = set(Path.cwd().iterdir()) - before
    for path in created:  # clean up before failing, so one failure does not cascade
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert not created, f"stray files written to the working directory: {sorted(map(str, created))}"
