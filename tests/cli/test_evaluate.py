"""``cogen evaluate``: the skeleton that writes the model's description and empty metric slots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cogenerate.cli import main
from cogenerate.cli.evaluate import METRIC_SLOTS
from tests.cli.helpers import error_line


def test_evaluate_describes_a_shipped_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quiet", "evaluate", "--model", "mnist", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "evaluation.json" in out and "dcgan" in out
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["family"] == "dcgan" and report["latent_dim"] == 100 and report["x_shape"] == [1, 28, 28]
    assert set(report["parts"]) == {"generator", "discriminator"}
    assert report["parts"]["generator"]["parameters"] > 0
    assert report["trained_by"].startswith("cogen --threads 1 train --data mnist")
    assert report["metrics"] == {name: None for name in METRIC_SLOTS}
    assert report["command"].startswith("cogen --quiet evaluate --model mnist")


def test_evaluate_a_factory_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quiet", "evaluate", "--model", "tests.cli.helpers:rgb_generator", "--latent-dim", "8",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["family"] == "custom" and report["x_shape"] == [3, 32, 32] and report["latent_dim"] == 8
    assert report["trained_by"] is None
    line = error_line(capsys, ["evaluate", "--model", "nope-model", "--out", str(tmp_path / "x")])
    assert "unknown model 'nope-model'" in line
