"""``--model SPEC`` for the commands: :func:`cogenerate.models.loading.load_model` does the
loading; this module adds what only a command line needs: a label for reports (the checkpoint
a run folder resolved to) and the sample shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cogenerate.models.loading import load_model

__all__ = ["load_model", "model_label", "sample_shape"]


def model_label(spec: str) -> str:
    """How reports name the model: the spec, or for a run folder its latest checkpoint."""
    from cogenerate.checkpoint import latest_checkpoint

    path = Path(spec).expanduser()
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is not None:
            return str(latest)
    return spec


def sample_shape(model: Any) -> tuple[int, ...]:
    """The shape of one sample: ``model.x_shape``, or that of ``G(0)`` when it is not recorded."""
    if model.x_shape is not None:
        return tuple(model.x_shape)
    generator = model.generator
    if not isinstance(generator, nn.Module):
        with torch.no_grad():
            return tuple(generator(torch.zeros(1, model.latent_dim)).shape[1:])
    parameter = next(generator.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = generator.training
    generator.eval()  # batch norm on a batch of one needs its running statistics
    try:
        with torch.no_grad():
            return tuple(generator(torch.zeros(1, model.latent_dim, device=device)).shape[1:])
    finally:
        generator.train(was_training)
