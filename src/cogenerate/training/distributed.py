"""Data-parallel training on several processes, for every family, inside the one loop.

When :func:`cogenerate.training.loop.train` runs in a torch.distributed process group of N > 1
processes (``torchrun --nproc-per-node N -m cogenerate train ...``), every process holds a
replica of the modules and, per iteration:

1. draws the same global batch of ``batch_size`` images from the shared ``rng`` (same seed,
   same state on every process) and keeps its own contiguous ``batch_size / N`` of it
   (:func:`batch_shard`: the equivalent of PyTorch's ``DistributedSampler`` for batches drawn
   by index from a generator);
2. runs the family's step with a generator of its own (:func:`rank_generator`, seeded from the
   shared ``rng`` and its rank), so the latents, noise and masks of the shards differ as they
   would within one big batch;
3. averages over the processes the gradients of every ``backward()`` as soon as it returns
   (:func:`average_gradients`), so every optimizer step is the same on every process and the
   replicas stay equal;
4. copies rank 0's buffers (batch-norm running statistics) to the others after the step, as
   DDP does with ``broadcast_buffers=True`` (before the next forward).

**Why not wrap the modules in** ``DistributedDataParallel``? DDP all-reduces the gradients of
one backward of the outputs of its own ``forward()``. The families' steps break that contract
in ways that are correct on one process: the discriminator is called two or three times before
one backward (DCGAN, Bayesian GAN); several losses are backpropagated through one graph with
``retain_graph=True`` and ``inputs=`` restricted to one network (BEGAN, α-GAN, VAE-GAN, the
triangle), so a network's output often gets no gradient in a backward, and DDP then waits for
those parameters, or needs ``find_unused_parameters=True`` and still fails on the second
backward of a retained graph; and the steps read attributes such as ``generator.latent_dim``
that a DDP wrapper hides behind ``.module``. Averaging at the end of every backward pass, with
DDP's own mechanism (post-accumulate-grad hooks and a callback queued on the autograd engine),
is correct for all of them without any change to their code, and for any family registered
later. It computes what DDP computes (the mean of the per-process gradients of per-shard mean
losses: the gradient of the global batch's mean loss), and what the step does between backward
and ``optimizer.step()`` (the triangle's gradient-norm clipping) sees the averaged gradient, as
with DDP. What it does not do is DDP's overlap of communication with the backward pass: one
flat all-reduce per backward, which matters little for networks of a few million parameters.
Averaging just before ``optimizer.step()`` (an optimizer step pre-hook) would be simpler still,
but gradient clipping in the step would then act on each process's own gradient.

What is per shard, as with DDP without ``SyncBatchNorm``: batch-norm statistics in training
mode, the VAE's calibrated decoder std, EBGAN's pulling-away term. What the families keep equal
on every process themselves, with :mod:`cogenerate.distributed`: BEGAN's ``k_t`` (its control
reads the losses averaged over the processes) and the Bayesian GAN's SGHMC noise (rank 0's draw
is broadcast, so the averaged gradient carries exactly one noise draw of the right variance).
Per-image state (persistent latents) would be gathered with :func:`gather_batch`.
The loop reports losses averaged over the processes; rank 0 alone writes checkpoints, grids
and logs, and on resume reads the checkpoint and sends its state to the others
(:func:`share_training_state`), so they start from exactly what rank 0 read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from cogenerate.distributed import World, all_reduce_mean_, broadcast_, world

__all__ = [
    "average_gradients",
    "batch_shard",
    "gather_batch",
    "mean_losses",
    "rank_generator",
    "replicate",
    "share_training_state",
    "sync_buffers",
]


def batch_shard(batch: Tensor, at: World) -> Tensor:
    """Process ``at.rank``'s contiguous ``1 / at.size`` of ``batch`` ``(B, ...)``: ``(B / size, ...)``.

    Raises:
        ValueError: ``B`` is not a multiple of the number of processes.
    """
    if batch.shape[0] % at.size:
        raise ValueError(f"--batch-size {batch.shape[0]} must be a multiple of the {at.size} processes")
    per_rank = batch.shape[0] // at.size
    return batch[at.rank * per_rank:(at.rank + 1) * per_rank]


def gather_batch(shard: Tensor, at: World) -> Tensor:
    """The inverse of :func:`batch_shard`: every process's ``(B / size, ...)`` shard, concatenated
    in rank order into the global ``(B, ...)`` batch, on every process.

    For per-image state kept across iterations (e.g. persistent latents, one row per training
    image, as ABP-style learning keeps them): each process updates the rows of its shard and
    ``table[index] = gather_batch(rows, at)`` writes every process's rows on every process, so
    the table stays the same everywhere. With one process, ``shard`` itself.
    """
    if not at.distributed:
        return shard
    parts = [torch.empty_like(shard) for _ in range(at.size)]
    torch.distributed.all_gather(parts, shard.contiguous())
    return torch.cat(parts)


def rank_generator(shared: torch.Generator, at: World, *, into: torch.Generator | None = None) -> torch.Generator:
    """A generator of this process's own, seeded from the ``shared`` one and the rank.

    Draws ``at.size`` seeds from ``shared`` (the same draw on every process, so ``shared`` stays
    in step everywhere) and seeds ``into`` (or a new generator on ``shared``'s device) with
    seed number ``at.rank``. Called once per iteration, it makes each process's step randomness
    a function of the run's seed, the iteration and the rank only, which is what a resumed run
    needs: the checkpoint holds only ``shared``'s state.
    """
    seeds = torch.randint(0, 2**62, (at.size,), generator=shared, device=shared.device)
    generator = into if into is not None else torch.Generator(device=shared.device)
    return generator.manual_seed(int(seeds[at.rank]))


def average_gradients(modules: Iterable[nn.Module]) -> list[RemovableHandle]:
    """Make every ``backward()`` end by averaging, over the processes, the gradients it accumulated.

    A post-accumulate-grad hook on each parameter of ``modules`` records the parameters a
    backward pass reaches; when the pass ends (a callback queued on the autograd engine, the
    mechanism DDP itself uses) their ``.grad`` are averaged in one flat all-reduce per device
    and dtype, in the parameters' order in ``modules`` (so every process sends the same
    message whatever order autograd reached them in). A second backward into the same
    ``.grad`` averages the sum again, which adds the mean of the new gradients: averaging is
    linear. ``torch.autograd.grad`` accumulates nothing and is left alone.

    Returns the hooks' handles: ``handle.remove()`` undoes it.
    """
    parameters = list({id(p): p for module in modules for p in module.parameters() if p.requires_grad}.values())
    order = {id(parameter): position for position, parameter in enumerate(parameters)}
    reached: dict[int, Tensor] = {}

    def average() -> None:
        grads = [reached[position].grad for position in sorted(reached)]
        reached.clear()
        all_reduce_mean_([grad for grad in grads if grad is not None])

    def hook(parameter: Tensor) -> None:
        if not reached:  # the first parameter of this backward pass
            _ENGINE.queue_callback(average)
        reached[order[id(parameter)]] = parameter

    return [parameter.register_post_accumulate_grad_hook(hook) for parameter in parameters]


_ENGINE = torch.autograd.Variable._execution_engine  # queue_callback: run once the backward pass is done (as DDP)


def replicate(modules: Mapping[str, nn.Module]) -> list[RemovableHandle]:
    """Give every process rank 0's parameters and buffers, and average gradients after every backward.

    Returns the hooks' handles (``handle.remove()`` undoes the gradient averaging).
    """
    broadcast_([tensor for module in modules.values() for tensor in (*module.parameters(), *module.buffers())])
    return average_gradients(modules.values())


def sync_buffers(modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every process."""
    broadcast_([buffer for module in modules for buffer in module.buffers()])


