"""``cogen evaluate``: FD / precision / recall and the co-generation row, for a model or a .npy of samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cogenerate.cli import main
from cogenerate.evaluation.splits import load_split
from tests.cli.helpers import error_line

SMALL = ["--generate", "300", "--bootstrap", "10", "--chains", "2", "--budget", "12", "--method", "smc"]


def test_evaluate_a_shipped_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quiet", "evaluate", "--model", "mnist", "--out", str(tmp_path), "--images", "2", *SMALL]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "FD " in out and "precision" in out and "| sr4 |" in out and "evaluation.json" in out
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert {"fd", "precision", "recall", "cogeneration"} <= set(report)
    assert report["family"] == "dcgan" and report["dataset"] == "mnist"
    assert report["fd"]["samples"] == 300 and report["fd"]["reference_split"] == "mnist test[:250]"
    assert report["fd"]["low"] <= report["fd"]["value"] <= report["fd"]["high"]  # bias-corrected interval
    assert 0 <= report["precision"]["value"] <= 1 and report["recall"]["k"] == 3
    rows = report["cogeneration"]["rows"]
    assert [row["mask"] for row in rows] == ["box", "top-half", "sr4"]
    assert all(row["images"] == 2 and row["grad_evals"]["mean"] <= 12 for row in rows)
    assert set(rows[0]) >= {"hidden_mse", "ssim", "within_2_std", "crps", "log_evidence", "grad_evals"}
    assert report["command"].startswith("cogen --quiet evaluate --model mnist")


def test_evaluate_a_file_of_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = tmp_path / "samples.npy"
    np.save(samples, load_split("mnist", "validation").numpy())
    assert main(["--quiet", "evaluate", "--samples", str(samples), "--data", "mnist", "--out", str(tmp_path),
                 "--bootstrap", "10"]) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["cogeneration"] is None and report["samples_file"] == str(samples)
    assert report["fd"]["samples"] == 250 and report["fd"]["value"] < 80  # real held-out digits (measured 50)
    assert report["precision"]["value"] > 0.5 and "FD " in capsys.readouterr().out


def test_evaluate_says_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x")
    assert "--samples needs --data" in error_line(capsys, ["evaluate", "--samples", "s.npy", "--out", out])
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 3, 28, 28), dtype=np.float32))
    assert "shape (N, 1, 28, 28)" in error_line(capsys, ["evaluate", "--samples", str(bad), "--data", "mnist",
                                                         "--out", out])
    assert "no such file" in error_line(capsys, ["evaluate", "--samples", str(tmp_path / "none.npy"), "--data",
                                                 "mnist", "--out", out])
    line = error_line(capsys, ["evaluate", "--model", "tests.cli.helpers:rgb_generator", "--latent-dim", "8",
                               "--out", out])
    assert "give --data" in line
    assert "unknown model 'nope-model'" in error_line(capsys, ["evaluate", "--model", "nope-model", "--out", out])
    assert "--generate must be at least 8" in error_line(capsys, ["evaluate", "--model", "mnist", "--generate", "2",
                                                                  "--out", out])
    assert not Path(out).exists()
