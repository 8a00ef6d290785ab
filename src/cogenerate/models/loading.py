"""One way in for every kind of model: :func:`load_model` gives a :class:`GenerativeModel`.

``spec`` may be

- a :class:`GenerativeModel`: returned as is;
- an ``nn.Module`` or any callable ``(N, latent_dim) -> (N, *x_shape)``: wrapped with
  :meth:`GenerativeModel.from_generator` (family ``"custom"``);
- a shipped model name (:data:`cogenerate.models.pretrained.PRETRAINED`, e.g. ``"mnist"``);
- a checkpoint: its prefix, ``.json`` or ``.safetensors`` file (:mod:`cogenerate.checkpoint`);
- a ``cogen train`` run folder: its latest checkpoint;
- ``"module.path:factory"``: the module is imported (from the current folder too) and
  ``factory()`` called without arguments; it returns an ``nn.Module`` / callable or a
  :class:`GenerativeModel`.

A checkpoint's modules are the model's parts under their role names (``generator``,
``discriminator``, ``energy``, ``encoder``, ``generator_1``, ...; other modules are not
parts). Its JSON gives the rest: ``"family"`` (checkpoints from before the family registry:
``"dcgan"`` for a DCGAN generator, ``"toy-gan"`` for the toy MLP), ``"prior"``
(:func:`~cogenerate.models.base.prior_from_config`), ``"energy_scale"``, ``"conditional"``,
``"command"`` and ``"x_shape"`` (otherwise read off a forward pass of a zero latent).
:func:`save_model` writes these keys, so a saved model loads back the same.

Every error is a one-line ``ValueError`` (:class:`~cogenerate.checkpoint.CheckpointError` for
a checkpoint that cannot be read).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cogenerate.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_files,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from cogenerate.models.base import ROLES, GenerativeModel, prior_config, prior_from_config
from cogenerate.models.pretrained import PRETRAINED, SHORT_NAMES, is_pretrained, load_pretrained

__all__ = ["load_model", "model_from_checkpoint", "save_model", "infer_family"]

_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_EXTRA_GENERATOR = re.compile(r"^generator_\d+$")
_RESERVED = ("format", "format_version", "weights_sha256", "modules", "iteration")

# generator architecture -> family, for checkpoints written before "family" was recorded
_FAMILY_OF_ARCHITECTURE = {"dcgan-generator": "dcgan", "toy-generator": "toy-gan"}

ModelSpec = GenerativeModel | nn.Module | Callable[..., Any] | str | os.PathLike


def load_model(spec: ModelSpec, *, device: torch.device | str | None = None,
               latent_dim: int | None = None) -> GenerativeModel:
    """The model ``spec`` names (see the module docstring for the kinds of ``spec``).

    Args:
        spec: a model, module, callable, shipped name, checkpoint, run folder or
            ``"module.path:factory"``.
        device: where to put what is loaded (checkpoints, shipped models, a factory's model);
            a model or module passed in is not moved. Default: CPU for checkpoints.
        latent_dim: the latent size of a bare generator that has no ``latent_dim`` attribute.

    Returns:
        A :class:`GenerativeModel`; loaded modules are in eval mode.

    Raises:
        ValueError: one line saying what is wrong (CheckpointError for unreadable checkpoints).
    """
    if isinstance(spec, GenerativeModel):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return _load_named(os.fspath(spec), device=device, latent_dim=latent_dim)
    if callable(spec):
        return _wrap_generator(spec, latent_dim=latent_dim, label=type(spec).__name__)
    raise ValueError(f"cannot make a model of a {type(spec).__name__}; pass a GenerativeModel, an nn.Module, "
                     f"a shipped model name, a checkpoint, a run folder or module.path:factory")


def model_from_checkpoint(checkpoint: Checkpoint) -> GenerativeModel:
    """A loaded checkpoint as a :class:`GenerativeModel` (see the module docstring).

    Raises:
        CheckpointError: no ``generator`` module, no latent size, or a bad prior / scale.
    """
    config = checkpoint.config
    file = checkpoint_files(checkpoint.path)["config"]
    parts = {name: module for name, module in checkpoint.modules.items() if name in ROLES or _EXTRA_GENERATOR.match(name)}
    generator = parts.get("generator")
    if generator is None:
        raise CheckpointError(f"{file}: no module named 'generator' (has {sorted(checkpoint.modules)})")
    latent_dim = getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int):
        latent_dim = config.get("latent_dim")
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool):
        raise CheckpointError(f"{file}: the generator has no integer latent_dim, and the config records none")
    conditional = bool(config.get("conditional", False))
    try:
        return GenerativeModel(
            family=str(config.get("family") or infer_family(config)),
            parts=parts,
            latent_dim=latent_dim,
            x_shape=_x_shape(generator, latent_dim, config, conditional=conditional),
            prior=prior_from_config(config.get("prior"), latent_dim),
            energy_scale=float(config.get("energy_scale", 1.0)),
            conditional=conditional,
            config=config,
            command=config.get("command"),
        )
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{file}: {' '.join(str(error).split())}") from None


def infer_family(config: Mapping[str, Any]) -> str:
    """The family of a checkpoint config: its ``"family"``, else guessed from the generator's
    architecture (``"dcgan"``, ``"toy-gan"``), else ``"custom"``."""
    if config.get("family"):
        return str(config["family"])
    modules = config.get("modules")
    generator = modules.get("generator") if isinstance(modules, Mapping) else None
    architecture = generator.get("architecture") if isinstance(generator, Mapping) else None
    return _FAMILY_OF_ARCHITECTURE.get(architecture, "custom")


def save_model(path: str | Path, model: GenerativeModel, *, config: Mapping[str, Any] | None = None,
               iteration: int | None = None, storage_dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` as a checkpoint that :func:`load_model` turns back into the same model.

    The JSON holds ``model.config`` (less the checkpoint's own bookkeeping keys), then
    ``config``, then what the model says of itself: ``family``, ``latent_dim``, ``prior``,
    ``energy_scale``, ``conditional``, ``x_shape`` and ``command`` (when known).

    Args:
        path: checkpoint prefix (or its ``.json`` / ``.safetensors`` name).
        model: every part must be an ``nn.Module`` of a registered architecture.
        config: extra JSON keys.
        iteration: the training iteration to record (default: ``model.config["iteration"]`` or 0).
        storage_dtype: store the weights in this dtype (e.g. ``torch.float16``); they load back
            in the model's own dtype (:func:`cogenerate.checkpoint.save_checkpoint`).

    Returns:
        The checkpoint prefix.

    Raises:
        ValueError: a part that is not a module of a registered architecture, a prior that
            cannot be stored, or a config that is not JSON.
    """
    modules: dict[str, nn.Module] = {}
    for name, part in model.parts.items():
        if not isinstance(part, nn.Module):
            raise ValueError(f"cannot save the {name!r} part: a {type(part).__name__}, not an nn.Module")
        modules[name] = part
    document = {key: value for key, value in model.config.items() if key not in _RESERVED}
    document.update(config or {})
    document.update({
        "family": model.family,
        "latent_dim": int(model.latent_dim),
        "prior": prior_config(model.prior),
        "energy_scale": float(model.energy_scale),
        "conditional": bool(model.conditional),
    })
    if model.x_shape is not None:
        document["x_shape"] = [int(n) for n in model.x_shape]
    if model.command is not None:
        document["command"] = model.command
    if iteration is None:
        iteration = int(model.config.get("iteration", 0))
    return save_checkpoint(path, modules, document, iteration=iteration, storage_dtype=storage_dtype)


# --------------------------------------------------------------------------- helpers


def _load_named(spec: str, *, device: torch.device | str | None, latent_dim: int | None) -> GenerativeModel:
    if is_pretrained(spec):
        return model_from_checkpoint(load_pretrained(spec, device=device))
    path = Path(spec).expanduser()
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise ValueError(f"{spec}: the folder holds no checkpoint (iter_*.json + .safetensors)")
        return model_from_checkpoint(load_checkpoint(latest, device=device))
    if path.is_file() or checkpoint_files(path)["config"].is_file():
        return model_from_checkpoint(load_checkpoint(path, device=device))
    if _FACTORY.match(spec):
        return _from_factory(spec, device=device, latent_dim=latent_dim)
    raise ValueError(
        f"unknown model {spec!r}: not a shipped model ({', '.join([*PRETRAINED, *SHORT_NAMES])}; see `cogen models`), "
        f"an existing checkpoint file or run folder, nor module.path:factory"
    )


def _from_factory(spec: str, *, device: torch.device | str | None, latent_dim: int | None) -> GenerativeModel:
    module_name, factory_name = spec.split(":")
    module = _import(module_name, spec)
    factory = getattr(module, factory_name, None)
    if factory is None:
        raise ValueError(f"{spec}: module {module_name!r} has no attribute {factory_name!r}")
    if not callable(factory):
        raise ValueError(f"{spec}: {factory_name!r} is a {type(factory).__name__}, not a function")
    try:
        made = factory()
    except Exception as error:  # the user's code: report it on one line, whatever it raised
        raise ValueError(f"{spec}: calling {factory_name}() failed: {_one_line(error)}") from error
    if isinstance(made, GenerativeModel):
        return made.to(device) if device is not None else made
    if isinstance(made, nn.Module):
        if device is not None:
            made.to(device)
        return _wrap_generator(made, latent_dim=latent_dim, label=spec)
    if callable(made):
        return _wrap_generator(made, latent_dim=latent_dim, label=spec)
    raise ValueError(f"{spec}: {factory_name}() returned a {type(made).__name__}; it must return an nn.Module "
                     f"(the generator) or a GenerativeModel")


def _import(module_name: str, spec: str) -> Any:
    """Import ``module_name``, from the current folder too (where a user keeps their model file)."""
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # ModuleNotFoundError, or the module's own code failing
        raise ValueError(f"{spec}: cannot import {module_name!r}: {_one_line(error)}") from error
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _wrap_generator(generator: Callable[..., Any], *, latent_dim: int | None, label: str) -> GenerativeModel:
    if latent_dim is None:
        latent_dim = getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool):
        raise ValueError(f"cannot infer the latent size of {label}: pass latent_dim= (--latent-dim on the command "
                         f"line) or give the generator an integer `latent_dim` attribute")
    return GenerativeModel.from_generator(generator, latent_dim=latent_dim)


def _x_shape(generator: nn.Module, latent_dim: int, config: Mapping[str, Any], *,
             conditional: bool) -> tuple[int, ...] | None:
    """The sample shape: the config's ``x_shape``, else a forward pass of one zero latent (eval
    mode, so batch norm uses its running statistics), else the config's image size."""
    if isinstance(config.get("x_shape"), list):
        return tuple(int(n) for n in config["x_shape"])
    if not conditional:
        parameter = next(generator.parameters(), None)
        device = parameter.device if parameter is not None else None
        dtype = parameter.dtype if parameter is not None else None
        was_training = generator.training
        generator.eval()
        try:
            with torch.no_grad():
                return tuple(generator(torch.zeros(1, latent_dim, device=device, dtype=dtype)).shape[1:])
        finally:
            generator.train(was_training)
    if isinstance(config.get("image_size"), int) and isinstance(config.get("channels"), int):
        return (config["channels"], config["image_size"], config["image_size"])
    return None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
