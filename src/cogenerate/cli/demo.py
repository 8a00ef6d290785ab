"""``cogen demo``: train the paper's toy GAN and compare the methods on it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from cogenerate.cli.common import seed_of, setup
from cogenerate.cli.reproduce import TOY_THREADS, run_experiment

__all__ = ["register", "run"]


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen demo`` through ``command(name, help, description, epilog)``."""
    parser = command(
        "demo", "train the paper's toy GAN and compare gd, ais and smc (about 2 minutes)",
        "Train the toy GAN of Fang & Schwing (2019, §3.1) on a ring of five Gaussians, then\n"
        "co-generate x1 given x2 = 0 (true answer: (1, 0)) with gradient descent, AIS and SMC\n"
        "from 100 chains each. Writes the figures and a results table, and prints the table.\n"
        "Runs on one CPU thread unless --threads says otherwise (the models are tiny).",
        "examples:\n"
        "  cogen demo\n"
        "  cogen demo --out /tmp/demo --iterations 5000\n"
        "\nThe full reproduction (four checkpoints, 6,000-step AIS as in the paper's Fig. 3) is\n"
        "`cogen reproduce toy`.",
    )
    parser.add_argument("--out", default="cogen-demo", help="output folder (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=15000,
                        help="toy GAN training iterations (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cogenerate.experiments.toy import ToyConfig, reproduce_toy

    setup(args, default_threads=TOY_THREADS)
    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    config = ToyConfig(iterations=(args.iterations,), ais={"steps": 1000, "leapfrog": 10}, seed=seed_of(args))
    run_experiment(args, reproduce_toy, Path(args.out), config, "toy demo")
    return 0
