"""Shared checks of the encoder families' tests: exact resume and loading the trained model."""

from __future__ import annotations

from pathlib import Path

import torch

from cogenerate.models.loading import load_model
from cogenerate.training.families import get_family, resolve_settings
from cogenerate.training.loop import train


def tiny(family: str, seed: int = 0, **given):
    """A family at width 4, latent 4, batch 8 on 28×28: ``(settings, modules, optimizers, rng)``."""
    settings = resolve_settings(family, {"width": 4, "latent_dim": 4, "batch_size": 8, **given})
    rng = torch.Generator().manual_seed(seed)
    modules = get_family(family).build(settings, (1, 28, 28), rng)
    return settings, modules, get_family(family).make_optimizers(modules, settings), rng


def ramp(n: int = 8) -> torch.Tensor:
    """A fixed batch ``(n, 1, 28, 28)``: a horizontal ramp from −1 to 1."""
    return torch.linspace(-1, 1, 28).expand(n, 1, 28, 28).clone()


def check_resume_and_load(family: str, tmp_path: Path, **given):
    """2 + 2 resumed iterations equal 4 uninterrupted ones; the run loads as a GenerativeModel."""

    def data(n: int, rng: torch.Generator) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=rng) * 2 - 1

    settings, whole, _, rng = tiny(family, **given)
    train(family, whole, data, iterations=4, settings=settings, rng=rng)
    settings, part, _, rng = tiny(family, **given)
    train(family, part, data, iterations=2, settings=settings, rng=rng, checkpoint_dir=tmp_path)
    settings, resumed, _, rng = tiny(family, seed=9, **given)
    result = train(family, resumed, data, iterations=4, settings=settings, rng=rng, checkpoint_dir=tmp_path)
    assert result.start_iteration == 2
    for role in whole:
        for a, b in zip(whole[role].parameters(), resumed[role].parameters()):
            assert torch.equal(a, b), role
    model = load_model(tmp_path)
    assert model.family == family and model.x_shape == (1, 28, 28) and model.latent_dim == 4
    return model
