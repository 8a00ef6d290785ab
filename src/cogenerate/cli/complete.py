"""``cogen complete``: complete a partly observed image with a trained generator."""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cogenerate.api import DEFAULT_METHOD, DEFAULT_NOISE_STD, METHODS
from cogenerate.cli.common import (
    PROGRESS_STEPS, command_line, fraction_bar, note, positive_noise_std, print_files, progress_bar, seed_of, setup,
)

__all__ = ["register", "run"]


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen complete`` through ``command(name, help, description, epilog)``."""
    parser = command(
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
    parser.add_argument("--model", required=True, help="shipped model name, checkpoint file or run folder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--image", default=None, help="image file to complete (resized to the model's size)")
    source.add_argument("--dataset", default=None, help="data set to take the image from (with --index)")
    parser.add_argument("--index", type=int, default=None, help="index of the image in the data set split")
    parser.add_argument("--split", default="test", choices=("train", "test", "all"), help="data set split (default: %(default)s)")
    parser.add_argument("--mask", required=True, help="what is observed: box, centre, top-half, mb10, p.5, "
                                                      "p.7, sr2, sr4 or file:PATH")
    parser.add_argument("--method", default=DEFAULT_METHOD, help="smc-polish, smc, ais, gd, gd-best, yeh (default: %(default)s)")
    parser.add_argument("--chains", type=int, default=16, help="chains (particles) (default: %(default)s)")
    parser.add_argument("--budget", type=int, default=None,
                        help="cap on generator gradient evaluations per chain (max_grad_evals)")
    parser.add_argument("--steps", type=int, default=None,
                        help="annealing steps (ais), max tempering steps (smc) or descent steps (gd)")
    parser.add_argument("--leapfrog", type=int, default=None, help="leapfrog steps per HMC move")
    parser.add_argument("--noise-std", type=positive_noise_std, default=None,
                        help="observation noise std for images in [-1, 1], or 'auto': fit it by maximum evidence "
                             "(smc, smc-polish); the fitted value is in the JSON as fitted_noise_std (default: "
                             f"auto for smc and smc-polish, {DEFAULT_NOISE_STD} for the other methods)")
    parser.add_argument("--discriminator-weight", type=float, default=0.0,
                        help="λ: add λ·D(G(z)) to the log-density (needs a discriminator in the checkpoint; default: %(default)s)")
    parser.add_argument("--show", type=int, default=6, help="completions shown in the figure (default: %(default)s)")
    parser.add_argument("--no-ground-truth", action="store_true",
                        help="the hidden part of --image is unknown: report no metrics against it")
    parser.add_argument("--out", default="cogen-completion", help="output folder (default: %(default)s)")
    parser.set_defaults(handler=run)


def _requested_noise_std(args: argparse.Namespace) -> float | str:
    """``--noise-std`` as the method read it: "auto" or a number."""
    if args.noise_std is not None:
        return args.noise_std
    return "auto" if METHODS[args.method].fits_noise else DEFAULT_NOISE_STD


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
            note(args, f"{path.name}: {' and '.join(changes)}, as the model makes {expected} images")
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


def run(args: argparse.Namespace) -> int:
    import torch.nn.functional as F

    import cogenerate as cg
    from cogenerate.data.masks import make_operator
    from cogenerate.operators import Downsample, Mask
    from cogenerate.plotting import completion_figure, hidden_as_grey, save_image_grid

    device = setup(args)
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
    seed = seed_of(args)
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
        note(args, f"{args.mask}: {hidden} of {side * side} pixels hidden")
    elif isinstance(operator, Downsample):
        low = F.avg_pool2d(truth.unsqueeze(0), operator.factor)
        shown_input = F.interpolate(low, scale_factor=operator.factor, mode="nearest")[0]
    else:  # pragma: no cover - make_operator builds only these two kinds
        shown_input = truth

    started = time.perf_counter()
    with progress_bar(args, total=PROGRESS_STEPS, desc=f"complete ({args.method})", unit="%") as bar:
        bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
        out = cg.complete(
            generator, observed, operator, method=args.method, chains=args.chains, steps=args.steps,
            leapfrog=args.leapfrog, noise_std=args.noise_std, max_grad_evals=args.budget, seed=seed,
            discriminator=discriminator, discriminator_weight=args.discriminator_weight,
            progress=fraction_bar(bar),
        )
        fraction_bar(bar)(1.0)
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
        "command": command_line(args),
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
    print_files(files)
    return 0
