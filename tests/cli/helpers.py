"""Shared by the CLI tests: run ``cogen`` and expect a one-line error; third-party generators
for ``--model tests.cli.helpers:FACTORY``."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from cogenerate.cli import main
from cogenerate.models.base import GenerativeModel


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``cogen argv``; it must fail with status 2 and exactly one stderr line."""
    assert main(["--quiet", *argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cogen: error: ")
    assert "Traceback" not in err
    return lines[0]


class TinyConvGenerator(nn.Module):
    """A third-party-style generator: z -> (N, channels, side, side) in [-1, 1], with no
    ``latent_dim`` attribute (the command line needs ``--latent-dim``) and, as many GANs, a
    batch norm that cannot run on one sample in training mode."""

    def __init__(self, latent: int, channels: int, side: int):
        super().__init__()
        self.shape = (channels, side, side)
        rng = torch.Generator().manual_seed(0)
        self.norm = nn.BatchNorm1d(latent)
        self.weight = nn.Parameter(torch.randn(latent, channels * side * side, generator=rng) / latent**0.5)

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(self.norm(z) @ self.weight).reshape(z.shape[0], *self.shape)


def rgb_generator() -> nn.Module:
    """An RGB 32×32 generator with a latent size of 8 that it does not declare."""
    return TinyConvGenerator(8, 3, 32)


def grey_model() -> GenerativeModel:
    """A GenerativeModel of grey 16×16 images with a latent size of 5."""
    return GenerativeModel.from_generator(TinyConvGenerator(5, 1, 16), latent_dim=5, family="tiny")


def not_a_generator() -> str:
    return "a string"
