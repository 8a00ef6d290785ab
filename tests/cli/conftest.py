"""The commands write only where told (their --out), never into the working directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_stray_output():
    before = set(Path.cwd().iterdir())
    yield
    created = set(Path.cwd().iterdir()) - before
    for path in created:  # clean up before failing, so one failure does not cascade
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert not created, f"stray files written to the working directory: {sorted(map(str, created))}"
