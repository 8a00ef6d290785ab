"""``cogen reproduce``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cogenerate.cli import main
from tests.cli.helpers import error_line


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
    line = error_line(capsys, ["reproduce", "toy", "--quick", "--set", "chainz=3", "--out", str(tmp_path)])
    assert "no field 'chainz'" in line


def test_reproduce_images_is_wired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import cogenerate.experiments.images  # noqa: F401
    except ModuleNotFoundError:
        line = error_line(capsys, ["reproduce", "images", "--quick", "--out", str(tmp_path)])
        assert "cogenerate.experiments.images" in line
    else:
        line = error_line(capsys, ["reproduce", "images", "--quick", "--set", "no_such_field=1",
                                    "--out", str(tmp_path)])
        assert "no field 'no_such_field'" in line
