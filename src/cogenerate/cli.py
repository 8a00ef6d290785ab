"""The ``cogen`` command: a thin layer that parses arguments, calls the library, writes files.

Every subcommand is a function ``_cmd_<name>(args) -> int``. Errors caused by the user's
input (``ValueError`` — including :class:`~cogenerate.checkpoint.CheckpointError` —
and ``OSError`` such as a missing file) are printed as one line ``cogen: error: <message>``
on stderr with exit status 2; ``--debug`` re-raises them with the traceback. Progress bars
(tqdm) go to stderr; results (tables, paths) to stdout.

This is the only module that prints, chooses a device or sets the number of threads.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cogenerate.api import DEFAULT_METHOD, DEFAULT_NOISE_STD, METHODS

__all__ = ["main", "build_parser"]

PROG = "cogen"
DEFAULT_TRAIN_ITERATIONS = 5000
DEFAULT_CHECKPOINT_EVERY = 500
# The toy GAN's 128-wide MLPs gain nothing from intra-op threads: on 2 cores, one thread ran
# `cogen demo` in 80 s where torch's default (2) took 178 s. --threads overrides it.
TOY_THREADS = 1
BUILTIN_DATASETS = ("fashion-mnist", "mnist", "digits")
GRID_LATENTS = 64  # sample-grid images written with every training checkpoint
GRID_SEED_OFFSET = 7919  # grid latents come from their own generator seeded seed + this


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped descriptions and epilogs (help strings state their defaults)."""


# --------------------------------------------------------------------------- entry point


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


