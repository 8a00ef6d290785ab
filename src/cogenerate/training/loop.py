"""The one training loop of every model family: steps, checkpoints, sample grids, resume.

:func:`train` runs a :class:`~cogenerate.training.families.Family`'s step for a number of
iterations. All randomness (data batches and whatever the step draws) comes from the ``rng``
argument, whose state is saved in every checkpoint together with the optimizers' state and
the step's own state, so a run that is killed and resumed from its latest checkpoint ends
with the same weights as an uninterrupted run. The loop never prints: progress is reported
through ``on_step``.

In a torch.distributed process group of several processes (``torchrun``), the same call on
every process trains data-parallel: each process steps on its own shard of every batch and
the gradients of every backward pass are averaged over the processes; rank 0 alone writes
checkpoints and grids (:mod:`cogenerate.training.distributed` says how and why).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from cogenerate.checkpoint import (
    CheckpointError,
    checkpoint_files,
    delete_checkpoint,
    list_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)
from cogenerate.distributed import barrier, world
from cogenerate.training import distributed
from cogenerate.training.families import Family, get_family

__all__ = ["GRID_SCALE", "SAMPLES_FOLDER", "TrainResult", "checkpoint_name", "nan_losses", "train", "write_grid"]

SAMPLES_FOLDER = "samples"
"""Sub-folder of the checkpoint folder that holds the sample grids."""

GRID_SCALE = 2
"""Each grid pixel is repeated this many times (28 px digits are hard to see at 1×)."""


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    Attributes:
        iteration: the iteration the modules are at now.
        start_iteration: where this call started (0, or the iteration resumed from).
        losses: the losses of the last iteration run (``{}`` if none ran).
        resumed_from: the checkpoint resumed from, or None.
        checkpoint: the last checkpoint written (or resumed from), or None.
        grid: the last sample grid written by this call, or None.
        seconds: wall time of the call.
    """

    iteration: int
    start_iteration: int
    losses: dict[str, float]
    resumed_from: Path | None
    checkpoint: Path | None
    grid: Path | None
    seconds: float


def checkpoint_name(iteration: int) -> str:
    """File prefix of the checkpoint written after ``iteration`` updates: ``iter_0001500``."""
    return f"iter_{iteration:07d}"


