"""Checkpoints: safetensors weights + a JSON config, written atomically.

A checkpoint is a *prefix* ``<path>`` naming up to three files side by side:

``<path>.safetensors``
    The state dicts of all modules, each key prefixed with ``"<module name>."``
    (e.g. ``generator.net.0.weight``). Loading it never executes code.
``<path>.optim.pt``
    Optional, only for resuming training: ``{"optimizers": {name: state_dict},
    "rng_state": ByteTensor | None}`` written with ``torch.save`` and read back with
    ``torch.load(weights_only=True)``.
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
whose one-line message names the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from cogenerate.models.registry import build_module, module_config

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "TrainingState",
    "checkpoint_files",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "cogenerate-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

WEIGHTS_SUFFIX = ".safetensors"
CONFIG_SUFFIX = ".json"
TRAINING_STATE_SUFFIX = ".optim.pt"
_SUFFIXES = (TRAINING_STATE_SUFFIX, WEIGHTS_SUFFIX, CONFIG_SUFFIX)
_RESERVED_CONFIG_KEYS = ("format", "format_version", "weights_sha256", "modules")


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match the architecture."""


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
    """

    iteration: int
    rng_state: Tensor | None


def checkpoint_files(path: str | Path) -> dict[str, Path]:
    """The files of the checkpoint named by ``path`` (the prefix or any of its files).

    Returns:
        ``{"weights": <prefix>.safetensors, "config": <prefix>.json,
        "training_state": <prefix>.optim.pt}`` (the files need not exist).
    """
    prefix = _prefix(path)
    return {
        "weights": _with_suffix(prefix, WEIGHTS_SUFFIX),
        "config": _with_suffix(prefix, CONFIG_SUFFIX),
        "training_state": _with_suffix(prefix, TRAINING_STATE_SUFFIX),
    }


def save_checkpoint(
    path: str | Path,
    modules: Mapping[str, nn.Module],
    config: Mapping[str, Any],
    *,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    rng_state: Tensor | None = None,
    iteration: int | None = None,
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
        iteration: training iteration; defaults to ``config["iteration"]`` or 0.

    Returns:
        The checkpoint prefix.

    Raises:
        ValueError: a module is not registered or has a bad name, or the config is not
            JSON-serialisable or uses a reserved key.
    """
    prefix = _prefix(path)
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
        module_specs[name] = spec
        for key, tensor in module.state_dict().items():
            # clone: safetensors refuses tensors that share storage (e.g. tied weights)
            tensors[f"{name}.{key}"] = tensor.detach().to("cpu", copy=True).contiguous()
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
    _atomic_write_bytes(files["weights"], weights)
    if optimizers is not None or rng_state is not None:
        state = {
            "optimizers": {name: optimizer.state_dict() for name, optimizer in (optimizers or {}).items()},
            "rng_state": None if rng_state is None else rng_state.detach().to("cpu").clone(),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        _atomic_write_bytes(files["training_state"], buffer.getvalue())
    else:
        with contextlib.suppress(FileNotFoundError):
            files["training_state"].unlink()  # stale state from an overwritten checkpoint
    _atomic_write_bytes(files["config"], (text + "\n").encode("utf-8"))
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
    prefix = _prefix(path)
    files = checkpoint_files(prefix)
    document = _read_config(files["config"])
    tensors = _read_weights(files["weights"], document)
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
            module.to(dtype=_parse_dtype(dtype, files["config"]))
        _load_module_weights(module, name, tensors, files["weights"])
        if device is not None:
            module.to(device)
        modules[name] = module.eval()
    _check_no_leftover_weights(tensors, modules, files["weights"])
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
        The checkpoint's iteration and saved rng state.

    Raises:
        CheckpointError (a ValueError): as :func:`load_checkpoint`, or a module/optimizer
            missing from the checkpoint.
    """
    files = checkpoint_files(path)
    document = _read_config(files["config"])
    tensors = _read_weights(files["weights"], document)
    for name, module in modules.items():
        if name not in document["modules"]:
            raise CheckpointError(
                f"{files['config']}: no module named {name!r} (has {sorted(document['modules'])})"
            )
        _load_module_weights(module, name, tensors, files["weights"])
    rng_state: Tensor | None = None
    if optimizers or files["training_state"].exists():
        state = _read_training_state(files["training_state"])
        rng_state = state.get("rng_state")
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
    return TrainingState(iteration=int(document["iteration"]), rng_state=rng_state)


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
        prefix = _prefix(config_path)
        if not _with_suffix(prefix, WEIGHTS_SUFFIX).is_file():
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


# --------------------------------------------------------------------------- helpers


def _prefix(path: str | Path) -> Path:
    path = Path(path)
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def _with_suffix(prefix: Path, suffix: str) -> Path:
    return prefix.with_name(prefix.name + suffix)


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


def _parse_dtype(name: Any, file: Path) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"{file}: unknown dtype {name!r}")
    return dtype


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsync'ed temporary file in the same directory."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows, where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_bytes(file: Path) -> bytes:
    if not file.is_file():
        raise CheckpointError(f"{file}: checkpoint file not found")
    try:
        return file.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{file}: cannot read checkpoint file ({error.strerror or error})") from None


def _read_config(file: Path) -> dict[str, Any]:
    raw = _read_bytes(file)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{file}: invalid JSON in checkpoint config ({error})") from None
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{file}: not a cogenerate checkpoint config (no \"format\": \"{CHECKPOINT_FORMAT}\")")
    version = document.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: unsupported checkpoint format_version {version!r} (this version reads <= {CHECKPOINT_FORMAT_VERSION})"
        )
    iteration = document.get("iteration")
    if not isinstance(iteration, int) or isinstance(iteration, bool):
        raise CheckpointError(f"{file}: \"iteration\" must be an integer, got {iteration!r}")
    modules = document.get("modules")
    if not isinstance(modules, dict) or not modules:
        raise CheckpointError(f"{file}: \"modules\" must be a non-empty object")
    for name, spec in modules.items():
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("architecture"), str)
            or not isinstance(spec.get("kwargs", {}), dict)
        ):
            raise CheckpointError(
                f"{file}: module {name!r} must be {{\"architecture\": str, \"kwargs\": object}}, got {spec!r}"
            )
    return document


def _read_weights(file: Path, document: Mapping[str, Any]) -> dict[str, Tensor]:
    raw = _read_bytes(file)
    expected_hash = document.get("weights_sha256")
    if isinstance(expected_hash, str) and hashlib.sha256(raw).hexdigest() != expected_hash:
        raise CheckpointError(
            f"{file}: weights do not match the checksum in the config (corrupt, truncated or from another checkpoint)"
        )
    try:
        return safetensors_load(raw)
    except Exception as error:  # safetensors raises its own SafetensorError and others
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{file}: corrupt or truncated safetensors file ({message})") from None


def _read_training_state(file: Path) -> dict[str, Any]:
    raw = _read_bytes(file)
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle / zip errors of many kinds
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{file}: corrupt or truncated training state ({message})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: training state must be a dict, got {type(state).__name__}")
    return state


def _load_module_weights(module: nn.Module, name: str, tensors: Mapping[str, Tensor], file: Path) -> None:
    prefix = f"{name}."
    saved = {key[len(prefix) :]: tensor for key, tensor in tensors.items() if key.startswith(prefix)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    mismatched = [
        f"{key} saved {tuple(saved[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in expected
        if key in saved and saved[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing {_abbreviate(missing)}")
        if unexpected:
            problems.append(f"unexpected {_abbreviate(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatch {_abbreviate(mismatched)}")
        raise CheckpointError(
            f"{file}: weights of module {name!r} do not match its architecture "
            f"({type(module).__name__}): {'; '.join(problems)}"
        )
    module.load_state_dict(saved, strict=True)


def _check_no_leftover_weights(tensors: Mapping[str, Tensor], modules: Mapping[str, nn.Module], file: Path) -> None:
    leftovers = sorted(key for key in tensors if key.split(".", 1)[0] not in modules)
    if leftovers:
        raise CheckpointError(f"{file}: weights for no module listed in the config: {_abbreviate(leftovers)}")


def _abbreviate(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})" if len(items) > limit else f"[{shown}]"