# --------------------------------------------------------------------------- parser


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
        formatter_class=_Formatter,
        description=(
            "cogen: complete partly observed images with a trained generator (GAN) by sampling\n"
            "its latent posterior with annealed importance sampling / SMC and Hamiltonian Monte Carlo."
        ),
        epilog=(
            "examples:\n"
            "  cogen demo                                  # toy GAN, gd vs ais vs smc, < 3 min\n"
            "  cogen models                                # shipped generators\n"
            "  cogen complete --model fashion-mnist --dataset fashion-mnist --index 7 --mask centre\n"
            "  cogen complete --model mnist --image digit.png --mask top-half --method ais\n"
            "  cogen train --data fashion-mnist --out runs/fm --iterations 6000\n"
            "  cogen reproduce toy --quick\n"
            "\n"
            "Run `cogen COMMAND --help` for the options of each command."
        ),
    )
    _add_common(parser, top=True)
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, description: str, epilog: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=description, epilog=epilog,
                                  formatter_class=_Formatter)
        _add_common(sub, top=False)
        return sub

    # -- demo
    demo = command(
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
    demo.add_argument("--out", default="cogen-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--iterations", type=int, default=15000, help="toy GAN training iterations (default: %(default)s)")
    demo.set_defaults(handler=_cmd_demo)

    # -- reproduce
    reproduce = command(
        "reproduce", "reproduce the paper's experiments (toy, images)",
        "Reproduce an experiment of the report: figures, a results table (markdown + JSON)\n"
        "and the checkpoints it trains are written to --out.",
        "examples:\n"
        "  cogen reproduce toy --quick                 # a few minutes\n"
        "  cogen reproduce toy --out results/toy       # the full run (long)\n"
        "  cogen reproduce images --quick\n"
        "  cogen reproduce images --set checkpoints=runs/fm --set 'iterations=[2000,4000,6000]' --set images=30\n"
        "  cogen reproduce toy --set chains=50 --set 'ais={\"steps\": 2000, \"leapfrog\": 10}'",
    )
    reproduce.add_argument("experiment", choices=("toy", "images"), help="which experiment")
    reproduce.add_argument("--out", default=None, help="output folder (default: cogen-<experiment>)")
    reproduce.add_argument("--quick", action="store_true", help="the small configuration (for a quick look / CI)")
    reproduce.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                           help="override a field of the experiment's config; VALUE is JSON (or a bare string); repeatable")
    reproduce.set_defaults(handler=_cmd_reproduce)

    # -- train
    train = command(
        "train", "train a DCGAN on an image data set, with resumable checkpoints",
        "Train a DCGAN (Radford et al. 2016; non-saturating GAN loss, Adam lr 2e-4, betas\n"
        "(0.5, 0.999)) on the training split of a data set. Every --checkpoint-every iterations it\n"
        "writes a checkpoint (OUT/iter_NNNNNNN.safetensors + .json + .optim.pt) and a grid of\n"
        "samples from fixed latents (OUT/samples/iter_NNNNNNN.png), and appends the losses to\n"
        "OUT/losses.csv. Run the same command again after an interruption and it resumes from\n"
        "the latest checkpoint in OUT (same result as an uninterrupted run); options left out\n"
        "are then taken from that checkpoint, so `cogen train --out OUT --iterations N` extends\n"
        "a finished run to N iterations.",
        "examples:\n"
        "  cogen train --data fashion-mnist --out runs/fm --iterations 6000 --checkpoint-every 500\n"
        "  cogen train --data mnist --out runs/mnist --width 32 --latent-dim 64\n"
        "  cogen train --data ~/photos --size 64 --channels 3 --out runs/photos\n"
        "  cogen train --out runs/fm --iterations 10000   # continue a run\n"
        "\ndata sets: fashion-mnist, mnist, digits (8×8, resized), or a folder of images.",
    )
    train.add_argument("--data", default=None, help="fashion-mnist, mnist, digits or a folder of images")
    train.add_argument("--out", required=True, help="run folder (checkpoints, sample grids, losses.csv)")
    train.add_argument("--size", type=int, choices=(28, 32, 64), default=None,
                       help="image side (default: 28 for the built-in sets, 64 for a folder)")
    train.add_argument("--channels", type=int, choices=(1, 3), default=None,
                       help="1 (grey) or 3 (RGB) (default: the data's own)")
    train.add_argument("--iterations", type=int, default=None,
                       help=f"total iterations, counting resumed ones (default: {DEFAULT_TRAIN_ITERATIONS}, "
                            "or the resumed run's)")
    train.add_argument("--batch-size", type=int, default=None, help="batch size (default: 64)")
    train.add_argument("--latent-dim", type=int, default=None, help="latent dimension (default: 100)")
    train.add_argument("--width", type=int, default=None,
                       help="DCGAN width: channels of G's last / D's first feature map (default: 64)")
    train.add_argument("--lr", type=float, default=None, help="Adam learning rate of G and D (default: 2e-4)")
    train.add_argument("--checkpoint-every", type=int, default=None,
                       help=f"checkpoint and sample grid every K iterations (default: {DEFAULT_CHECKPOINT_EVERY})")
    train.add_argument("--keep-every", type=int, default=None,
                       help="keep the checkpoints at multiples of M (default: all); 0 keeps only the latest")
    train.set_defaults(handler=_cmd_train)

    # -- complete
    complete = command(
        "complete", "complete a partly observed image with a trained generator",
        "Hide part of an image (or observe it at low resolution), sample the generator's latent\n"
        "posterior given what is left, and write OUT/completion.png (observed input with the\n"
        "hidden part grey, completions, weighted posterior mean, per-pixel std map, ground\n"
        "truth), OUT/mean.png (the posterior mean at full size) and OUT/completion.json\n"
        "(metrics against the ground truth, log evidence, gradient evaluations, ESS and the\n"
        "sampler's diagnostics).\n"
        "\n"
        "masks (--mask): box (random box), centre, top-half, mb10 (10 random blocks),\n"
        "p.5 / p.7 (50 % / 70 % random pixels hidden), sr2 / sr4 (super-resolution from a 2× / 4×\n"
        "average-pooled image), file:PATH (an image: white = observed, black = hidden).",
        "examples:\n"
        "  cogen complete --model fashion-mnist --dataset fashion-mnist --index 7 --mask centre\n"
        "  cogen complete --model mnist --index 3 --mask top-half --method ais --budget 2000\n"
        "  cogen complete --model fashion-mnist --image shoe.png --mask file:hole.png --out shoe\n"
        "  cogen complete --model runs/fm --index 0 --mask sr4 --chains 32\n"
        "  cogen complete --model fashion-mnist --index 5 --mask p.7 --method gd --steps 500\n"
        "\n--model is a shipped model (see `cogen models`), a checkpoint (prefix, .json or\n"
        ".safetensors) or a `cogen train` run folder (its latest checkpoint). --index without\n"
        "--dataset takes the image from the data set the model was trained on.",
    )
    complete.add_argument("--model", required=True, help="shipped model name, checkpoint file or run folder")
    source = complete.add_mutually_exclusive_group()
    source.add_argument("--image", default=None, help="image file to complete (resized to the model's size)")
    source.add_argument("--dataset", default=None, help="data set to take the image from (with --index)")
    complete.add_argument("--index", type=int, default=None, help="index of the image in the data set split")
    complete.add_argument("--split", default="test", choices=("train", "test", "all"), help="data set split (default: %(default)s)")
    complete.add_argument("--mask", required=True, help="what is observed: box, centre, top-half, mb10, p.5, "
                                                        "p.7, sr2, sr4 or file:PATH")
    complete.add_argument("--method", default=DEFAULT_METHOD, help="smc-polish, smc, ais, gd, gd-best, yeh (default: %(default)s)")
    complete.add_argument("--chains", type=int, default=16, help="chains (particles) (default: %(default)s)")
    complete.add_argument("--budget", type=int, default=None,
                          help="cap on generator gradient evaluations per chain (max_grad_evals)")
    complete.add_argument("--steps", type=int, default=None,
                          help="annealing steps (ais), max tempering steps (smc) or descent steps (gd)")
    complete.add_argument("--leapfrog", type=int, default=None, help="leapfrog steps per HMC move")
    complete.add_argument("--noise-std", type=_noise_std, default=None,
                          help="observation noise std for images in [-1, 1], or 'auto': fit it by maximum evidence "
                               "(smc, smc-polish); the fitted value is in the JSON as fitted_noise_std (default: "
                               f"auto for smc and smc-polish, {DEFAULT_NOISE_STD} for the other methods)")
    complete.add_argument("--discriminator-weight", type=float, default=0.0,
                          help="λ: add λ·D(G(z)) to the log-density (needs a discriminator in the checkpoint; default: %(default)s)")
    complete.add_argument("--show", type=int, default=6, help="completions shown in the figure (default: %(default)s)")
    complete.add_argument("--no-ground-truth", action="store_true",
                          help="the hidden part of --image is unknown: report no metrics against it")
    complete.add_argument("--out", default="cogen-completion", help="output folder (default: %(default)s)")
    complete.set_defaults(handler=_cmd_complete)

    # -- models
    models = command(
        "models", "list the shipped pretrained models",
        "List the generators shipped with the package (usable as `--model NAME`).",
        "example:\n  cogen models",
    )
    models.set_defaults(handler=_cmd_models)
    return parser


