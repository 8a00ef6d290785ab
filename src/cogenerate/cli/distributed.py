"""``cogen`` under ``torchrun``: joining the processes into one job.

``torchrun --nproc-per-node N -m cogenerate COMMAND ...`` starts N copies of ``cogen COMMAND``
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their
environment. :func:`process_group` joins them into torch.distributed's default process group
(gloo for ``--device cpu``, NCCL for ``--device cuda``, each process on GPU ``LOCAL_RANK``),
silences the standard output and progress bars of every rank but 0, and leaves the group when
the command ends. Only the commands that share their work out run this way:
``train`` (data-parallel), ``complete --indices`` and ``reproduce images`` (images sharded).
Without ``torchrun``, or with one process, nothing changes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
from collections.abc import Iterator

import torch

__all__ = ["DISTRIBUTED_COMMANDS", "launched_processes", "process_group"]

DISTRIBUTED_COMMANDS = ("train", "complete", "reproduce")
"""Subcommands that run on several processes under torchrun."""


def launched_processes() -> int:
    """``WORLD_SIZE`` as ``torchrun`` sets it; 1 when the command was not started by it."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


@contextlib.contextmanager
def process_group(args: argparse.Namespace) -> Iterator[None]:
    """Within it, ``args``' command runs as one process of a torchrun job (module docstring).

    Under ``torchrun`` with ``--device cuda`` (or ``cuda:N``), ``args.device`` becomes
    ``cuda:LOCAL_RANK``. Rank 0's output is the command's output; the other ranks print
    nothing to stdout and show no progress bars (their errors still reach stderr).

    Raises:
        ValueError: the command does not run on several processes, or CUDA was asked for and
            the machine has fewer GPUs than processes.
    """
    size = launched_processes()
    if size <= 1 or torch.distributed.is_initialized():
        yield
        return
    if args.command not in DISTRIBUTED_COMMANDS:
        raise ValueError(f"`cogen {args.command}` runs on one process; start it without torchrun "
                         f"(these share their work out: {', '.join(DISTRIBUTED_COMMANDS)})")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if str(args.device).startswith("cuda"):
        if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {local_rank} of this machine asked for a GPU (--device {args.device}), "
                             f"and it has {torch.cuda.device_count() if torch.cuda.is_available() else 0}: "
                             "start at most one process per GPU")
        torch.cuda.set_device(local_rank)
        args.device = f"cuda:{local_rank}"
        backend = "nccl"
    else:
        backend = "gloo"
    _join(backend)
    try:
        if torch.distributed.get_rank() == 0:
            yield
        else:
            args.quiet = True
            with open(os.devnull, "w", encoding="utf-8") as silent, contextlib.redirect_stdout(silent):
                yield
    finally:
        torch.distributed.destroy_process_group()


def _join(backend: str) -> None:
    """``init_process_group`` from torchrun's environment, its keys under this restart's own prefix.

    After torchrun restarts the workers (``--max-restarts``), its shared store still holds the
    addresses the killed workers published, and the new ones may connect to those (PyTorch
    issue #135712). A store prefix per ``TORCHELASTIC_RESTART_COUNT`` keeps every attempt's
    keys apart; the store itself is the one ``init_process_group("env://")`` would open.
    """
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)
    store = torch.distributed.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size, is_master=not agent_store and rank == 0,
        timeout=_TIMEOUT, multi_tenant=not agent_store,
    )
    prefix = f"cogen/restart-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    torch.distributed.init_process_group(backend, store=torch.distributed.PrefixStore(prefix, store), rank=rank,
                                         world_size=size, timeout=_TIMEOUT)


_TIMEOUT = datetime.timedelta(minutes=30)
"""How long a process waits for the others (at the start and in every collective): PyTorch's default for gloo."""

