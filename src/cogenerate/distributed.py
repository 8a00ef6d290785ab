"""Several processes, one job: torch.distributed's default process group, as ``torchrun`` sets it up.

``torchrun --nproc-per-node N -m cogenerate COMMAND ...`` starts N copies of the command; the
command line (:mod:`cogenerate.cli.distributed`) joins them into torch.distributed's default
process group (gloo on the CPU, NCCL on GPUs). The library only asks that group which share of
the work is this process's, and gathers the results:

- training (:mod:`cogenerate.training.distributed`) averages gradients over the processes, each
  of which trains on its own shard of every batch;
- batch completion (:mod:`cogenerate.batch`) and ``cogen reproduce images`` complete their own
  share of the images (:func:`shard`) and gather every record (:func:`gather`).

Every function here works without a process group, or with a group of one process, and then
does nothing: a single process is the world of size 1. No function chooses a device: the
collectives run on the devices of the tensors given (NCCL needs them on the process's GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor

__all__ = ["World", "all_reduce_mean_", "barrier", "broadcast_", "gather", "mean_over_ranks", "shard", "world"]

T = TypeVar("T")


class World(NamedTuple):
    """This process's place in the job.

    Attributes:
        rank: 0 … ``size − 1``; rank 0 writes the files.
        size: the number of processes (1 without a process group).
    """

    rank: int
    size: int

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.size > 1

    @property
    def writes(self) -> bool:
        """Whether this process writes files and prints: rank 0 only."""
        return self.rank == 0


def world() -> World:
    """The default process group's rank and size; ``World(0, 1)`` when none is initialised."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return World(0, 1)
    return World(torch.distributed.get_rank(), torch.distributed.get_world_size())


def shard(items: Sequence[T], *, at: World | None = None) -> list[T]:
    """This process's share of ``items``: every ``size``-th item from position ``rank``.

    The shares of all ranks partition ``items`` and differ in length by at most one item
    (``items[rank::size]``, the round robin of PyTorch's ``DistributedSampler`` without its
    padding). ``at`` defaults to :func:`world`.
    """
    at = world() if at is None else at
    return list(items[at.rank::at.size])


def gather(share: Sequence[T]) -> list[T]:
    """Every process's ``share`` (any picklable items), concatenated in rank order, on every process.

    The inverse of :func:`shard` up to order: callers that need the original order sort by a
    key they kept in each item (e.g. the image index). Without a process group, ``list(share)``.
    """
    at = world()
    if not at.distributed:
        return list(share)
    shares: list[Any] = [None] * at.size
    torch.distributed.all_gather_object(shares, list(share))
    return [item for part in shares for item in part]


def mean_over_ranks(values: Tensor) -> Tensor:
    """The mean of ``values`` over the processes (a new tensor); ``values`` itself with one process.

    Every process passes a tensor of the same shape and dtype and gets the same result. Sums
    with ``SUM`` then divides, as gloo has no ``AVG``.
    """
    at = world()
    if not at.distributed:
        return values
    total = values.detach().clone()
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return total / at.size


def broadcast_(tensors: Sequence[Tensor], *, src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values, on every process.

    Tensors of one device and dtype travel in one flat message (as DDP's buckets).
    """
    if not world().distributed:
        return
    for group in _by_device_and_dtype(tensors):
        flat = torch.cat([tensor.detach().reshape(-1) for tensor in group])
        torch.distributed.broadcast(flat, src=src)
        _unflatten_into(flat, group)


def all_reduce_mean_(tensors: Sequence[Tensor]) -> None:
    """Replace ``tensors`` in place by their means over the processes, one flat message per device and dtype."""
    at = world()
    if not at.distributed:
        return
    for group in _by_device_and_dtype(tensors):
        flat = torch.cat([tensor.detach().reshape(-1) for tensor in group])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        flat /= at.size
        _unflatten_into(flat, group)


def _by_device_and_dtype(tensors: Sequence[Tensor]) -> list[list[Tensor]]:
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for tensor in tensors:
        groups.setdefault((tensor.device, tensor.dtype), []).append(tensor)
    return list(groups.values())


def _unflatten_into(flat: Tensor, tensors: Sequence[Tensor]) -> None:
    offset = 0
    with torch.no_grad():
        for tensor in tensors:
            count = tensor.numel()
            tensor.copy_(flat[offset:offset + count].view_as(tensor))
            offset += count


def barrier() -> None:
    """Wait until every process gets here (nothing without a process group)."""
    if world().distributed:
        torch.distributed.barrier()