# --------------------------------------------------------------------------- shared helpers


def _device(args: argparse.Namespace) -> torch.device:
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"unknown device {args.device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device} asked for, but CUDA is not available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {args.device} asked for, but MPS is not available here; use --device cpu")
    return device


def _setup(args: argparse.Namespace, *, default_threads: int | None = None) -> torch.device:
    """Apply ``--threads`` (or ``default_threads`` when it is not given) and resolve ``--device``."""
    threads = args.threads if args.threads is not None else default_threads
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return _device(args)


def _noise_std(text: str) -> float | str:
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


def _requested_noise_std(args: argparse.Namespace) -> float | str:
    """``--noise-std`` as the method read it: "auto" or a number."""
    if args.noise_std is not None:
        return args.noise_std
    return "auto" if METHODS[args.method].fits_noise else DEFAULT_NOISE_STD


def _seed(args: argparse.Namespace) -> int:
    return 0 if args.seed is None else int(args.seed)


def _command_line(args: argparse.Namespace) -> str:
    return shlex.join([PROG, *args.argv])


@contextlib.contextmanager
def _bar(args: argparse.Namespace, *, total: float, desc: str, unit: str = "it",
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


PROGRESS_STEPS = 1000  # a fraction-driven bar counts in whole thousandths (no float drift past 100 %)


def _fraction_bar(bar: Any) -> Callable[[float], None]:
    """``progress(fraction)`` callback driving a bar of total :data:`PROGRESS_STEPS`."""

    def update(fraction: float) -> None:
        target = min(PROGRESS_STEPS, max(0, int(PROGRESS_STEPS * float(fraction))))
        if target > bar.n:
            bar.update(target - bar.n)

    return update


class _StageBars:
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
            bar = self.stack.enter_context(_bar(self.args, total=PROGRESS_STEPS, desc=stage, unit="%"))
            bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
            self.update = _fraction_bar(bar)
            self.stage = stage
        assert self.update is not None
        self.update(fraction)

    def close(self) -> None:
        self.stack.close()


def _print_files(files: Mapping[str, Any]) -> None:
    for name, path in files.items():
        print(f"  {name}: {path}")


# --------------------------------------------------------------------------- demo / reproduce


def _cmd_demo(args: argparse.Namespace) -> int:
    from cogenerate.experiments.toy import ToyConfig, reproduce_toy

    _setup(args, default_threads=TOY_THREADS)
    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    config = ToyConfig(iterations=(args.iterations,), ais={"steps": 1000, "leapfrog": 10}, seed=_seed(args))
    return _run_experiment(args, reproduce_toy, Path(args.out), config, "toy demo")


def _cmd_reproduce(args: argparse.Namespace) -> int:
    _setup(args, default_threads=TOY_THREADS if args.experiment == "toy" else None)
    out = Path(args.out or f"cogen-{args.experiment}")
    if args.experiment == "toy":
        from cogenerate.experiments.toy import ToyConfig, reproduce_toy

        config_class, run = ToyConfig, reproduce_toy
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
        config_class, run = ImagesConfig, reproduce_images
    config = config_class.quick() if args.quick else config_class()
    config = _override(config, args.overrides)
    if args.seed is not None and any(f.name == "seed" for f in dataclasses.fields(config)):
        config = dataclasses.replace(config, seed=args.seed)
    return _run_experiment(args, run, out, config, f"{args.experiment} reproduction")


def _override(config: Any, overrides: Sequence[str]) -> Any:
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


def _run_experiment(args: argparse.Namespace, run: Callable[..., Mapping[str, Any]], out: Path, config: Any,
                    label: str) -> int:
    started = time.perf_counter()
    bars = _StageBars(args)
    try:
        result = run(out, config=config, progress=bars)
    finally:
        bars.close()
    seconds = time.perf_counter() - started
    rows = result.get("rows") if isinstance(result, Mapping) else None
    if rows:
        from cogenerate.experiments.toy import markdown_table

        print(markdown_table(rows))
    print(f"{label} finished in {seconds:.0f} s; files:")
    files = result.get("files", {}) if isinstance(result, Mapping) else {}
    _print_files(files if files else {"folder": out})
    return 0


# --------------------------------------------------------------------------- train

_TRAIN_DEFAULTS: dict[str, Any] = {
    "size": None,  # resolved from the data
    "channels": None,
    "batch_size": 64,
    "latent_dim": 100,
    "width": 64,
    "lr": 2e-4,
    "checkpoint_every": DEFAULT_CHECKPOINT_EVERY,
    "keep_every": None,  # None: every checkpoint
}
# settings a resumed run must share with the checkpoint it continues
_RUN_IDENTITY = ("data", "size", "channels", "batch_size", "latent_dim", "width", "lr", "seed")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error})") from None


