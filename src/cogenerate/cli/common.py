"""Helpers shared by the ``cogen`` subcommands: devices, threads, seeds, progress bars, output.

Progress bars (tqdm) go to stderr; results (tables, paths) go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "PROG", "PROGRESS_STEPS", "Formatter", "StageBars", "command_line", "fraction_bar", "note",
    "positive_noise_std", "print_files", "progress_bar", "resolve_device", "seed_of", "setup", "to_plain",
]

PROG = "cogen"
PROGRESS_STEPS = 1000  # a fraction-driven bar counts in whole thousandths (no float drift past 100 %)


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped descriptions and epilogs (help strings state their defaults)."""


def resolve_device(args: argparse.Namespace) -> torch.device:
    """``--device`` as a :class:`torch.device`; a one-line ``ValueError`` if it is not available."""
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"unknown device {args.device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device} asked for, but CUDA is not available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {args.device} asked for, but MPS is not available here; use --device cpu")
    return device


def setup(args: argparse.Namespace, *, default_threads: int | None = None) -> torch.device:
    """Apply ``--threads`` (or ``default_threads`` when it is not given) and resolve ``--device``."""
    threads = args.threads if args.threads is not None else default_threads
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return resolve_device(args)


def positive_noise_std(text: str) -> float | str:
    """``--noise-std``: a positive number or "auto"."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def check_counts(args: argparse.Namespace, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """A one-line ValueError unless each ``required`` option and each given ``optional`` one is >= 1."""
    for option in required + optional:
        value = getattr(args, option)
        if (value is not None or option in required) and value < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be at least 1, got {value}")


def seed_of(args: argparse.Namespace) -> int:
    """``--seed``, 0 when not given."""
    return 0 if args.seed is None else int(args.seed)


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (recorded in checkpoints and reports)."""
    return shlex.join([PROG, *args.argv])


def note(args: argparse.Namespace, message: str) -> None:
    """A one-line remark on stderr (silenced by ``--quiet``)."""
    if not args.quiet:
        print(f"{PROG}: note: {message}", file=sys.stderr)


@contextlib.contextmanager
def progress_bar(args: argparse.Namespace, *, total: float, desc: str, unit: str = "it",
                 initial: float = 0) -> Iterator[Any]:
    """A tqdm bar on stderr; refreshes rarely when stderr is not a terminal (log files)."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, disable=args.quiet,
               dynamic_ncols=True, mininterval=0.2 if interactive else 30.0, leave=True)
    try:
        yield bar
    finally:
        bar.close()


def fraction_bar(bar: Any) -> Callable[[float], None]:
    """``progress(fraction)`` callback driving a bar of total :data:`PROGRESS_STEPS`."""

    def update(fraction: float) -> None:
        target = min(PROGRESS_STEPS, max(0, int(PROGRESS_STEPS * float(fraction))))
        if target > bar.n:
            bar.update(target - bar.n)

    return update


class StageBars:
    """``progress(stage, fraction)`` callback: one bar per stage, a new one when the stage changes."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.stage: str | None = None
        self.stack: contextlib.ExitStack = contextlib.ExitStack()
        self.update: Callable[[float], None] | None = None

    def __call__(self, stage: str, fraction: float) -> None:
        if stage != self.stage:
            self.stack.close()
            self.stack = contextlib.ExitStack()
            bar = self.stack.enter_context(progress_bar(self.args, total=PROGRESS_STEPS, desc=stage, unit="%"))
            bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
            self.update = fraction_bar(bar)
            self.stage = stage
        assert self.update is not None
        self.update(fraction)

    def close(self) -> None:
        self.stack.close()


def print_files(files: Mapping[str, Any]) -> None:
    """The files a command wrote, one ``  name: path`` line each, on stdout."""
    for name, path in files.items():
        print(f"  {name}: {path}")


def to_plain(value: Any, *, limit: int = 100_000) -> Any:
    """Anything a command reports, as JSON: tensors to (nested) lists (or a note of their shape
    when they hold more than ``limit`` numbers), NaN and infinities to None, keys to strings,
    NamedTuples to dicts, anything else unknown to its ``str``."""
    if isinstance(value, Tensor):
        if value.numel() > limit:
            return {"shape": list(value.shape), "omitted": f"more than {limit} numbers"}
        return to_plain(value.detach().cpu().tolist())
    if isinstance(value, Mapping):
        return {str(key): to_plain(item, limit=limit) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return to_plain(value._asdict(), limit=limit)
    if isinstance(value, (list, tuple)):
        return [to_plain(item, limit=limit) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return to_plain(value.item())
    return str(value)
