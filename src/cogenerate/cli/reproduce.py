"""``cogen reproduce``: the paper's experiments (toy, images) as library calls, files into --out."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cogenerate.cli.common import StageBars, print_files, setup
from cogenerate.distributed import world

__all__ = ["TOY_THREADS", "register", "run", "run_experiment"]

# The toy GAN's 128-wide MLPs gain nothing from intra-op threads: on 2 cores, one thread ran
# `cogen demo` in 80 s where torch's default (2) took 178 s. --threads overrides it.
TOY_THREADS = 1


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen reproduce`` through ``command(name, help, description, epilog)``."""
    parser = command(
        "reproduce", "reproduce the paper's experiments (toy, images)",
        "Reproduce an experiment of the report: figures, a results table (markdown + JSON)\n"
        "and the checkpoints it trains are written to --out.",
        "examples:\n"
        "  cogen reproduce toy --quick                 # a few minutes\n"
        "  cogen reproduce toy --out results/toy       # the full run (long)\n"
        "  cogen reproduce images --quick\n"
        "  torchrun --nproc-per-node 2 -m cogenerate reproduce images --quick   # images shared out over 2 processes\n"
        "  cogen reproduce triangle --quick            # the divergence triangle's figures\n"
        "  cogen reproduce images --set checkpoints=runs/fm --set 'iterations=[2000,4000,6000]' --set images=30\n"
        "  cogen reproduce toy --set chains=50 --set 'ais={\"steps\": 2000, \"leapfrog\": 10}'",
    )
    parser.add_argument("experiment", choices=("toy", "images", "triangle"), help="which experiment")
    parser.add_argument("--out", default=None, help="output folder (default: cogen-<experiment>)")
    parser.add_argument("--quick", action="store_true", help="the small configuration (for a quick look / CI)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the experiment's config; VALUE is JSON (or a bare string); repeatable")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    setup(args, default_threads=TOY_THREADS if args.experiment == "toy" else None)
    if args.experiment != "images" and world().distributed:
        raise ValueError(f"`cogen reproduce {args.experiment}` runs on one process; under torchrun only "
                         "`reproduce images` shares its work out")
    out = Path(args.out or f"cogen-{args.experiment}")
    if args.experiment == "toy":
        from cogenerate.experiments.toy import ToyConfig, reproduce_toy

        config_class, experiment = ToyConfig, reproduce_toy
    elif args.experiment == "triangle":
        from cogenerate.experiments.triangle import TriangleConfig, reproduce_triangle

        config_class, experiment = TriangleConfig, reproduce_triangle
    else:
        try:
            from cogenerate.experiments.images import ImagesConfig, reproduce_images
        except ModuleNotFoundError as error:
            if error.name not in ("cogenerate.experiments.images", "cogenerate.experiments"):
                raise
            raise ValueError(
                "`cogen reproduce images` needs cogenerate.experiments.images, which this installation "
                "does not have yet"
            ) from None
        config_class, experiment = ImagesConfig, reproduce_images
    config = config_class.quick() if args.quick else config_class()
    config = override(config, args.overrides)
    if args.seed is not None and any(f.name == "seed" for f in dataclasses.fields(config)):
        config = dataclasses.replace(config, seed=args.seed)
    run_experiment(args, experiment, out, config, f"{args.experiment} reproduction")
    return 0


def override(config: Any, overrides: Sequence[str]) -> Any:
    """Apply ``KEY=VALUE`` overrides (VALUE parsed as JSON, else a string) to a config dataclass."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in fields:
            raise ValueError(f"--set {key}: {type(config).__name__} has no field {key!r}; fields: {', '.join(fields)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(getattr(config, key), tuple) and isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return dataclasses.replace(config, **changes) if changes else config


def run_experiment(args: argparse.Namespace, experiment: Callable[..., Mapping[str, Any]], out: Path,
                   config: Any, label: str) -> Mapping[str, Any]:
    """Run ``experiment(out, config=..., progress=...)`` with one progress bar per stage, print its
    table and files; returns the experiment's result."""
    started = time.perf_counter()
    bars = StageBars(args)
    try:
        result = experiment(out, config=config, progress=bars)
    finally:
        bars.close()
    seconds = time.perf_counter() - started
    rows = result.get("rows") if isinstance(result, Mapping) else None
    if rows:
        from cogenerate.experiments.toy import markdown_table

        print(markdown_table(rows))
    print(f"{label} finished in {seconds:.0f} s; files:")
    files = result.get("files", {}) if isinstance(result, Mapping) else {}
    print_files(files if files else {"folder": out})
    return result
