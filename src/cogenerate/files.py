"""Atomic file writes: a reader never sees a half-written file under the final name.

Each function writes to a temporary file in the target's directory, flushes and fsyncs it,
moves it into place with ``os.replace`` (atomic on POSIX and Windows) and fsyncs the
directory, so the rename itself survives a power cut. A crash leaves either the old file or
the new one, plus at worst a hidden ``.<name>.*.tmp`` file that a later write of the same name
does not trip over.

Used by :mod:`cogenerate.checkpoint` and by the command line for its JSON reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "fsync_directory"]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a fsync'ed temporary file in the same directory.

    The parent directory must exist. The file gets mode ``0o644``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
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
    fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded with ``encoding``."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, document: Any, *, indent: int | None = 2) -> Path:
    """Write ``document`` as JSON (plus a final newline) atomically.

    ``Path`` values are written as strings; NaN and infinities are refused (they are not JSON).

    Raises:
        ValueError: ``document`` is not JSON-serialisable.
    """
    try:
        text = json.dumps(document, indent=indent, allow_nan=False, default=_path_as_string)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: cannot write as JSON ({error})") from error
    return atomic_write_text(path, text + "\n")


def fsync_directory(directory: str | Path) -> None:
    """Flush a directory's entries (after a rename) to disk; a no-op where unsupported."""
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


def _path_as_string(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serialisable")
