"""``--model SPEC`` to a :class:`~cogenerate.models.base.GenerativeModel`, for the commands.

The library's :func:`cogenerate.models.loading.load_model` does the loading; this module adds
what only a command line needs: the current folder on the import path (so that
``--model mymodule:make_generator`` finds ``./mymodule.py`` when run as the ``cogen`` script), a
label for reports (the checkpoint a run folder resolved to), and the sample shape.

Until ``cogenerate.models.loading`` exists in this installation, :func:`_interim_load_model`
stands in for it with the same signature.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_model", "model_label", "sample_shape"]


def load_model(spec: str, *, device: torch.device, latent_dim: int | None = None) -> Any:
    """A shipped name, checkpoint, run folder or ``module.path:factory`` as a GenerativeModel."""
    if _is_factory(spec) and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # `cogen` as a script does not see the current folder
    try:
        from cogenerate.models.loading import load_model as library_load_model
    except ModuleNotFoundError as error:
        if error.name != "cogenerate.models.loading":
            raise
        library_load_model = _interim_load_model
    model = library_load_model(spec, device=device, latent_dim=latent_dim)
    return model


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
    parameter = next(generator.parameters(), None) if isinstance(generator, nn.Module) else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    with torch.no_grad():
        x = generator(torch.zeros(1, model.latent_dim, device=device))
    return tuple(x.shape[1:])


def _is_factory(spec: str) -> bool:
    module, sep, name = spec.partition(":")
    return bool(sep and module and name) and not Path(spec).expanduser().exists() and "/" not in module


def _interim_load_model(spec: Any, *, device: torch.device | str | None = None, latent_dim: int | None = None) -> Any:
    """Stand-in for ``cogenerate.models.loading.load_model`` (same signature and result)."""
    from cogenerate.checkpoint import checkpoint_files, latest_checkpoint, load_checkpoint
    from cogenerate.models.base import GenerativeModel
    from cogenerate.models.pretrained import PRETRAINED, load_pretrained

    def from_checkpoint(checkpoint: Any) -> GenerativeModel:
        generator = checkpoint.modules.get("generator")
        if generator is None:
            raise ValueError(f"--model {spec}: no module named 'generator' (has {sorted(checkpoint.modules)})")
        config = checkpoint.config
        return GenerativeModel(family=config.get("family", "dcgan"), parts=dict(checkpoint.modules),
                               latent_dim=int(latent_dim or generator.latent_dim), config=config,
                               command=config.get("command"))

    if isinstance(spec, nn.Module):
        return GenerativeModel.from_generator(spec.to(device or "cpu"), latent_dim=latent_dim)
    if spec in PRETRAINED:
        return from_checkpoint(load_pretrained(spec, device=device))
    path = Path(spec).expanduser()
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise ValueError(f"--model {spec}: the folder holds no checkpoint (iter_*.json + .safetensors)")
        return from_checkpoint(load_checkpoint(latest, device=device))
    if path.is_file() or checkpoint_files(path)["config"].is_file():
        return from_checkpoint(load_checkpoint(path, device=device))
    if _is_factory(spec):
        module_name, _, factory_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(f"--model {spec}: cannot import {module_name!r} ({error})") from None
        factory = getattr(module, factory_name, None)
        if not callable(factory):
            raise ValueError(f"--model {spec}: {module_name!r} has no function {factory_name!r}")
        made = factory()
        if isinstance(made, GenerativeModel):
            return made.to(device or "cpu")
        if not isinstance(made, nn.Module):
            raise ValueError(f"--model {spec}: {factory_name}() returned a {type(made).__name__}, "
                             f"not an nn.Module or a GenerativeModel")
        if latent_dim is None and not isinstance(getattr(made, "latent_dim", None), int):
            raise ValueError(f"--model {spec}: the generator has no integer `latent_dim` attribute; "
                             f"give it with --latent-dim N")
        return GenerativeModel.from_generator(made.to(device or "cpu").eval(), latent_dim=latent_dim)
    raise ValueError(
        f"unknown model {spec!r}: not a shipped model ({', '.join(PRETRAINED)}; see `cogen models`), "
        f"an existing checkpoint file or run folder, nor module.path:factory"
    )
