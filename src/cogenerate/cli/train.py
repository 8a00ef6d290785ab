"""``cogen train``: train a DCGAN on an image data set, with resumable checkpoints."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cogenerate.cli.common import command_line, progress_bar, setup

__all__ = ["register", "run"]

DEFAULT_TRAIN_ITERATIONS = 5000
DEFAULT_CHECKPOINT_EVERY = 500
BUILTIN_DATASETS = ("fashion-mnist", "mnist", "digits")
GRID_LATENTS = 64  # sample-grid images written with every training checkpoint
GRID_SEED_OFFSET = 7919  # grid latents come from their own generator seeded seed + this


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen train`` through ``command(name, help, description, epilog)``."""
    parser = command(
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
    parser.add_argument("--data", default=None, help="fashion-mnist, mnist, digits or a folder of images")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, sample grids, losses.csv)")
    parser.add_argument("--size", type=int, choices=(28, 32, 64), default=None,
                        help="image side (default: 28 for the built-in sets, 64 for a folder)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=None,
                        help="1 (grey) or 3 (RGB) (default: the data's own)")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"total iterations, counting resumed ones (default: {DEFAULT_TRAIN_ITERATIONS}, "
                             "or the resumed run's)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: 64)")
    parser.add_argument("--latent-dim", type=int, default=None, help="latent dimension (default: 100)")
    parser.add_argument("--width", type=int, default=None,
                        help="DCGAN width: channels of G's last / D's first feature map (default: 64)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate of G and D (default: 2e-4)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help=f"checkpoint and sample grid every K iterations (default: {DEFAULT_CHECKPOINT_EVERY})")
    parser.add_argument("--keep-every", type=int, default=None,
                        help="keep the checkpoints at multiples of M (default: all); 0 keeps only the latest")
    parser.set_defaults(handler=run)


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


def run(args: argparse.Namespace) -> int:
    from cogenerate.data.images import load_dataset
    from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator, weights_init
    from cogenerate.checkpoint import checkpoint_files, list_checkpoints
    from cogenerate.training.gan import checkpoint_name, train_gan

    device = setup(args)
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
    commands.append(command_line(args))
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
    with progress_bar(args, total=iterations, initial=start, desc="train", unit="it") as bar, \
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
