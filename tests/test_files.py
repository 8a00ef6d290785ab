"""Atomic file writes: the old file or the new one, never a half-written one, no leftovers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cogenerate.files import atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_and_overwrites(tmp_path: Path) -> None:
    assert atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    atomic_write_text(tmp_path / "a.bin", "é")
    assert (tmp_path / "a.bin").read_bytes() == "é".encode()
    atomic_write_json(tmp_path / "r.json", {"path": tmp_path, "x": [1, 2.5]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"path": str(tmp_path), "x": [1, 2.5]}
    assert (tmp_path / "r.json").read_text().endswith("}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "r.json"]
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    atomic_write_text(tmp_path / "a.txt", "old")

    def failing_replace(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(tmp_path / "a.txt", "new")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


def test_json_refuses_what_is_not_json(tmp_path: Path) -> None:
    for bad in ({"x": float("nan")}, {"x": object()}):
        with pytest.raises(ValueError, match="cannot write as JSON"):
            atomic_write_json(tmp_path / "r.json", bad)
    assert list(tmp_path.iterdir()) == []
