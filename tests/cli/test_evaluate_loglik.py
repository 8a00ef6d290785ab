"""``cogen evaluate --loglik``: the AIS log-likelihood with its BDMC gap in evaluation.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cogenerate.cli import main


def test_evaluate_loglik(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # the σ fit (50 validation images) is tested in tests/evaluation/test_likelihood.py; here only the wiring
    monkeypatch.setattr("cogenerate.evaluation.likelihood.fit_noise_std", lambda *args, **kwargs: 0.3)
    argv = ["--quiet", "evaluate", "--model", "mnist", "--out", str(tmp_path), "--images", "0", "--generate", "100",
            "--bootstrap", "10", "--loglik", "--loglik-images", "2", "--loglik-steps", "3"]
    assert main(argv) == 0
    assert "log-likelihood:" in capsys.readouterr().out
    loglik = json.loads((tmp_path / "evaluation.json").read_text())["loglik"]
    assert loglik["images"] == 2 and loglik["steps"] == 3 and loglik["chains"] == 4 and loglik["sigma"] == 0.3
    assert math.isfinite(loglik["mean"]) and loglik["low"] <= loglik["mean"] <= loglik["high"]
    assert loglik["bdmc_upper"] - loglik["bdmc_lower"] == pytest.approx(loglik["bdmc_gap"], rel=1e-6)