def mean_losses(losses: Mapping[str, float]) -> dict[str, float]:
    """``losses`` averaged over the processes (one small all-reduce); as given with one process."""
    if not world().distributed or not losses:
        return dict(losses)
    values = mean_over(torch.tensor([float(value) for value in losses.values()], dtype=torch.float64))
    return dict(zip(losses, values.tolist(), strict=True))


def mean_over(values: Tensor) -> Tensor:
    """``values`` averaged over the processes, on a device the backend can send: the CPU for gloo,
    the current GPU for NCCL."""
    device = _collective_device()
    averaged = values.to(device)
    all_reduce_mean_([averaged])
    return averaged.to(values.device)


def share_training_state(
    optimizers: Mapping[str, torch.optim.Optimizer],
    rng: torch.Generator,
    *,
    start: int,
    state: Any,
) -> tuple[int, Any]:
    """Send rank 0's resume point to every process: the iteration, the optimizers' states, the
    shared generator's state and the step state (which rank 0 read from its checkpoint, or its
    fresh values). Returns ``(start, state)`` as rank 0 has them; loads the rest in place."""
    at = world()
    payload: list[Any] = [None]
    if at.rank == 0:
        payload[0] = {
            "start": int(start),
            "rng_state": rng.get_state(),
            "state": _to_cpu(state),
            "optimizers": {name: _to_cpu(optimizer.state_dict()) for name, optimizer in optimizers.items()},
        }
    torch.distributed.broadcast_object_list(payload, src=0, device=_collective_device())
    shared = payload[0]
    if at.rank != 0:
        rng.set_state(shared["rng_state"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(shared["optimizers"][name])
    return shared["start"], state if at.rank == 0 else shared["state"]


def _collective_device() -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _to_cpu(value: Any) -> Any:
    """Tensors in nested dicts, lists and tuples moved to the CPU (what any process can unpickle)."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value
