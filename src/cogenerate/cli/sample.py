"""``cogen sample``: unconditional samples of a trained model, plain or corrected by its critic.

The work is :func:`cogenerate.sampling.run_sampler`; this module parses the arguments, loads
the model and the held-out images, and writes ``OUT/samples.npy``, ``OUT/samples.png`` and
``OUT/sample.json``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cogenerate.cli.common import command_line, note, print_files, seed_of, setup, to_plain
from cogenerate.cli.model_spec import load_model, model_label
from cogenerate.files import atomic_write_bytes, atomic_write_json
from cogenerate.sampling import DDLS_STEP_SIZE, DDLS_STEPS, DRS_BURN_IN, DRS_EPSILON, DRS_PERCENTILE, MH_CHAIN_LENGTH
from cogenerate.sampling.methods import METHODS, run_sampler

__all__ = ["register", "run", "validation_images"]

GRID_IMAGES = 64
"""Samples shown in ``samples.png`` (an 8×8 grid)."""


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen sample`` through ``command(name, help, description, epilog)``."""
    parser = command(
        "sample", "draw samples from a trained model, plain or corrected with its critic (DRS, MH-GAN, DDLS)",
        "Draw N samples from a model and write OUT/samples.npy (float32, (N, C, H, W), values in\n"
        "[-1, 1]), OUT/samples.png (the first 64) and OUT/sample.json (the method, its constants,\n"
        "the acceptance rate, generator calls per kept sample, the critic's calibration, time).\n"
        "\n"
        "methods (--method):\n"
        "  plain  x = G(z), z from the prior\n"
        "  drs    discriminator rejection sampling (Azadi et al. 2019)\n"
        "  mh     Metropolis-Hastings over generator samples (MH-GAN, Turner et al. 2019)\n"
        "  ddls   Langevin dynamics in latent space on E(z) = |z|^2/2 - d(G(z)) (Che et al. 2020)\n"
        "The correctors read the model's critic (a discriminator's logit, or -energy of an\n"
        "autoencoder) as log p_data/p_G after calibrating it by logistic regression on held-out\n"
        "images: the validation split of the model's data set (Fashion-MNIST: test[5000:]); MH\n"
        "starts its chains from those images.",
        "examples:\n"
        "  cogen sample --model fashion-mnist --method drs -n 1000 --out samples/drs\n"
        "  cogen sample --model fashion-mnist-ebgan --method mh -n 500 --chain-length 64\n"
        "  cogen sample --model runs/fm-began --method ddls -n 256 --steps 100 --out samples/ddls",
    )
    parser.add_argument("--model", required=True, help="shipped model name, checkpoint file, run folder or module.path:factory")
    parser.add_argument("--method", default="plain", choices=METHODS, help="sampling method (default: %(default)s)")
    parser.add_argument("-n", "--samples", type=int, default=64, help="samples to draw (default: %(default)s)")
    parser.add_argument("--out", default="cogen-samples", help="output folder (default: %(default)s)")
    parser.add_argument("--data", default=None,
                        help="data set (or image folder) whose held-out images calibrate the critic "
                             "(default: the one the model was trained on)")
    parser.add_argument("--no-calibration", action="store_true",
                        help="use the critic's output as log p_data/p_G as it is (drs, ddls)")
    parser.add_argument("--batch", type=int, default=1000, help="images per generator call (default: %(default)s)")
    group = parser.add_argument_group("method constants (defaults: the papers' or their official code's)")
    group.add_argument("--percentile", type=float, default=None, help=f"drs: γ's percentile of F (default: {DRS_PERCENTILE:g})")
    group.add_argument("--epsilon", type=float, default=None, help=f"drs: ε (default: {DRS_EPSILON:g})")
    group.add_argument("--burn-in", type=int, default=None, help=f"drs: samples that estimate max D (default: {DRS_BURN_IN})")
    group.add_argument("--chain-length", type=int, default=None, help=f"mh: proposals per chain K (default: {MH_CHAIN_LENGTH})")
    group.add_argument("--step-size", type=float, default=None, help=f"ddls: Langevin step ε (default: {DDLS_STEP_SIZE:g})")
    group.add_argument("--steps", type=int, default=None, help=f"ddls: Langevin steps (default: {DDLS_STEPS})")
    group.add_argument("--adjusted", action="store_true", help="ddls: Metropolis-adjusted (MALA) steps")
    parser.set_defaults(handler=run)


