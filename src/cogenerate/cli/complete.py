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

from cogenerate.api import DEFAULT_METHOD, DEFAULT_NOISE_STD, model_noise_std, resolve_noise
from cogenerate.methods import resolve_method
from cogenerate.cli import complete_batch
from cogenerate.cli.common import (
    PROGRESS_STEPS, check_counts, command_line, fraction_bar, note, positive_noise_std, print_files, progress_bar, seed_of, setup,
    to_plain,
)
from cogenerate.cli.model_spec import load_model, model_label, sample_shape

__all__ = ["register", "run", "observe", "write_results"]


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
        "  cogen complete --model mygan:make_generator --latent-dim 128 --image face.png --mask centre\n"
        "  cogen complete --model fashion-mnist --dataset fashion-mnist --indices 0:100 --mask box --out fm-box\n"
        "\n--model is a shipped model (see `cogen models`), a checkpoint (prefix, .json or\n"
        ".safetensors), a `cogen train` run folder (its latest checkpoint), or your own generator\n"
        "as module.path:factory: a function (importable from the current folder or the Python\n"
        "path) that returns an nn.Module mapping (N, latent_dim) latents to (N, C, S, S) images\n"
        "in [-1, 1] (C = 1 or 3), or a GenerativeModel; give --latent-dim if the module has no\n"
        "integer `latent_dim` attribute. --index without --dataset takes the image from the\n"
        "data set the model was trained on.",
    )
    parser.add_argument("--model", required=True,
                        help="shipped model name, checkpoint file, run folder or module.path:factory")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="latent size of a module.path:factory generator without a `latent_dim` attribute")
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
                        help="observation noise std for images in [-1, 1], or 'auto': fit it per image by maximum "
                             "evidence (smc, smc-polish); the value used is in the JSON as fitted_noise_std (default "
                             "for smc and smc-polish: the model's own σ on a pixel mask, shipped with every model "
                             f"(`cogen models`), else auto; {DEFAULT_NOISE_STD} for the other methods)")
    parser.add_argument("--discriminator-weight", type=float, default=0.0,
                        help="λ: add λ·D(G(z)) to the log-density (needs a discriminator or an energy in the model; "
                             "default: %(default)s)")
    parser.add_argument("--show", type=int, default=6, help="completions shown in the figure (default: %(default)s)")
    parser.add_argument("--no-ground-truth", action="store_true",
                        help="the hidden part of --image is unknown: report no metrics against it")
    parser.add_argument("--out", default="cogen-completion", help="output folder (default: %(default)s)")
    complete_batch.add_arguments(parser)
    parser.set_defaults(handler=run)


def _requested_noise_std(args: argparse.Namespace, model: Any, operator: Any) -> float | str:
    """``--noise-std`` as the method read it: "auto" or a number, the model's own σ when none was
    given (resolved as complete() resolves it)."""
    return resolve_noise(resolve_method(args.method), args.noise_std, model_noise_std=model_noise_std(model, operator))


def image_shape(model: Any, label: str) -> tuple[int, int]:
    """(channels, side) of the square grey or RGB images ``model`` makes."""
    shape = sample_shape(model)
    if len(shape) != 3 or shape[-1] != shape[-2] or shape[0] not in (1, 3):
        raise ValueError(
            f"--model {label}: `cogen complete` needs a generator of square grey or RGB images (N, C, S, S) "
            f"with C = 1 or 3, this one makes samples of shape {shape}"
        )
    return int(shape[0]), int(shape[-1])


