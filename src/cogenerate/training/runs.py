"""Training runs: a registered family trained on an image set into a run folder.

A run folder (what ``cogen train --out`` names) holds

``iter_NNNNNNN.{safetensors,json,optim.pt}``
    checkpoints (:mod:`cogenerate.checkpoint`); the JSON records the family, the data set,
    the image shape, the command lines and the run's settings under ``"cogen_train"``;
``samples/iter_NNNNNNN.png``
    a grid of samples from fixed latents with every checkpoint;
``losses.csv``
    ``iteration,<loss names>`` for every iteration run.

:func:`train_family` trains a family on a tensor of images into such a folder, resuming from
its latest checkpoint. :func:`plan_run` and :func:`train_run` add what ``cogen train`` does
around it: settings merged with those of the run being resumed (which a resumed run may not
change), data sets by name, the command lines recorded. The command line itself only parses
arguments and prints.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from cogenerate.checkpoint import checkpoint_files, list_checkpoints
from cogenerate.distributed import world
from cogenerate.training.families import COMMON_SETTINGS, RUN_SETTINGS, Family, get_family, resolve_settings
from cogenerate.training.loop import TrainResult, train

__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_FAMILY",
    "DEFAULT_ITERATIONS",
    "GRID_LATENTS",
    "GRID_SEED_OFFSET",
    "LOSSES_FILE",
    "RUN_SETTINGS",
    "RunPlan",
    "plan_run",
    "train_family",
    "train_run",
]

DEFAULT_FAMILY = "dcgan"
DEFAULT_ITERATIONS = 5000
DEFAULT_CHECKPOINT_EVERY = 500
BUILTIN_DATASETS = ("fashion-mnist", "mnist", "digits")
GRID_LATENTS = 64
"""Sample-grid images written with every checkpoint (an 8×8 grid)."""
GRID_SEED_OFFSET = 7919
"""The grid latents come from their own generator, seeded ``seed + GRID_SEED_OFFSET`` (a prime,
so they share no stream with the run's own ``seed``)."""
LOSSES_FILE = "losses.csv"

_EXTENDABLE = ("checkpoint_every", "keep_every", "iterations")  # a resumed run may change these


class RunPlan(NamedTuple):
    """A checked ``cogen train`` run, before any data is loaded (see :func:`plan_run`).

    Attributes:
        out: the run folder.
        family: the family's registered name.
        settings: everything the run is defined by, as stored under ``"cogen_train"``:
            :data:`RUN_SETTINGS` and the family's settings.
        start: the iteration it resumes from (0 for a new run).
        commands: the command lines of the run so far, this one last.
    """

    out: Path
    family: str
    settings: dict[str, Any]
    start: int
    commands: list[str]

    @property
    def iterations(self) -> int:
        return int(self.settings["iterations"])


def train_family(
    family: str | Family,
    data: Tensor,
    *,
    out: str | Path,
    iterations: int,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    keep_every: int | None = None,
    config: Mapping[str, Any] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a new ``family`` model on ``data`` into the run folder ``out``, or resume it there.

    The parts come from ``family.build(settings, image_shape, rng)`` with
    ``rng = torch.Generator().manual_seed(seed)`` (which then draws the batches and latents),
    and are moved to ``data``'s device. Batches are drawn uniformly with replacement. The
    grid latents are :data:`GRID_LATENTS` standard-normal draws from a generator seeded
    ``seed + GRID_SEED_OFFSET``. Checkpoints are written every ``checkpoint_every`` iterations
    and at the end; those at multiples of ``keep_every`` (default: ``checkpoint_every``; 0:
    none) and the final one are kept. ``losses.csv`` drops what a killed run logged after its
    last checkpoint before it resumes, so it always matches an uninterrupted run.

    On several processes (``torchrun``; :func:`~cogenerate.training.loop.train`), every process
    makes this call with the same ``data`` and ``seed`` and trains on its shard of each batch;
    rank 0 alone writes the run folder, and ``losses.csv`` holds the losses averaged over the
    processes.

    Args:
        family: a :class:`~cogenerate.training.families.Family` with a ``build`` or its name.
        data: training images ``(N, C, H, W)`` in ``[-1, 1]``, on the device to train on.
        out: run folder (created).
        iterations: total iterations, counting those of a resumed run.
        seed: seeds initialisation, batches and latents.
        settings: common settings and the family's options; missing ones take their defaults
            (:func:`~cogenerate.training.families.resolve_settings`).
        checkpoint_every: period of the checkpoints and sample grids.
        keep_every: keep the checkpoints at multiples of this (None: ``checkpoint_every``).
        config: extra JSON keys for every checkpoint (e.g. ``{"dataset": "mnist"}``).
        on_step: ``on_step(iteration, losses)`` after every iteration.

    Returns:
        The loop's :class:`~cogenerate.training.loop.TrainResult`.

    Raises:
        ValueError: bad settings or data, or ``out`` holds a checkpoint beyond ``iterations``.
        CheckpointError: the checkpoint to resume from is unreadable or does not fit.
    """
    family = get_family(family)
    if family.build is None:
        raise ValueError(f"the {family.label} family cannot build its parts (no `build`), so it cannot train from scratch")
    resolved = resolve_settings(family, settings)
    if data.dim() != 4 or data.shape[0] < 1:
        raise ValueError(f"data must be a non-empty batch of images (N, C, H, W), got shape {tuple(data.shape)}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    keep_every = checkpoint_every if keep_every is None else int(keep_every)
    if keep_every < 0:
        raise ValueError(f"keep_every must be >= 0, got {keep_every}")
    out = Path(out)
    existing = [it for it, _ in list_checkpoints(out)]
    if existing and existing[-1] > iterations:
        raise ValueError(f"{out} already holds a checkpoint at iteration {existing[-1]} > iterations {iterations}")

    rng = torch.Generator().manual_seed(int(seed))  # initialisation, batches and latents
    image_shape = tuple(int(n) for n in data.shape[1:])
    modules = family.build(resolved, image_shape, rng)
    for module in modules.values():
        module.to(data.device)
    grid_latents = torch.randn(GRID_LATENTS, int(resolved["latent_dim"]),
                               generator=torch.Generator().manual_seed(int(seed) + GRID_SEED_OFFSET)).to(data.device)

    def sample_data(n: int, data_rng: torch.Generator) -> Tensor:
        index = torch.randint(0, data.shape[0], (n,), generator=data_rng, device=data_rng.device)
        return data[index.to(data.device)]

    keep = range(keep_every, iterations + 1, keep_every) if keep_every > 0 else ()
    run_config: dict[str, Any] = {
        "image_size": image_shape[-1],
        "channels": image_shape[0],
        "latent_dim": int(resolved["latent_dim"]),
        "x_shape": list(image_shape),
        "train_images": int(data.shape[0]),
        **dict(config or {}),
    }
    start = max((it for it in existing if it <= iterations), default=0)
    losses_file = out / LOSSES_FILE
    writes = world().writes  # on several processes, rank 0 alone writes the run folder
    if writes:
        _truncate_losses(losses_file, start)
        out.mkdir(parents=True, exist_ok=True)
    with open(losses_file, "a", encoding="utf-8") if writes else contextlib.nullcontext() as log:
        if start == 0 and log is not None:
            log.write(",".join(("iteration", *family.losses)) + "\n")

        def log_step(iteration: int, losses: dict[str, float]) -> None:
            if log is not None:
                log.write(",".join([str(iteration), *(f"{losses[name]:.6g}" for name in family.losses)]) + "\n")
                if iteration % checkpoint_every == 0 or iteration == iterations:
                    log.flush()
            if on_step is not None:
                on_step(iteration, losses)

        return train(
            family, modules, sample_data, iterations=iterations, settings=resolved, rng=rng, checkpoint_dir=out,
            checkpoint_every=checkpoint_every, keep=keep, resume=True, config=run_config, on_step=log_step,
            grid_latents=grid_latents,
        )


def plan_run(out: str | Path, given: Mapping[str, Any], *, command: str | None = None) -> RunPlan:
    """Check a ``cogen train`` request against the run folder ``out`` before loading any data.

    A new run takes the given settings and the defaults for the rest (``family``
    :data:`DEFAULT_FAMILY`, ``seed`` 0, ``iterations`` :data:`DEFAULT_ITERATIONS`,
    ``checkpoint_every`` :data:`DEFAULT_CHECKPOINT_EVERY`, ``size`` 28 for the built-in data
    sets and 64 for a folder, the family's option defaults). A run that resumes takes its
    settings from its latest checkpoint: given ones must equal them, except ``iterations``,
    ``checkpoint_every`` and ``keep_every``, which it may change.

    Args:
        out: the run folder.
        given: setting name -> value, ``None`` when not given: :data:`RUN_SETTINGS`, the common
            settings and any family's options (only those of the run's family may be given).
        command: this command line, recorded in the checkpoints.

    Returns:
        A :class:`RunPlan`.

    Raises:
        ValueError: one line, naming settings by their command-line flags (``--width``).
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    existing = list_checkpoints(out)
    previous_config = _read_json(checkpoint_files(existing[-1][1])["config"]) if existing else None
    if previous_config is not None and "cogen_train" not in previous_config:
        raise ValueError(f"{out} holds checkpoints not written by `cogen train`; choose another --out")
    given = {key: value for key, value in given.items() if value is not None}
    if "data" in given and given["data"] not in BUILTIN_DATASETS:  # a folder: stored absolute, to resume from anywhere
        given["data"] = str(Path(given["data"]).expanduser().resolve())
    family_given = {key: value for key, value in given.items() if key not in RUN_SETTINGS}

    if previous_config is None:
        if "data" not in given:
            raise ValueError(f"--data is required to start a new run ({out} holds no checkpoint)")
        family = get_family(given.get("family", DEFAULT_FAMILY))
        resolved = resolve_settings(family, family_given)
        settings: dict[str, Any] = {
            "family": family.name, "data": given["data"], "size": given.get("size"), "channels": given.get("channels"),
            **resolved, "seed": given.get("seed", 0), "checkpoint_every": given.get("checkpoint_every", DEFAULT_CHECKPOINT_EVERY),
            "keep_every": given.get("keep_every"), "iterations": given.get("iterations", DEFAULT_ITERATIONS),
        }
    else:
        previous = dict(previous_config["cogen_train"])
        previous.setdefault("family", DEFAULT_FAMILY)  # runs from before the family registry
        family = get_family(previous["family"])
        resolve_settings(family, family_given)  # a flag of another family, or a bad value: say so first
        identity = [key for key in (*RUN_SETTINGS, *COMMON_SETTINGS, *family.options) if key not in _EXTENDABLE]
        clashes = [
            f"--{key.replace('_', '-')} {given[key]} (run: {previous.get(key)})"
            for key in identity
            if key in given and given[key] != previous.get(key)
        ]
        if clashes:
            raise ValueError(
                f"{out} holds a run with other settings: {', '.join(clashes)}; repeat the run's options "
                f"(or leave them out) to resume it, or choose another --out"
            )
        # options added to the family since the run started take their defaults
        settings = {**previous, **resolve_settings(family, {k: v for k, v in previous.items() if k not in RUN_SETTINGS
                                                            and k in {*COMMON_SETTINGS, *family.options}})}
        settings.update({key: given[key] for key in _EXTENDABLE if key in given})

    for key in ("iterations", "checkpoint_every"):
        if int(settings[key]) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {settings[key]}")
    if settings["keep_every"] is not None and int(settings["keep_every"]) < 0:
        raise ValueError(f"--keep-every must be >= 0, got {settings['keep_every']}")
    iterations = int(settings["iterations"])
    if existing and existing[-1][0] > iterations:
        raise ValueError(
            f"{out} already holds a checkpoint at iteration {existing[-1][0]} > --iterations {iterations}; "
            f"ask for at least {existing[-1][0]} iterations or choose another --out"
        )
    if settings["size"] is None:
        settings["size"] = 28 if settings["data"] in BUILTIN_DATASETS else 64
    commands = list(previous_config.get("commands", [])) if previous_config else []
    if command is not None:
        commands.append(command)
    start = max((it for it, _ in existing if it <= iterations), default=0)
    return RunPlan(out=out, family=family.name, settings=settings, start=start, commands=commands)


def train_run(
    plan: RunPlan,
    *,
    device: torch.device | str | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Load the plan's data set (its training split) and run :func:`train_family` on it.

    Args:
        plan: from :func:`plan_run`.
        device: where to train (default: CPU).
        on_step: ``on_step(iteration, losses)`` after every iteration.

    Returns:
        The loop's :class:`~cogenerate.training.loop.TrainResult`.
    """
    from cogenerate.data.images import load_dataset

    settings = plan.settings
    family = get_family(plan.family)
    data_name = str(settings["data"])
    source = data_name if data_name in BUILTIN_DATASETS else str(Path(data_name).expanduser())
    data = load_dataset(source, split="train", size=int(settings["size"]), channels=settings["channels"])
    settings["channels"] = int(data.shape[1])
    config: dict[str, Any] = {"dataset": data_name}
    if plan.commands:
        config.update({"command": plan.commands[0], "commands": list(plan.commands)})
    config["cogen_train"] = settings
    return train_family(
        family,
        data.to(device) if device is not None else data,
        out=plan.out,
        iterations=plan.iterations,
        seed=int(settings["seed"]),
        settings={key: settings[key] for key in (*COMMON_SETTINGS, *family.options)},
        checkpoint_every=int(settings["checkpoint_every"]),
        keep_every=settings["keep_every"],
        config=config,
        on_step=on_step,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error})") from None


def _truncate_losses(path: Path, start: int) -> None:
    """Drop logged iterations after ``start`` (run again after a resume) from ``losses.csv``."""
    if not path.is_file():
        return
    if start == 0:
        path.unlink()
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        head = line.split(",", 1)[0]
        if not head.isdigit() or int(head) <= start:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
