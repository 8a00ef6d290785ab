"""The checkpoint file format: file names, and reading the files back with validation.

See :mod:`cogenerate.checkpoint` for the layout and the public functions; this module holds
the pieces they share. Every problem found while reading raises :class:`CheckpointError`, a
``ValueError`` whose one-line message names the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from torch import Tensor, nn

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "CONFIG_SUFFIX",
    "CheckpointError",
    "TRAINING_STATE_SUFFIX",
    "WEIGHTS_SUFFIX",
    "check_no_leftover_weights",
    "checkpoint_prefix",
    "load_module_weights",
    "parse_dtype",
    "read_config",
    "read_training_state",
    "read_weights",
    "with_suffix",
]

CHECKPOINT_FORMAT = "cogenerate-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

WEIGHTS_SUFFIX = ".safetensors"
CONFIG_SUFFIX = ".json"
TRAINING_STATE_SUFFIX = ".optim.pt"
_SUFFIXES = (TRAINING_STATE_SUFFIX, WEIGHTS_SUFFIX, CONFIG_SUFFIX)


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match the architecture."""


def checkpoint_prefix(path: str | Path) -> Path:
    """The checkpoint prefix of ``path``: a trailing ``.json``, ``.safetensors`` or ``.optim.pt`` stripped."""
    path = Path(path)
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def with_suffix(prefix: Path, suffix: str) -> Path:
    """``prefix`` with ``suffix`` appended to its name (``Path.with_suffix`` would replace a dot)."""
    return prefix.with_name(prefix.name + suffix)


def parse_dtype(name: Any, file: Path) -> torch.dtype:
    """``"float32"`` -> ``torch.float32``; anything else is a :class:`CheckpointError`."""
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"{file}: unknown dtype {name!r}")
    return dtype


def _read_bytes(file: Path) -> bytes:
    if not file.is_file():
        raise CheckpointError(f"{file}: checkpoint file not found")
    try:
        return file.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{file}: cannot read checkpoint file ({error.strerror or error})") from None


def read_config(file: Path) -> dict[str, Any]:
    """The checkpoint JSON at ``file``, checked: format, version, integer iteration, module specs."""
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


def read_weights(file: Path, document: Mapping[str, Any]) -> dict[str, Tensor]:
    """The tensors of the safetensors ``file``, checked against ``document["weights_sha256"]`` if present."""
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


def read_training_state(file: Path) -> dict[str, Any]:
    """The ``.optim.pt`` dict (optimizer states, rng state, step state), loaded with ``weights_only=True``."""
    raw = _read_bytes(file)
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle / zip errors of many kinds
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{file}: corrupt or truncated training state ({message})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: training state must be a dict, got {type(state).__name__}")
    return state


def load_module_weights(module: nn.Module, name: str, tensors: Mapping[str, Tensor], file: Path) -> None:
    """Load the tensors ``"<name>.*"`` into ``module`` (strict), naming every missing or misshapen key."""
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


def check_no_leftover_weights(tensors: Mapping[str, Tensor], modules: Mapping[str, nn.Module], file: Path) -> None:
    """Raise if ``tensors`` hold weights of a module that is not in ``modules``."""
    leftovers = sorted(key for key in tensors if key.split(".", 1)[0] not in modules)
    if leftovers:
        raise CheckpointError(f"{file}: weights for no module listed in the config: {_abbreviate(leftovers)}")


def _abbreviate(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})" if len(items) > limit else f"[{shown}]"
