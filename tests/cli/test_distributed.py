"""``cogen`` under torchrun: only the commands that share their work out run on several processes."""

from __future__ import annotations

import pytest

from cogenerate.cli.distributed import DISTRIBUTED_COMMANDS, launched_processes
from tests.cli.helpers import error_line


def test_other_commands_refuse_to_run_under_torchrun(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_processes() == 2
    line = error_line(capsys, ["models"])
    assert "`cogen models` runs on one process" in line and "start it without torchrun" in line
    assert set(DISTRIBUTED_COMMANDS) == {"train", "complete", "reproduce"}


def test_without_torchrun_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launched_processes() == 1
