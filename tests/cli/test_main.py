"""``cogen`` itself: help, common options, the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cogenerate.cli import build_parser, main

SUBCOMMANDS = ("demo", "reproduce", "train", "complete", "models", "evaluate")


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
    done = subprocess.run([*command, "models"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "fashion-mnist" in done.stdout


def test_console_script_finds_a_factory_in_the_current_folder(tmp_path: Path) -> None:
    """`cogen complete --model mygan:make` imports ./mygan.py, as a user would keep it."""
    (tmp_path / "mygan.py").write_text(
        "import torch\n\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 8, 8)))\n"
    )
    cogen = Path(sys.executable).parent / "cogen"
    command = [str(cogen)] if cogen.exists() else [sys.executable, "-m", "cogenerate.cli"]
    argv = ["--quiet", "complete", "--model", "mygan:make", "--latent-dim", "4", "--dataset", "digits", "--index", "0",
            "--mask", "top-half", "--method", "gd", "--steps", "2", "--chains", "2", "--out", "out"]
    done = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "completion.json").is_file()
