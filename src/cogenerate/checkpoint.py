"""Checkpoints: safetensors weights + a JSON config, written atomically.

A checkpoint is a *prefix* ``<path>`` naming up to three files side by side:

``<path>.safetensors``
    The state dicts of all modules, each key prefixed with ``"<module name>."``
    (e.g. ``generator.net.0.weight``). Loading it never executes code.
``<path>.optim.pt``
    Optional, only for resuming training: ``{"optimizers": {name: state_dict},
    "rng_state": ByteTensor | None, "step_state": ...}`` (``step_state``: a training step's
    own state, e.g. a BEGAN balance term; only when given) written with ``torch.save`` and
    read back with ``torch.load(weights_only=True)``.
``<path>.json``
    The config: the caller's ``config`` keys, plus ``"format"``, ``"format_version"``,
    ``"iteration"``, ``"weights_sha256"`` (of the safetensors file) and ``"modules"``, which
    maps each module name to ``{"architecture": <registered name>, "kwargs": {...},
    "dtype": "float32"}`` (see :mod:`cogenerate.models.registry`), enough to rebuild it.

Every file is written to a temporary file in the same directory, flushed, fsync'ed and
moved into place with ``os.replace``, so a crash never leaves a half-written file under a
checkpoint's name. The JSON is written last and marks the checkpoint complete:
:func:`list_checkpoints` only reports prefixes whose JSON and safetensors both exist.

All problems with reading a checkpoint raise :class:`CheckpointError`, a ``ValueError``
whose one-line message names the file and what is wrong with it. The format's file names
and validating readers live in :mod:`cogenerate.checkpoint_format`, the atomic writes in
:mod:`cogenerate.files`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from cogenerate.checkpoint_format import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT_VERSION,
    CONFIG_SUFFIX,
    TRAINING_STATE_SUFFIX,
    WEIGHTS_SUFFIX,
    CheckpointError,
    check_no_leftover_weights,
    checkpoint_prefix,
    load_module_weights,
    parse_dtype,
    read_config,
    read_training_state,
    read_weights,
    with_suffix,
)
from cogenerate.files import atomic_write_bytes
from cogenerate.models.registry import build_module, module_config

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "TrainingState",
    "checkpoint_files",
    "delete_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

_RESERVED_CONFIG_KEYS = ("format", "format_version", "weights_sha256", "modules")


class Checkpoint(NamedTuple):
    """A loaded checkpoint.

    Attributes:
        modules: name -> rebuilt module with the saved weights, in eval mode.
        config: the whole JSON document (the caller's config keys plus ``"modules"``,
            ``"iteration"``, ``"format"``, ...).
        iteration: the training iteration the checkpoint was taken at.
        path: the checkpoint prefix (without suffix).
    """

    modules: dict[str, nn.Module]
    config: dict[str, Any]
    iteration: int
    path: Path


class TrainingState(NamedTuple):
    """What :func:`restore_checkpoint` returns besides loading weights in place.

    Attributes:
        iteration: the training iteration the checkpoint was taken at.
        rng_state: the saved ``torch.Generator`` state (a CPU ``uint8`` tensor), or None.
        step_state: the saved state of the training step (see :func:`save_checkpoint`), or None.
    """

    iteration: int
    rng_state: Tensor | None
    step_state: Any = None


def checkpoint_files(path: str | Path) -> dict[str, Path]:
    """The files of the checkpoint named by ``path`` (the prefix or any of its files).

    Returns:
        ``{"weights": <prefix>.safetensors, "config": <prefix>.json,
        "training_state": <prefix>.optim.pt}`` (the files need not exist).
    """
    prefix = checkpoint_prefix(path)
    return {
        "weights": with_suffix(prefix, WEIGHTS_SUFFIX),
        "config": with_suffix(prefix, CONFIG_SUFFIX),
        "training_state": with_suffix(prefix, TRAINING_STATE_SUFFIX),
    }


def save_checkpoint(
    path: str | Path,
    modules: Mapping[str, nn.Module],
    config: Mapping[str, Any],
    *,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    rng_state: Tensor | None = None,
    step_state: Any = None,
    iteration: int | None = None,
    storage_dtype: torch.dtype | None = None,
) -> Path:
    """Write a checkpoint atomically (see the module docstring for the file layout).

    Args:
        path: checkpoint prefix, e.g. ``runs/toy/iter_0001500`` (a trailing ``.json``,
            ``.safetensors`` or ``.optim.pt`` is stripped). Parent directories are created.
        modules: name -> module; each module's class must be registered
            (:func:`cogenerate.models.registry.register_architecture`). Names may not
            contain ``"."``.
        config: JSON-serialisable settings stored in the JSON file (``Path`` values are
            stored as strings). May not use the keys ``format``, ``format_version``,
            ``weights_sha256``, ``modules``.
        optimizers: name -> optimizer whose state is saved to ``<path>.optim.pt`` for
            resuming. Omitted: no training state unless ``rng_state`` is given.
        rng_state: ``torch.Generator.get_state()`` to save with the training state.
        step_state: a training step's own state to save with the training state (tensors,
            numbers, strings, lists and dicts of them: what ``torch.load(weights_only=True)``
            reads back); None saves none.
        iteration: training iteration; defaults to ``config["iteration"]`` or 0.
        storage_dtype: store floating-point weights in this dtype (e.g. ``torch.float16``, half
            the file) while the modules still load back in their own dtype (the JSON records
            both); None stores them as they are.

    Returns:
        The checkpoint prefix.

    Raises:
        ValueError: a module is not registered or has a bad name, or the config is not
            JSON-serialisable or uses a reserved key.
    """
    prefix = checkpoint_prefix(path)
    files = checkpoint_files(prefix)
    reserved = sorted(set(config) & set(_RESERVED_CONFIG_KEYS))
    if reserved:
        raise ValueError(f"config may not use the reserved key(s) {reserved}")
    if iteration is None:
        iteration = int(config.get("iteration", 0))
    if not modules:
        raise ValueError("save_checkpoint needs at least one module")

    tensors: dict[str, Tensor] = {}
    module_specs: dict[str, dict[str, Any]] = {}
    for name, module in modules.items():
        if not name or "." in name:
            raise ValueError(f"module name {name!r} must be non-empty and contain no '.'")
        spec = module_config(module)
        dtype = _floating_dtype(module)
        if dtype is not None:
            spec["dtype"] = str(dtype).removeprefix("torch.")
            if storage_dtype is not None:
                spec["storage_dtype"] = str(storage_dtype).removeprefix("torch.")
        module_specs[name] = spec
        for key, tensor in module.state_dict().items():
            # clone: safetensors refuses tensors that share storage (e.g. tied weights)
            tensor = tensor.detach().to("cpu", copy=True).contiguous()
            if storage_dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(storage_dtype)
            tensors[f"{name}.{key}"] = tensor
    weights = safetensors_save(tensors, metadata={"format": CHECKPOINT_FORMAT})

    document: dict[str, Any] = dict(config)
    document.update(
        {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "iteration": int(iteration),
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "modules": module_specs,
        }
    )
    try:
        text = json.dumps(document, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint config is not JSON-serialisable: {error}") from error

    prefix.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(files["weights"], weights)
    if optimizers is not None or rng_state is not None or step_state is not None:
        state = {
            "optimizers": {name: optimizer.state_dict() for name, optimizer in (optimizers or {}).items()},
            "rng_state": None if rng_state is None else rng_state.detach().to("cpu").clone(),
        }
        if step_state is not None:
            state["step_state"] = step_state
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(files["training_state"], buffer.getvalue())
    else:
        with contextlib.suppress(FileNotFoundError):
            files["training_state"].unlink()  # stale state from an overwritten checkpoint
    atomic_write_bytes(files["config"], (text + "\n").encode("utf-8"))
    return prefix


def load_checkpoint(path: str | Path, *, device: torch.device | str | None = None) -> Checkpoint:
    """Rebuild the modules of a checkpoint and load their weights.

    Args:
        path: the checkpoint prefix, or its ``.json`` / ``.safetensors`` / ``.optim.pt`` file.
        device: where to put the modules (default: CPU).

    Returns:
        A :class:`Checkpoint`; its modules are in eval mode, in the saved dtype.

    Raises:
        CheckpointError (a ValueError): missing file, invalid JSON, corrupt or truncated
            safetensors, unknown architecture, or weights that do not fit the architecture.
    """
    prefix = checkpoint_prefix(path)
    files = checkpoint_files(prefix)
    document = read_config(files["config"])
    tensors = read_weights(files["weights"], document)
    modules: dict[str, nn.Module] = {}
    for name, spec in document["modules"].items():
        try:
            # the constructor's default initialisation draws from the global RNG; the
            # weights are overwritten anyway, so leave the global RNG as it was
            with torch.random.fork_rng(devices=[]):
                module = build_module(spec["architecture"], spec.get("kwargs", {}))
        except ValueError as error:
            raise CheckpointError(f"{files['config']}: module {name!r}: {error}") from None
        dtype = spec.get("dtype")
        if dtype is not None:  # before loading, so float64 weights are not rounded to float32
            module.to(dtype=parse_dtype(dtype, files["config"]))
        load_module_weights(module, name, tensors, files["weights"])
        if device is not None:
            module.to(device)
        modules[name] = module.eval()
    check_no_leftover_weights(tensors, modules, files["weights"])
    return Checkpoint(modules=modules, config=document, iteration=int(document["iteration"]), path=prefix)


def restore_checkpoint(
    path: str | Path,
    modules: Mapping[str, nn.Module],
    *,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
) -> TrainingState:
    """Load a checkpoint's weights (and optimizer states) into existing objects, to resume.

    Unlike :func:`load_checkpoint` this does not rebuild modules or change their mode.

    Args:
        path: the checkpoint prefix or one of its files.
        modules: name -> module to load the saved weights of the same name into; every
            module must be present in the checkpoint.
        optimizers: name -> optimizer to load the saved state into (needs the checkpoint's
            ``.optim.pt``).

    Returns:
        The checkpoint's iteration, saved rng state and saved step state.

    Raises:
        CheckpointError (a ValueError): as :func:`load_checkpoint`, or a module/optimizer
            missing from the checkpoint.
    """
    files = checkpoint_files(path)
    document = read_config(files["config"])
    tensors = read_weights(files["weights"], document)
    for name, module in modules.items():
        if name not in document["modules"]:
            raise CheckpointError(
                f"{files['config']}: no module named {name!r} (has {sorted(document['modules'])})"
            )
        load_module_weights(module, name, tensors, files["weights"])
    rng_state: Tensor | None = None
    step_state: Any = None
    if optimizers or files["training_state"].exists():
        state = read_training_state(files["training_state"])
        rng_state = state.get("rng_state")
        step_state = state.get("step_state")
        for name, optimizer in (optimizers or {}).items():
            saved = state.get("optimizers", {})
            if name not in saved:
                raise CheckpointError(
                    f"{files['training_state']}: no optimizer state named {name!r} (has {sorted(saved)})"
                )
            try:
                optimizer.load_state_dict(saved[name])
            except (ValueError, KeyError, RuntimeError) as error:
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise CheckpointError(
                    f"{files['training_state']}: optimizer state {name!r} does not fit the optimizer: {message}"
                ) from None
    return TrainingState(iteration=int(document["iteration"]), rng_state=rng_state, step_state=step_state)


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``directory`` (not recursive), sorted by iteration.

    A checkpoint counts when its ``.json`` is a cogenerate checkpoint config and its
    ``.safetensors`` exists; other JSON files are ignored.

    Returns:
        ``[(iteration, prefix), ...]`` in increasing iteration (ties by name).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for config_path in directory.glob(f"*{CONFIG_SUFFIX}"):
        prefix = checkpoint_prefix(config_path)
        if not with_suffix(prefix, WEIGHTS_SUFFIX).is_file():
            continue
        try:
            document = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
            continue
        iteration = document.get("iteration")
        if isinstance(iteration, int) and not isinstance(iteration, bool):
            found.append((iteration, prefix))
    return sorted(found, key=lambda item: (item[0], item[1].name))


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The prefix of the checkpoint with the highest iteration in ``directory``, or None."""
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1][1] if checkpoints else None


def delete_checkpoint(path: str | Path) -> None:
    """Delete the files of the checkpoint ``path``; the JSON first, so it stops counting as complete."""
    files = checkpoint_files(path)
    for key in ("config", "weights", "training_state"):
        with contextlib.suppress(FileNotFoundError):
            files[key].unlink()


# --------------------------------------------------------------------------- helpers


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serialisable")


def _floating_dtype(module: nn.Module) -> torch.dtype | None:
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None
