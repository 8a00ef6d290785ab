"""Shared by the web tests: compare the page's report with `cogen complete`'s."""

from __future__ import annotations

import math
from typing import Any

# Report entries that name where and when a run happened, not what it computed.
CIRCUMSTANTIAL = {"seconds", "files", "command"}


def assert_same_numbers(page: Any, command: Any, *, tolerance: float = 1e-5, where: str = "") -> None:
    """Two JSON reports hold the same entries and numbers within ``tolerance`` (ignoring
    :data:`CIRCUMSTANTIAL` entries at the top level)."""
    if isinstance(page, dict):
        assert isinstance(command, dict), where
        keys = set(page) - (CIRCUMSTANTIAL if not where else set())
        assert keys == set(command) - (CIRCUMSTANTIAL if not where else set()), where
        for key in keys:
            assert_same_numbers(page[key], command[key], tolerance=tolerance, where=f"{where}/{key}")
    elif isinstance(page, list):
        assert isinstance(command, list) and len(page) == len(command), where
        for i, (a, b) in enumerate(zip(page, command)):
            assert_same_numbers(a, b, tolerance=tolerance, where=f"{where}[{i}]")
    elif isinstance(page, float) or isinstance(command, float):
        assert isinstance(command, (int, float)) and isinstance(page, (int, float)), where
        assert math.isclose(page, command, rel_tol=0.0, abs_tol=tolerance), f"{where}: {page} != {command}"
    else:
        assert page == command, f"{where}: {page!r} != {command!r}"


def numbers(tree: Any) -> int:
    """How many numbers a JSON tree holds (to check a comparison compared something)."""
    if isinstance(tree, dict):
        return sum(numbers(value) for value in tree.values())
    if isinstance(tree, list):
        return sum(numbers(value) for value in tree)
    return int(isinstance(tree, (int, float)) and not isinstance(tree, bool))