def _load_input(args: argparse.Namespace, model_config: Mapping[str, Any], channels: int, side: int) -> Any:
    """The image to complete, as a :class:`~cogenerate.data.inputs.ImageInput`."""
    from cogenerate.data.inputs import image_from_dataset, image_from_file

    if args.image is not None:
        given = image_from_file(args.image, side=side, channels=channels)
        if given.changes:
            expected = f"{channels}×{side}×{side} ({'grey' if channels == 1 else 'RGB'})"
            note(args, f"{Path(args.image).name}: {' and '.join(given.changes)}, as the model makes {expected} images")
        return given
    if args.index is None:
        if args.dataset is not None:
            raise ValueError("--dataset needs --index I: which image of the data set to complete")
        raise ValueError("give the image to complete: --image FILE, or --index I (and optionally --dataset NAME)")
    name = args.dataset or model_config.get("dataset")
    if not name:
        raise ValueError("--index without --dataset needs a model that records its data set; give --dataset NAME")
    return image_from_dataset(name, args.index, split=args.split, side=side, channels=channels)


def _first(tree: Any) -> Any:
    """The first image's entry of every ``(B,)`` leaf of a nested dict, as plain JSON."""
    if isinstance(tree, Mapping):
        return {key: _first(value) for key, value in tree.items()}
    return to_plain(tree[0])


def run(args: argparse.Namespace) -> int:
    if args.indices is not None:  # many data-set images, maybe sharded over processes
        return complete_batch.run_batch(args)
    from cogenerate.distributed import world

    if world().distributed:
        raise ValueError("on several processes `cogen complete` completes --indices START:STOP (one image cannot be "
                         "shared out)")
    import cogenerate as cg
    from cogenerate.data.inputs import check_mask_size
    from cogenerate.data.masks import make_operator

    device = setup(args)
    check_counts(args, ("chains", "show"), ("budget", "latent_dim"))
    model = load_model(args.model, device=device, latent_dim=args.latent_dim)
    label = model_label(args.model)
    channels, side = image_shape(model, label)
    given = _load_input(args, model.config, channels, side)
    truth = given.image
    check_mask_size(args.mask, given.size, side, "the image" if args.image is not None else "the model's image")
    seed = seed_of(args)
    operator = make_operator(args.mask, n=1, size=side, rng=torch.Generator().manual_seed(seed))
    if args.discriminator_weight != 0 and not model.has_critic:
        raise ValueError(f"--discriminator-weight needs a discriminator (or an energy), and {label} has none")

    observed, mask = observe(truth, operator, device)
    if mask is not None:
        note(args, f"{args.mask}: {int((mask == 0).sum())} of {side * side} pixels hidden")

    started = time.perf_counter()
    with progress_bar(args, total=PROGRESS_STEPS, desc=f"complete ({args.method})", unit="%") as bar:
        bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
        out = cg.complete(
            model, observed, operator, method=args.method, chains=args.chains, steps=args.steps,
            leapfrog=args.leapfrog, noise_std=args.noise_std, max_grad_evals=args.budget, seed=seed,
            discriminator_weight=args.discriminator_weight or None, progress=fraction_bar(bar),
        )
        fraction_bar(bar)(1.0)
    seconds = time.perf_counter() - started
    out = out.to("cpu")

    files, report = write_results(args, out, model=model, label=label, given=given, operator=operator, mask=mask,
                                  seed=seed, device=device, seconds=seconds)
    metrics = report["metrics"]
    log_evidence = float(out.log_evidence[0])

    print(f"{out.method}: {args.chains} chains, {out.grad_evals} gradient evaluations per chain, "
          f"{seconds:.1f} s; ESS {float(out.ess[0]):.1f}; log evidence "
          f"{'n/a' if not math.isfinite(log_evidence) else f'{log_evidence:.2f}'}")
    if metrics is not None:
        m, b = metrics["posterior_mean"], metrics["best_sample"]
        region, key = ("hidden-region MSE", "hidden_mse") if mask is not None else ("MSE", "mse")
        print(f"posterior mean: {region} {m[key]:.4f}, PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}; "
              f"best sample: {region} {b[key]:.4f}, SSIM {b['ssim']:.3f}; "
              f"truth within ±2 predictive std: {metrics['truth_within_2_predictive_std']:.0%} of hidden pixels")
    print_files(files)
    return 0


