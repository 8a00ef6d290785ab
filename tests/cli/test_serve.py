"""``cogen serve`` (the page itself: tests/cli/web)."""

from __future__ import annotations

import sys

import pytest

from cogenerate.cli import main
from tests.cli.helpers import error_line


def test_serve_help_says_where_it_listens(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_status:
        main(["serve", "--help"])
    assert exit_status.value.code == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:7860" in out and "--concurrency" in out and "cogenerate[web]" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["serve", "--concurrency", "0"], "cogen: error: --concurrency must be at least 1, got 0"),
    (["serve", "--queue-size", "0"], "cogen: error: --queue-size must be at least 1, got 0"),
    (["serve", "--port", "70000"], "cogen: error: --port must lie in 0..65535, got 70000"),
])
def test_serve_option_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert error_line(capsys, argv) == message


def test_serve_without_gradio_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "cogenerate.cli.web.app", None)  # import fails as if Gradio were missing
    line = error_line(capsys, ["serve"])
    assert line.startswith("cogen: error: cogen serve needs Gradio (") and line.endswith(
        "install it with: pip install 'cogenerate[web]'")