def _train_settings(args: argparse.Namespace, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge the command line with the resumed run's settings (``previous``, or None)."""
    data = args.data
    if data is not None and data not in BUILTIN_DATASETS:  # a folder: stored absolute, to resume from anywhere
        data = str(Path(data).expanduser().resolve())
    given = {
        "data": data, "size": args.size, "channels": args.channels, "batch_size": args.batch_size,
        "latent_dim": args.latent_dim, "width": args.width, "lr": args.lr, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every, "keep_every": args.keep_every, "iterations": args.iterations,
    }
    if previous is None:
        if given["data"] is None:
            raise ValueError(f"--data is required to start a new run ({args.out} holds no checkpoint)")
        settings = {key: (_TRAIN_DEFAULTS.get(key) if value is None else value) for key, value in given.items()}
        settings["seed"] = settings["seed"] or 0
        settings["iterations"] = settings["iterations"] or DEFAULT_TRAIN_ITERATIONS
        return settings
    settings = dict(previous)
    clashes = [
        f"--{key.replace('_', '-')} {given[key]} (run: {previous.get(key)})"
        for key in _RUN_IDENTITY
        if given[key] is not None and given[key] != previous.get(key)
    ]
    if clashes:
        raise ValueError(
            f"{args.out} holds a run with other settings: {', '.join(clashes)}; repeat the run's options "
            f"(or leave them out) to resume it, or choose another --out"
        )
    for key in ("checkpoint_every", "keep_every", "iterations"):
        if given[key] is not None:
            settings[key] = given[key]
    return settings


def _cmd_train(args: argparse.Namespace) -> int:
    from cogenerate.data.images import load_dataset
    from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator, weights_init
    from cogenerate.checkpoint import checkpoint_files, list_checkpoints
    from cogenerate.training.gan import checkpoint_name, train_gan

    device = _setup(args)
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    existing = list_checkpoints(out)
    previous_config = _read_json(checkpoint_files(existing[-1][1])["config"]) if existing else None
    if previous_config is not None and "cogen_train" not in previous_config:
        raise ValueError(f"{out} holds checkpoints not written by `cogen train`; choose another --out")
    settings = _train_settings(args, None if previous_config is None else previous_config["cogen_train"])
    iterations = int(settings["iterations"])
    for key in ("iterations", "batch_size", "latent_dim", "width", "checkpoint_every"):
        if int(settings[key]) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {settings[key]}")
    if settings["keep_every"] is not None and int(settings["keep_every"]) < 0:
        raise ValueError(f"--keep-every must be >= 0, got {settings['keep_every']}")
    if not settings["lr"] > 0:
        raise ValueError(f"--lr must be positive, got {settings['lr']}")
    if existing and existing[-1][0] > iterations:
        raise ValueError(
            f"{out} already holds a checkpoint at iteration {existing[-1][0]} > --iterations {iterations}; "
            f"ask for at least {existing[-1][0]} iterations or choose another --out"
        )

    data_name = str(settings["data"])
    builtin = data_name in BUILTIN_DATASETS
    if settings["size"] is None:
        settings["size"] = 28 if builtin else 64
    data = load_dataset(data_name if builtin else str(Path(data_name).expanduser()), split="train",
                        size=int(settings["size"]), channels=settings["channels"])
    settings["channels"] = int(data.shape[1])
    data = data.to(device)
    seed = int(settings["seed"])

    rng = torch.Generator().manual_seed(seed)  # initialisation, batches and latents
    with torch.device("meta"):  # no default initialisation: it would draw from the global RNG
        generator = DCGANGenerator(int(settings["latent_dim"]), image_size=int(settings["size"]),
                                   channels=settings["channels"], width=int(settings["width"]))
        discriminator = DCGANDiscriminator(image_size=int(settings["size"]), channels=settings["channels"],
                                           width=int(settings["width"]))
    for module in (generator, discriminator):
        module.to_empty(device="cpu")
        weights_init(module, rng=rng)  # every parameter; batch-norm statistics reset below
        for layer in module.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.reset_running_stats()
        module.to(device)
    grid_latents = torch.randn(GRID_LATENTS, generator.latent_dim,
                               generator=torch.Generator().manual_seed(seed + GRID_SEED_OFFSET)).to(device)

    def sample_data(n: int, data_rng: torch.Generator) -> Tensor:
        index = torch.randint(0, data.shape[0], (n,), generator=data_rng, device=data_rng.device)
        return data[index.to(data.device)]

    every = int(settings["checkpoint_every"])
    keep_every = settings["keep_every"]
    keep_every = every if keep_every is None else int(keep_every)
    keep = range(keep_every, iterations + 1, keep_every) if keep_every > 0 else ()
    commands = list(previous_config.get("commands", [])) if previous_config else []
    commands.append(_command_line(args))
    config = {
        "dataset": data_name,
        "image_size": int(settings["size"]),
        "channels": settings["channels"],
        "latent_dim": int(settings["latent_dim"]),
        "train_images": int(data.shape[0]),
        "command": commands[0],
        "commands": commands,
        "cogen_train": settings,
    }
    start = max((it for it, _ in existing if it <= iterations), default=0)
    losses_file = out / "losses.csv"
    _truncate_losses(losses_file, start)
    out.mkdir(parents=True, exist_ok=True)
    samples_dir = out / "samples"

    from cogenerate.plotting import save_image_grid

    def write_grid(iteration: int) -> Path:
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            images = generator(grid_latents)
        generator.train(was_training)
        return save_image_grid(images, samples_dir / f"{checkpoint_name(iteration)}.png", nrow=8, scale=2)

    last_grid: Path | None = None
    started = time.perf_counter()
    with _bar(args, total=iterations, initial=start, desc="train", unit="it") as bar, \
            open(losses_file, "a", encoding="utf-8") as log:
        if start == 0:
            log.write("iteration,loss_d,loss_g\n")

        def on_step(iteration: int, losses: dict[str, float]) -> None:
            nonlocal last_grid
            log.write(f"{iteration},{losses['loss_d']:.6g},{losses['loss_g']:.6g}\n")
            bar.update(1)
            if iteration % 10 == 0 or iteration == iterations:
                bar.set_postfix(loss_d=f"{losses['loss_d']:.3f}", loss_g=f"{losses['loss_g']:.3f}", refresh=False)
            if iteration % every == 0 or iteration == iterations:
                log.flush()
                last_grid = write_grid(iteration)

        result = train_gan(
            generator, discriminator, sample_data, iterations=iterations, batch_size=int(settings["batch_size"]),
            lr_g=float(settings["lr"]), lr_d=float(settings["lr"]), rng=rng, checkpoint_dir=out,
            checkpoint_every=every, keep=keep, resume=True, config=config, on_step=on_step,
        )
    seconds = time.perf_counter() - started
    if result["start_iteration"] >= iterations:
        print(f"{out} is already trained to {iterations} iterations; nothing to do "
              f"(ask for more with --iterations)")
    else:
        resumed = f" (resumed from iteration {result['start_iteration']})" if result["resumed_from"] else ""
        print(f"trained {data_name} DCGAN to iteration {result['iteration']}{resumed} in {seconds:.0f} s: "
              f"loss_d {result['loss_d']:.4f}, loss_g {result['loss_g']:.4f}")
    print(f"  checkpoint: {result['checkpoint']}")
    if last_grid is not None:
        print(f"  samples: {last_grid}")
    print(f"  losses: {losses_file}")
    return 0


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


# --------------------------------------------------------------------------- complete


def _load_model(spec: str, device: torch.device) -> tuple[Any, str]:
    """A shipped model name, a checkpoint (prefix or file) or a run folder -> (Checkpoint, label)."""
    from cogenerate.models.pretrained import PRETRAINED, load_pretrained
    from cogenerate.checkpoint import checkpoint_files, latest_checkpoint, load_checkpoint

    if spec in PRETRAINED:
        return load_pretrained(spec, device=device), spec
    path = Path(spec).expanduser()
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise ValueError(f"--model {spec}: the folder holds no checkpoint (iter_*.json + .safetensors)")
        return load_checkpoint(latest, device=device), str(latest)
    if path.is_file() or checkpoint_files(path)["config"].is_file():
        checkpoint = load_checkpoint(path, device=device)
        return checkpoint, str(checkpoint.path)
    raise ValueError(
        f"unknown model {spec!r}: not a shipped model ({', '.join(PRETRAINED)}; see `cogen models`) "
        f"nor an existing checkpoint file or run folder"
    )


def _image_shape(generator: Any, label: str) -> tuple[int, int]:
    """(channels, side) of the square images ``generator`` makes."""
    latent_dim = getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int):
        raise ValueError(f"--model {label}: the generator has no integer `latent_dim` attribute")
    parameter = next(generator.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    with torch.no_grad():
        x = generator(torch.zeros(1, latent_dim, device=device))
    if x.dim() != 4 or x.shape[-1] != x.shape[-2] or x.shape[1] not in (1, 3):
        raise ValueError(
            f"--model {label}: `cogen complete` needs a generator of square grey or RGB images, this one "
            f"makes samples of shape {tuple(x.shape[1:])}"
        )
    return int(x.shape[1]), int(x.shape[-1])


def _note(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"{PROG}: note: {message}", file=sys.stderr)


def _load_input(args: argparse.Namespace, model_config: Mapping[str, Any], channels: int, side: int
                ) -> tuple[Tensor, dict[str, Any], tuple[int, int]]:
    """The image to complete, ``(C, side, side)`` in [-1, 1]; a description; the (W, H) of the
    image the user gave (a mask file must match it)."""
    from cogenerate.data.images import load_dataset, load_image

    expected = f"{channels}×{side}×{side} ({'grey' if channels == 1 else 'RGB'})"
    if args.image is not None:
        from PIL import Image, UnidentifiedImageError

        path = Path(args.image).expanduser()
        if not path.is_file():
            raise ValueError(f"image file {str(path)!r} does not exist")
        try:
            with Image.open(path) as im:
                width, height = im.size
                grey = im.mode in ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"cannot read image {str(path)!r}: {error}") from None
        changes = []
        if (width, height) != (side, side):
            crop = " (centre-cropped to a square)" if width != height else ""
            changes.append(f"resized it from {width}×{height} to {side}×{side}{crop}")
        if grey != (channels == 1):
            changes.append("converted it to " + ("grey" if channels == 1 else "RGB"))
        if changes:
            _note(args, f"{path.name}: {' and '.join(changes)}, as the model makes {expected} images")
        image = load_image(path, size=side, channels=channels)
        return image, {"image": str(path), "original_size": [width, height]}, (width, height)
    if args.index is None:
        if args.dataset is not None:
            raise ValueError("--dataset needs --index I: which image of the data set to complete")
        raise ValueError("give the image to complete: --image FILE, or --index I (and optionally --dataset NAME)")
    name = args.dataset or model_config.get("dataset")
    if not name:
        raise ValueError("--index without --dataset needs a model that records its data set; give --dataset NAME")
    images = load_dataset(name, split=args.split, size=side, channels=channels)
    if not 0 <= args.index < images.shape[0]:
        raise ValueError(
            f"--index {args.index} is out of range: the {args.split!r} split of {name} has {images.shape[0]} "
            f"images (0 to {images.shape[0] - 1})"
        )
    return images[args.index], {"dataset": name, "split": args.split, "index": args.index}, (side, side)


