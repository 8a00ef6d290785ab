"""``cogen train``: train a model family on an image data set, with resumable checkpoints.

The work is :func:`cogenerate.training.runs.plan_run` / :func:`~cogenerate.training.runs.train_run`;
this module parses the arguments, shows progress and prints where the files went. Each
registered family's own options (:attr:`cogenerate.training.families.Family.options`) become
flags here, so a new family needs no change to this file.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from cogenerate.cli.common import command_line, progress_bar, setup
from cogenerate.training.families import COMMON_SETTINGS, FAMILIES, Option, family_names
from cogenerate.training.runs import (
    BUILTIN_DATASETS,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_FAMILY,
    DEFAULT_ITERATIONS,
    LOSSES_FILE,
    plan_run,
    train_run,
)

__all__ = ["register", "run"]


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen train`` through ``command(name, help, description, epilog)``."""
    names = family_names()
    families = "\n".join(f"  {name:<12} {FAMILIES[name].description}" for name in names)
    parser = command(
        "train", "train a model (default: a DCGAN) on an image data set, with resumable checkpoints",
        "Train a model family (--family; default: a DCGAN, Radford et al. 2016: non-saturating GAN\n"
        "loss, Adam lr 2e-4, betas (0.5, 0.999)) on the training split of a data set. Every\n"
        "--checkpoint-every iterations it writes a checkpoint (OUT/iter_NNNNNNN.safetensors + .json +\n"
        ".optim.pt) and a grid of samples from fixed latents (OUT/samples/iter_NNNNNNN.png), and\n"
        "appends the losses to OUT/losses.csv. Run the same command again after an interruption\n"
        "and it resumes from the latest checkpoint in OUT (same result as an uninterrupted run);\n"
        "options left out are then taken from that checkpoint, so `cogen train --out OUT\n"
        "--iterations N` extends a finished run to N iterations.",
        "examples:\n"
        "  cogen train --data fashion-mnist --out runs/fm --iterations 6000 --checkpoint-every 500\n"
        "  cogen train --data mnist --out runs/mnist --width 32 --latent-dim 64\n"
        "  cogen train --data ~/photos --size 64 --channels 3 --out runs/photos\n"
        "  cogen train --out runs/fm --iterations 10000   # continue a run\n"
        "  torchrun --nproc-per-node 4 -m cogenerate train --data fashion-mnist --out runs/fm4 --device cuda\n"
        "      # data-parallel on 4 GPUs: each takes 1/4 of every --batch-size batch (docs/distributed.md)\n"
        f"\ndata sets: {', '.join(BUILTIN_DATASETS[:-1])}, {BUILTIN_DATASETS[-1]} (8×8, resized), or a folder of images.\n"
        f"\nfamilies (--family):\n{families}",
    )
    parser.add_argument("--family", default=None,
                        help=f"model family: {', '.join(names)} (default: {DEFAULT_FAMILY}, or the resumed run's)")
    parser.add_argument("--data", default=None, help="fashion-mnist, mnist, digits or a folder of images")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, sample grids, losses.csv)")
    parser.add_argument("--size", type=int, choices=(28, 32, 64), default=None,
                        help="image side (default: 28 for the built-in sets, 64 for a folder)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=None,
                        help="1 (grey) or 3 (RGB) (default: the data's own)")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"total iterations, counting resumed ones (default: {DEFAULT_ITERATIONS}, "
                             "or the resumed run's)")
    for name, option in COMMON_SETTINGS.items():
        _add_option(parser, name, option, option.help)
    group = parser.add_argument_group("options of the families (only those of the run's family may be given)")
    for name, (option, owners) in _family_options().items():
        _add_option(group, name, option, f"{'/'.join(owners)}: {option.help}{_other_defaults(name, option)}")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help=f"checkpoint and sample grid every K iterations (default: {DEFAULT_CHECKPOINT_EVERY})")
    parser.add_argument("--keep-every", type=int, default=None,
                        help="keep the checkpoints at multiples of M (default: all); 0 keeps only the latest")
    parser.set_defaults(handler=run, setting_names=[*COMMON_SETTINGS, *_family_options()])


def run(args: argparse.Namespace) -> int:
    device = setup(args)
    given: dict[str, Any] = {
        "family": args.family, "data": args.data, "size": args.size, "channels": args.channels, "seed": args.seed,
        "iterations": args.iterations, "checkpoint_every": args.checkpoint_every, "keep_every": args.keep_every,
    }
    given.update({name: getattr(args, name) for name in args.setting_names})
    plan = plan_run(args.out, given, command=command_line(args))
    label = FAMILIES[plan.family].label
    started = time.perf_counter()
    with progress_bar(args, total=plan.iterations, initial=plan.start, desc="train", unit="it") as bar:

        def on_step(iteration: int, losses: dict[str, float]) -> None:
            bar.update(1)
            if iteration % 10 == 0 or iteration == plan.iterations:
                bar.set_postfix({name: f"{value:.3f}" for name, value in losses.items()}, refresh=False)

        result = train_run(plan, device=device, on_step=on_step)
    seconds = time.perf_counter() - started
    if result.start_iteration >= plan.iterations:
        print(f"{plan.out} is already trained to {plan.iterations} iterations; nothing to do "
              f"(ask for more with --iterations)")
    else:
        resumed = f" (resumed from iteration {result.start_iteration})" if result.resumed_from else ""
        losses = ", ".join(f"{name} {value:.4f}" for name, value in result.losses.items())
        print(f"trained {plan.settings['data']} {label} to iteration {result.iteration}{resumed} in {seconds:.0f} s: "
              f"{losses}")
    print(f"  checkpoint: {result.checkpoint}")
    if result.grid is not None:
        print(f"  samples: {result.grid}")
    print(f"  losses: {plan.out / LOSSES_FILE}")
    return 0


def _family_options() -> dict[str, tuple[Option, list[str]]]:
    """Every family's options: name -> (the definition of the default family, else of the first
    family that has it, and the families that have it)."""
    options: dict[str, tuple[Option, list[str]]] = {}
    for name in sorted(family_names(), key=lambda family_name: family_name != DEFAULT_FAMILY):
        family = FAMILIES[name]
        for option_name, option in family.options.items():
            options.setdefault(option_name, (option, []))[1].append(family.label)
    return {name: (option, sorted(owners)) for name, (option, owners) in options.items()}


def _other_defaults(name: str, shown: Option) -> str:
    """`` [BEGAN: 0.0001]`` for the families whose default of option ``name`` differs from ``shown``'s."""
    others = [f"{FAMILIES[family].label}: {FAMILIES[family].options[name].default:g}"
              if isinstance(FAMILIES[family].options[name].default, float)
              else f"{FAMILIES[family].label}: {FAMILIES[family].options[name].default}"
              for family in family_names()
              if name in FAMILIES[family].options and FAMILIES[family].options[name].default != shown.default]
    return f" [{', '.join(others)}]" if others else ""


def _add_option(parser: Any, name: str, option: Option, help_text: str) -> None:
    """``--name`` for a setting; its default is None (= not given), the real default is in the help."""
    kind = option.value_type
    parser.add_argument(
        "--" + name.replace("_", "-"), dest=name, default=None, choices=option.choices,
        type=_parse_bool if kind is bool else kind, help=f"{help_text} (default: {option.default:g})"
        if isinstance(option.default, float) else f"{help_text} (default: {option.default})",
    )


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
