"""``cogen models``."""

from __future__ import annotations

import pytest

from cogenerate.cli import main
from cogenerate.models.pretrained import PRETRAINED, pretrained_config


def test_models_lists_the_shipped_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in PRETRAINED:
        assert name in out
    assert "1×28×28" in out and "MB" in out
    # every shipped image model carries the noise σ complete() defaults to, and the list shows it
    assert "noise σ" in out
    assert all(pretrained_config(name)["noise_std"]["value"] > 0 for name in PRETRAINED)