def _check_mask_file(spec: str, reference: tuple[int, int], side: int, what: str) -> None:
    """A ``file:`` mask must be drawn at the size of the image it masks (or the model's size)."""
    if not spec.strip().lower().startswith("file:"):
        return
    from PIL import Image, UnidentifiedImageError

    path = Path(spec.strip()[5:]).expanduser()
    if not path.is_file():
        raise ValueError(f"mask file {str(path)!r} does not exist")
    try:
        with Image.open(path) as im:
            size = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read mask image {str(path)!r}: {error}") from None
    if size not in (reference, (side, side)):
        allowed = f"{reference[0]}×{reference[1]}" + (f" or {side}×{side}" if reference != (side, side) else "")
        raise ValueError(
            f"mask file {str(path)!r} is {size[0]}×{size[1]} pixels but {what} is {reference[0]}×{reference[1]}: "
            f"draw the mask at {allowed} (white = observed, black = hidden)"
        )


def _plain(value: Any, *, limit: int = 100_000) -> Any:
    """Diagnostics to JSON: tensors to (nested) lists, NaN/inf to None, keys to strings."""
    if isinstance(value, Tensor):
        if value.numel() > limit:
            return {"shape": list(value.shape), "omitted": f"more than {limit} numbers"}
        return _plain(value.detach().cpu().tolist())
    if isinstance(value, Mapping):
        return {str(key): _plain(item, limit=limit) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, limit=limit) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return str(value)