def observe(truth: torch.Tensor, operator: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The observation ``complete()`` gets for the ``(C, S, S)`` image ``truth``: ``(observed, mask)``
    with ``observed`` of shape ``(1, C, S, S)`` on ``device``, its hidden pixels NaN (they are never
    looked at: this makes that visible), and the ``(1, 1, S, S)`` mask of a
    :class:`~cogenerate.operators.Mask` (``None`` for other operators, ``observed`` then whole)."""
    from cogenerate.operators import Mask

    observed = truth.unsqueeze(0).to(device)
    if not isinstance(operator, Mask):
        return observed, None
    mask = operator.full(1, tuple(truth.shape))[:, :1].float()  # (1, 1, side, side)
    return torch.where(mask.to(device) > 0, observed, torch.full_like(observed, float("nan"))), mask


def write_results(
    args: argparse.Namespace, out: Any, *, model: Any, label: str, given: Any, operator: Any, mask: torch.Tensor | None,
    seed: int, device: torch.device, seconds: float,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write what ``cogen complete`` writes for the first image of ``out`` (a CPU
    :class:`~cogenerate.result.Completion`) into ``args.out``: the figure, the posterior mean, the
    samples and the JSON report; returns ``(files, report)``. ``cogen serve`` calls it too, so
    that the page offers the same files and numbers as the command.

    ``given`` is the :class:`~cogenerate.data.inputs.ImageInput` completed, ``operator`` the
    observation operator, ``mask`` its ``(1, 1, S, S)`` mask (``None`` for other operators).
    """
    from cogenerate.metrics import completion_metrics
    from cogenerate.plotting import completion_figure, observed_view, save_image_grid

    weights = out.weights[0]
    completions = out.completions[0]
    truth = given.image
    channels, side = int(truth.shape[0]), int(truth.shape[-1])
    known = args.image is None or not args.no_ground_truth
    metrics = _first(completion_metrics(out, truth.unsqueeze(0), mask)) if known else None

    target = Path(args.out).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    files = {name: target / file for name, file in
             (("figure", "completion.png"), ("mean", "mean.png"), ("samples", "samples.png"), ("json", "completion.json"))}
    order = torch.argsort(weights, descending=True)
    shown = order[: min(args.show, args.chains)]
    title = f"{Path(label).name} · {args.mask} · {out.method}, {args.chains} chains, {out.grad_evals} grad evals/chain"
    completion_figure(
        files["figure"], observed=observed_view(truth, operator), completions=completions[shown], mean=out.mean[0],
        std=out.std[0], truth=truth if known else None,
        completion_titles=[f"w = {float(weights[i]):.2f}" for i in shown], title=title,
    )
    save_image_grid(out.mean[0].unsqueeze(0), files["mean"], nrow=1, padding=0)
    save_image_grid(completions[order], files["samples"], scale=2)
    log_evidence = float(out.log_evidence[0])
    noise_scale = out.diagnostics.get("noise_scale", out.noise_std)  # a mixture of generators has only noise_std
    report = {
        "model": label,
        "model_family": model.family,
        "model_iteration": model.config.get("iteration"),
        "input": given.source,
        "image_shape": [channels, side, side],
        "mask": args.mask,
        "hidden_pixels": None if mask is None else int((mask == 0).sum()),
        "method": out.method,
        "chains": args.chains,
        "steps": args.steps,
        "leapfrog": args.leapfrog,
        "budget": args.budget,
        "noise_std": _requested_noise_std(args, model, operator),
        "fitted_noise_std": None if noise_scale is None else float(noise_scale[0]),
        "discriminator_weight": args.discriminator_weight,
        "seed": seed,
        "device": str(device),
        "grad_evals": out.grad_evals,
        "log_evidence": to_plain(log_evidence),
        "ess": float(out.ess[0]),
        "weights": to_plain(weights),
        "metrics": metrics,
        "seconds": round(seconds, 3),
        "command": command_line(args),
        "diagnostics": to_plain(out.diagnostics),
        "files": {key: str(path) for key, path in files.items()},
    }
    files["json"].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return files, report