def train(
    family: str | Family,
    modules: Mapping[str, nn.Module],
    sample_data: Callable[[int, torch.Generator], Tensor],
    *,
    iterations: int,
    settings: Mapping[str, Any],
    rng: torch.Generator,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    keep: Sequence[int] = (),
    resume: bool = True,
    config: Mapping[str, Any] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    grid_latents: Tensor | None = None,
) -> TrainResult:
    """Train ``modules`` in place with ``family``'s step for ``iterations`` iterations.

    Each iteration draws a real batch ``sample_data(settings["batch_size"], rng)``, moves it
    to the device and dtype of the generator's parameters (of the first module that has
    parameters if there is no ``"generator"``), and calls ``family.step``. The optimizers come
    from ``family.make_optimizers(modules, settings)``.

    Checkpoints (``<checkpoint_dir>/iter_<n:07d>``, see :mod:`cogenerate.checkpoint`: the
    modules under their roles, optimizer, rng and step state in ``.optim.pt``) are written
    after every ``checkpoint_every``-th iteration, after each iteration listed in ``keep``,
    and after the last one. A periodic checkpoint not listed in ``keep`` is deleted once a
    newer checkpoint has been written, so the folder holds the ``keep`` ones, the final one
    and at most one periodic one. With ``grid_latents``, every checkpoint comes with a grid
    of ``generator(grid_latents)`` (eval mode) in ``<checkpoint_dir>/samples/iter_<n:07d>.png``.

    Several processes (a torch.distributed default group of size N > 1, e.g. under
    ``torchrun``): every process makes the same call with the same seed. Each iteration draws
    the global batch of ``batch_size`` from ``rng`` on every process, each keeps its own
    ``batch_size / N`` images, and the step draws its randomness from a generator of the
    process's own, seeded from ``rng`` and the rank; gradients are averaged over the processes
    after every backward pass and rank 0's buffers copied to the others, so the modules stay
    equal everywhere (:mod:`cogenerate.training.distributed`). Rank 0 alone resumes from and
    writes checkpoints and grids; ``on_step`` gets the losses averaged over the processes on
    every process. The same seed and number of processes give the same result; one process is
    exactly the single-process loop.

    Args:
        family: a :class:`~cogenerate.training.families.Family` or a registered name.
        modules: role -> module, as ``family.step`` expects them.
        sample_data: ``sample_data(n, rng) -> (n, *x_shape)`` real batch; must draw all its
            randomness from ``rng`` for runs to be reproducible.
        iterations: total number of iterations, counting those of a resumed run.
        settings: what ``family.step`` / ``make_optimizers`` read, with ``batch_size``
            (see :func:`~cogenerate.training.families.resolve_settings`); JSON-serialisable,
            stored in each checkpoint as ``"train_settings"``.
        rng: source of all randomness of the loop. On resume its state is replaced by the
            state saved in the checkpoint.
        checkpoint_dir: where to write checkpoints; None writes none.
        checkpoint_every: period of the periodic checkpoints; None: only ``keep`` and final.
        keep: iterations whose checkpoints are written and kept.
        resume: if ``checkpoint_dir`` holds checkpoints, continue from the latest one whose
            iteration is at most ``iterations`` (weights, optimizer state, iteration, rng and
            step state). The modules passed in must have the checkpoint's architecture.
        config: extra JSON-serialisable keys stored in each checkpoint's JSON (e.g. the data
            set); the loop adds ``"family"`` and ``"train_settings"``, and the keys of
            ``family.checkpoint_config(settings)``.
        on_step: called as ``on_step(iteration, losses)`` after each iteration (and after its
            checkpoint and grid are written); 1-based iteration.
        grid_latents: ``(N, latent_dim)`` latents on the generator's device for the sample
            grids; None writes no grids.

    Returns:
        A :class:`TrainResult`.

    Raises:
        CheckpointError: a checkpoint to resume from is unreadable or does not match.
        ValueError: a negative ``iterations``, a ``batch_size`` or ``checkpoint_every`` < 1, a
            ``batch_size`` that is not a multiple of the number of processes.
    """
    family = get_family(family)
    batch_size = int(settings["batch_size"])
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 or None, got {checkpoint_every}")
    at = world()
    if batch_size % at.size:
        raise ValueError(f"--batch-size {batch_size} must be a multiple of the {at.size} processes")
    device, dtype = _device_and_dtype(modules)
    started = time.perf_counter()

    optimizers = family.make_optimizers(modules, settings)
    state = family.init_state(modules, settings) if family.init_state is not None else None
    keep_set = {int(k) for k in keep}
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    run_config = dict(config or {})
    run_config["family"] = family.name
    run_config["train_settings"] = dict(settings)
    if family.checkpoint_config is not None:
        run_config.update(family.checkpoint_config(settings))

    start = 0
    resumed_from: Path | None = None
    last_checkpoint: Path | None = None
    previous_periodic: Path | None = None
    if directory is not None and resume and at.writes:
        candidates = [(it, prefix) for it, prefix in list_checkpoints(directory) if it <= iterations]
        if candidates:
            start, resumed_from = candidates[-1]
            saved = restore_checkpoint(resumed_from, modules, optimizers=optimizers)
            if saved.rng_state is None:
                raise CheckpointError(
                    f"{checkpoint_files(resumed_from)['training_state']}: no rng state saved, cannot resume deterministically"
                )
            rng.set_state(saved.rng_state)
            if saved.step_state is not None:
                state = saved.step_state
            last_checkpoint = resumed_from
            if start not in keep_set and start != iterations:
                previous_periodic = resumed_from
    step_rng = rng
    hooks: list[Any] = []
    if at.distributed:  # rank 0's weights, optimizer states, rng and step state everywhere
        hooks = distributed.replicate(modules)
        start, state = distributed.share_training_state(optimizers, rng, start=start, state=state)
        if start > 0 and directory is not None:
            resumed_from = last_checkpoint = directory / checkpoint_name(start)
        step_rng = torch.Generator(device=rng.device)

    for module in modules.values():
        module.train()
    losses: dict[str, float] = {}
    last_grid: Path | None = None
    try:
        for iteration in range(start + 1, iterations + 1):
            real = sample_data(batch_size, rng)
            if at.distributed:
                real = distributed.batch_shard(real, at)
                distributed.rank_generator(rng, at, into=step_rng)
            state, losses = family.step(modules, optimizers, real.to(device=device, dtype=dtype), step_rng, state)
            if at.distributed:
                distributed.sync_buffers(modules.values())
                losses = distributed.mean_losses(losses)

            periodic = checkpoint_every is not None and iteration % checkpoint_every == 0
            if directory is not None and (periodic or iteration in keep_set or iteration == iterations):
                written = directory / checkpoint_name(iteration)
                grid = directory / SAMPLES_FOLDER / f"{checkpoint_name(iteration)}.png"
                if at.writes:
                    written = save_checkpoint(
                        written,
                        modules,
                        run_config,
                        optimizers=optimizers,
                        rng_state=rng.get_state(),
                        step_state=state,
                        iteration=iteration,
                    )
                    if previous_periodic is not None and previous_periodic != written:
                        delete_checkpoint(previous_periodic)
                    previous_periodic = written if iteration not in keep_set and iteration != iterations else None
                    if grid_latents is not None:
                        write_grid(modules["generator"], grid_latents, grid)
                last_checkpoint = written
                last_grid = grid if grid_latents is not None else None
            if on_step is not None:
                on_step(iteration, losses)
    finally:
        for hook in hooks:
            hook.remove()
    barrier()  # rank 0's last checkpoint is written before any process returns

    return TrainResult(
        iteration=max(start, iterations),
        start_iteration=start,
        losses=dict(losses),
        resumed_from=resumed_from,
        checkpoint=last_checkpoint,
        grid=last_grid,
        seconds=time.perf_counter() - started,
    )


def write_grid(generator: nn.Module, latents: Tensor, path: Path) -> Path:
    """Write a PNG grid of ``generator(latents)`` (in eval mode, then back to its mode) to ``path``.

    ``latents`` is ``(N, latent_dim)``; the images ``(N, C, H, W)`` in ``[-1, 1]`` are tiled
    ``ceil(sqrt(N))`` per row, each pixel repeated :data:`GRID_SCALE` times.
    """
    from cogenerate.plotting import save_image_grid  # matplotlib-free, but keep the loop's imports light

    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        images = generator(latents)
    generator.train(was_training)
    return save_image_grid(images, path, scale=GRID_SCALE)


def nan_losses(family: str | Family) -> dict[str, float]:
    """``{loss name: nan}`` for every loss of ``family`` (what a run that took no step reports)."""
    return {name: math.nan for name in get_family(family).losses}


def _device_and_dtype(modules: Mapping[str, nn.Module]) -> tuple[torch.device, torch.dtype]:
    ordered = [modules["generator"]] if "generator" in modules else []
    ordered += [module for name, module in modules.items() if name != "generator"]
    for module in ordered:
        for parameter in module.parameters():
            return parameter.device, parameter.dtype
    raise ValueError("train needs at least one module with parameters")
