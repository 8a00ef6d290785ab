"""The ``cogen`` command: a thin layer that parses arguments, calls the library, writes files.

One module per subcommand; each has ``register(command)``, which adds its parser, and
``run(args) -> int``. Errors caused by the user's input (``ValueError`` — including
:class:`~cogenerate.checkpoint.CheckpointError` — and ``OSError`` such as a missing file) are
printed as one line ``cogen: error: <message>`` on stderr with exit status 2; ``--debug``
re-raises them with the traceback. Progress bars (tqdm) go to stderr; results (tables, paths)
to stdout.

This package is the only place that prints, chooses a device or sets the number of threads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from cogenerate.cli import complete, demo, evaluate, models, reproduce, sample, serve, train
from cogenerate.cli.common import PROG, Formatter
from cogenerate.cli.distributed import process_group

__all__ = ["main", "build_parser"]

COMMANDS = (demo, reproduce, train, complete, sample, evaluate, models, serve)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cogen`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    args.argv = argv
    try:
        with process_group(args):  # under torchrun: one process of the job (cli/distributed.py)
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options accepted both before and after the subcommand (``cogen --seed 1 train`` or
    ``cogen train --seed 1``); the subcommand's copies default to SUPPRESS so that they only
    override what was given before it."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("common options")
    group.add_argument("--device", default=default("cpu"),
                       help="torch device: cpu, cuda or cuda:N (default: cpu)")
    group.add_argument("--seed", type=int, default=default(None),
                       help="random seed (default: 0; when resuming training: the run's own seed)")
    group.add_argument("--threads", type=int, default=default(None),
                       help="CPU threads for torch (default: torch's choice); 1 is fastest on a busy machine")
    group.add_argument("--quiet", action="store_true", default=default(False), help="no progress bars")
    group.add_argument("--debug", action="store_true", default=default(False),
                       help="show the full traceback of errors")


def build_parser() -> argparse.ArgumentParser:
    """The ``cogen`` argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=Formatter,
        description=(
            "cogen: complete partly observed images with a trained generator (GAN) by sampling\n"
            "its latent posterior with annealed importance sampling / SMC and Hamiltonian Monte Carlo."
        ),
        epilog=(
            "examples:\n"
            "  cogen demo                                  # toy GAN (gd vs ais vs smc) + completing shipped images, ~1 min\n"
            "  cogen models                                # shipped generators\n"
            "  cogen complete --model fashion-mnist --dataset fashion-mnist --index 7 --mask centre\n"
            "  cogen complete --model mnist --image digit.png --mask top-half --method ais\n"
            "  cogen complete --model mygan:make_generator --latent-dim 128 --image face.png --mask centre\n"
            "  cogen train --data fashion-mnist --out runs/fm --iterations 6000\n"
            "  cogen evaluate --model runs/fm --out runs/fm/eval\n"
            "  cogen reproduce toy --quick\n"
            "\n"
            "Run `cogen COMMAND --help` for the options of each command."
        ),
    )
    _add_common(parser, top=True)
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, description: str, epilog: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=description, epilog=epilog,
                                  formatter_class=Formatter)
        _add_common(sub, top=False)
        return sub

    for module in COMMANDS:
        module.register(command)
    return parser