_OPTIONS = {"drs": ("percentile", "epsilon", "burn_in"), "mh": ("chain_length",), "ddls": ("step_size", "steps", "adjusted")}


def validation_images(dataset: str, *, shape: tuple[int, ...] | None = None) -> Tensor:
    """The held-out images that calibrate a critic: the validation split of a data set with an
    evaluation protocol (:data:`cogenerate.evaluation.splits.SPLIT_PLANS`), else the test split
    of a built-in data set or an image folder, resized to ``shape`` ``(C, H, W)`` when given."""
    from cogenerate.data.images import DATASETS, load_dataset
    from cogenerate.evaluation.splits import SPLIT_PLANS, load_split

    if dataset in SPLIT_PLANS:
        return load_split(dataset, "validation")
    size, channels = (shape[-1], shape[0]) if shape is not None and len(shape) == 3 else (None, None)
    source = dataset if dataset in DATASETS else str(Path(dataset).expanduser())
    return load_dataset(source, split="test", size=size, channels=channels)


def run(args: argparse.Namespace) -> int:
    device = setup(args)
    if args.samples < 1:
        raise ValueError(f"-n must be at least 1, got {args.samples}")
    options: dict[str, Any] = {}
    for name in ("percentile", "epsilon", "burn_in", "chain_length", "step_size", "steps", "adjusted"):
        value = getattr(args, name)
        if value is None or value is False:
            continue
        if name not in _OPTIONS.get(args.method, ()):
            raise ValueError(f"--{name.replace('_', '-')} is not an option of --method {args.method}")
        options[name] = value
    model = load_model(args.model, device=device)
    validation = None
    needs_real = args.method == "mh" or (args.method != "plain" and not args.no_calibration)
    dataset = args.data or model.config.get("dataset")
    if needs_real:
        if not dataset:
            raise ValueError(f"--method {args.method} needs held-out images and the model records no data set: give --data")
        validation = validation_images(str(dataset), shape=model.x_shape).to(device)
    rng = torch.Generator(device=device).manual_seed(seed_of(args))
    started = time.perf_counter()
    sampled = run_sampler(model, args.method, n=args.samples, rng=rng, validation=validation,
                          calibrated=not args.no_calibration, max_batch=args.batch, **options)
    seconds = time.perf_counter() - started
    result = sampled.result
    samples = result.samples.detach().clamp(-1, 1).to("cpu", torch.float32)
    if result.samples.abs().max() > 1:
        note(args, "samples outside [-1, 1] were clipped")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"samples": out / "samples.npy", "grid": out / "samples.png", "json": out / "sample.json"}
    atomic_write_bytes(files["samples"], _npy_bytes(samples.numpy()))
    from cogenerate.plotting import save_image_grid

    if samples.dim() == 4:
        save_image_grid(samples[:GRID_IMAGES], files["grid"], scale=2)
    else:
        del files["grid"]
    calibration = sampled.calibration
    atomic_write_json(files["json"], to_plain({
        "command": command_line(args), "model": model_label(args.model), "family": model.family,
        "method": args.method, "n": int(samples.shape[0]), "shape": list(samples.shape), "seed": seed_of(args),
        "acceptance_rate": result.acceptance_rate, "generator_calls": result.generator_calls,
        "generator_calls_per_sample": result.calls_per_sample, "constants": result.stats,
        "calibration": None if calibration is None else {**calibration._asdict(), "data": str(dataset),
                                                         "split": "validation"},
        "seconds": seconds,
    }))
    print(f"{args.method}: {samples.shape[0]} samples in {seconds:.1f} s, acceptance {result.acceptance_rate:.3f}, "
          f"{result.calls_per_sample:.1f} generator calls per sample")
    print_files(files)
    return 0


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