def _image_metrics(x: Tensor, truth: Tensor, mask: Tensor | None) -> dict[str, float | None]:
    from cogenerate import metrics

    x, truth = x.unsqueeze(0).float().cpu(), truth.unsqueeze(0).float().cpu()
    values = {
        "hidden_mse": metrics.masked_mse(x, truth, mask.cpu()).item() if mask is not None else None,
        "mse": metrics.mse(x, truth).item(),
        "psnr": metrics.psnr(x, truth).item(),
        "ssim": metrics.ssim(x, truth).item(),
        "ms_ssim": metrics.ms_ssim(x, truth).item(),
    }
    return {key: _plain(value) for key, value in values.items()}


def _cmd_complete(args: argparse.Namespace) -> int:
    import torch.nn.functional as F

    import cogenerate as cg
    from cogenerate.data.masks import make_operator
    from cogenerate.operators import Downsample, Mask
    from cogenerate.plotting import completion_figure, hidden_as_grey, save_image_grid

    device = _setup(args)
    for option in ("chains", "show"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option} must be at least 1, got {getattr(args, option)}")
    if args.budget is not None and args.budget < 1:
        raise ValueError(f"--budget must be at least 1, got {args.budget}")
    checkpoint, model_label = _load_model(args.model, device)
    generator = checkpoint.modules.get("generator")
    if generator is None:
        raise ValueError(f"--model {model_label}: no module named 'generator' (has {sorted(checkpoint.modules)})")
    channels, side = _image_shape(generator, model_label)
    truth, source, reference = _load_input(args, checkpoint.config, channels, side)
    _check_mask_file(args.mask, reference, side, "the image" if args.image is not None else "the model's image")
    seed = _seed(args)
    operator = make_operator(args.mask, n=1, size=side, rng=torch.Generator().manual_seed(seed))
    discriminator = None
    if args.discriminator_weight != 0:
        discriminator = checkpoint.modules.get("discriminator")
        if discriminator is None:
            raise ValueError(f"--discriminator-weight needs a discriminator, and {model_label} has none")

    observed = truth.unsqueeze(0).to(device)
    mask = None
    if isinstance(operator, Mask):
        mask = operator.mask.reshape(1, 1, side, side).float()
        # the hidden pixels are never looked at: make that visible
        observed = torch.where(mask.to(device) > 0, observed, torch.full_like(observed, float("nan")))
        shown_input = hidden_as_grey(truth, mask[0])
        hidden = int((mask == 0).sum())
        _note(args, f"{args.mask}: {hidden} of {side * side} pixels hidden")
    elif isinstance(operator, Downsample):
        low = F.avg_pool2d(truth.unsqueeze(0), operator.factor)
        shown_input = F.interpolate(low, scale_factor=operator.factor, mode="nearest")[0]
    else:  # pragma: no cover - make_operator builds only these two kinds
        shown_input = truth

    started = time.perf_counter()
    with _bar(args, total=PROGRESS_STEPS, desc=f"complete ({args.method})", unit="%") as bar:
        bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
        out = cg.complete(
            generator, observed, operator, method=args.method, chains=args.chains, steps=args.steps,
            leapfrog=args.leapfrog, noise_std=args.noise_std, max_grad_evals=args.budget, seed=seed,
            discriminator=discriminator, discriminator_weight=args.discriminator_weight,
            progress=_fraction_bar(bar),
        )
        _fraction_bar(bar)(1.0)
    seconds = time.perf_counter() - started
    out = out.to("cpu")

    weights = out.weights[0]
    order = torch.argsort(weights, descending=True)
    completions = out.completions[0]
    mean, std = out.mean[0], out.std[0]
    known = args.image is None or not args.no_ground_truth
    metrics: dict[str, Any] | None = None
    if known:
        if mask is not None:
            errors = ((completions - truth) ** 2 * (1 - mask[0])).flatten(1).sum(1)
        else:
            errors = ((completions - truth) ** 2).flatten(1).sum(1)
        best = int(errors.argmin())
        predictive, hidden = out.predictive_std[0], out.hidden[0].bool()
        inside = ((mean - truth).abs() <= 2 * predictive) & hidden
        metrics = {
            # How often the truth of a hidden pixel lies within two predictive std of the mean.
            "truth_within_2_predictive_std": _plain(float(inside.sum() / hidden.sum().clamp_min(1))),
            "posterior_mean": _image_metrics(mean, truth, mask),
            "estimate": _image_metrics(out.estimate[0], truth, mask),
            "best_sample": {"chain": best, "weight": float(weights[best]),
                            **_image_metrics(completions[best], truth, mask)},
        }

    target = Path(args.out).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    files = {
        "figure": target / "completion.png",
        "mean": target / "mean.png",
        "samples": target / "samples.png",
        "json": target / "completion.json",
    }
    shown = order[: min(args.show, args.chains)]
    log_evidence = float(out.log_evidence[0])
    title = (f"{Path(model_label).name} · {args.mask} · {out.method}, {args.chains} chains, "
             f"{out.grad_evals} grad evals/chain")
    completion_figure(
        files["figure"], observed=shown_input, completions=completions[shown], mean=mean, std=std,
        truth=truth if known else None, completion_titles=[f"w = {float(weights[i]):.2f}" for i in shown],
        title=title,
    )
    save_image_grid(mean.unsqueeze(0), files["mean"], nrow=1, padding=0)
    save_image_grid(completions[order], files["samples"], scale=2)
    report = {
        "model": model_label,
        "model_iteration": checkpoint.iteration,
        "input": source,
        "image_shape": [channels, side, side],
        "mask": args.mask,
        "hidden_pixels": None if mask is None else int((mask == 0).sum()),
        "method": out.method,
        "chains": args.chains,
        "steps": args.steps,
        "leapfrog": args.leapfrog,
        "budget": args.budget,
        "noise_std": _requested_noise_std(args),
        "fitted_noise_std": float(out.diagnostics["noise_scale"][0]),
        "discriminator_weight": args.discriminator_weight,
        "seed": seed,
        "device": str(device),
        "grad_evals": out.grad_evals,
        "log_evidence": _plain(log_evidence),
        "ess": float(out.ess[0]),
        "weights": _plain(weights),
        "metrics": metrics,
        "seconds": round(seconds, 3),
        "command": _command_line(args),
        "diagnostics": _plain(out.diagnostics),
        "files": {key: str(path) for key, path in files.items()},
    }
    files["json"].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    print(f"{out.method}: {args.chains} chains, {out.grad_evals} gradient evaluations per chain, "
          f"{seconds:.1f} s; ESS {float(out.ess[0]):.1f}; log evidence "
          f"{'n/a' if not math.isfinite(log_evidence) else f'{log_evidence:.2f}'}")
    if metrics is not None:
        m, b = metrics["posterior_mean"], metrics["best_sample"]
        region = "hidden-region MSE" if mask is not None else "MSE"
        key = "hidden_mse" if mask is not None else "mse"
        print(f"posterior mean: {region} {m[key]:.4f}, PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}; "
              f"best sample: {region} {b[key]:.4f}, SSIM {b['ssim']:.3f}")
    _print_files(files)
    return 0


# --------------------------------------------------------------------------- models


def _cmd_models(args: argparse.Namespace) -> int:
    from cogenerate.models.pretrained import PRETRAINED, pretrained_config, pretrained_files

    rows = [("name", "dataset", "images", "latent", "iterations", "size", "description")]
    for name, description in PRETRAINED.items():
        try:
            files = pretrained_files(name)
            config = pretrained_config(name)
        except ValueError:
            rows.append((name, "-", "-", "-", "-", "-", f"{description} (not installed)"))
            continue
        generator = config["modules"]["generator"]["kwargs"]
        mb = sum(_resource_size(f) for f in files.values()) / 1e6
        shape = f"{generator.get('channels', '?')}×{generator.get('image_size', '?')}×{generator.get('image_size', '?')}"
        rows.append((name, str(config.get("dataset", "?")), shape, str(generator.get("latent_dim", "?")),
                     str(config.get("iteration", "?")), f"{mb:.1f} MB", description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def _resource_size(resource: Any) -> int:
    from importlib import resources

    with resources.as_file(resource) as path:
        return Path(path).stat().st_size


if __name__ == "__main__":  # python -m cogenerate.cli
    sys.exit(main())
