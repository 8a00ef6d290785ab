"""``cogen evaluate``: the evaluation protocol of docs/evaluation.md for a model or a file of samples.

With ``--model`` it draws ``--generate`` images from the model and scores them (Fréchet
distance with a bootstrap interval, precision and recall in the shipped classifier's features,
against the report split of the data set), then runs the co-generation protocol (hidden MSE,
SSIM, ±2 std coverage, CRPS, log-evidence and gradients per chain, per observation pattern).
With ``--samples FILE.npy --data NAME`` it scores the images in the file. It prints the
figures and writes ``OUT/evaluation.json`` (keys ``fd``, ``precision``, ``recall``,
``cogeneration``, plus what was evaluated and how). The library does the work
(:mod:`cogenerate.evaluation`); this command parses, shows progress and writes the file.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cogenerate.cli.common import StageBars, command_line, print_files, seed_of, setup, to_plain
from cogenerate.cli.model_spec import load_model, model_label, sample_shape
from cogenerate.evaluation.classifier import load_classifier
from cogenerate.evaluation.cogeneration import (
    DEFAULT_BUDGET, DEFAULT_CHAINS, DEFAULT_IMAGES, DEFAULT_MASKS, cogeneration_protocol, cogeneration_table,
    row_as_dict,
)
from cogenerate.evaluation.protocol import DEFAULT_SAMPLES, SampleQuality, evaluate_samples, generate_samples
from cogenerate.evaluation.sample_quality import BOOTSTRAP_RESAMPLES, K_NEAREST
from cogenerate.evaluation.splits import SPLIT_PLANS
from cogenerate.methods import DEFAULT_METHOD

__all__ = ["register", "run"]


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen evaluate`` through ``command(name, help, description, epilog)``."""
    parser = command(
        "evaluate", "measure a model (or a file of samples): FD, precision, recall and the co-generation row",
        "Score a model by the evaluation protocol (docs/evaluation.md) and write OUT/evaluation.json.\n"
        "\n"
        "sample quality: --generate images drawn from the model (or the images of --samples) against\n"
        "  the report split of the data set (fashion-mnist test[:5000], mnist test[:250]), in the\n"
        "  features of the shipped classifier: Fréchet distance (fd) with a 95 % bootstrap interval,\n"
        "  precision and recall (Kynkäänniemi et al. 2019, k = 3).\n"
        "co-generation: the first --images report images completed under each of --masks (random\n"
        "  box, top half hidden, 4× super-resolution; masks fixed by the image index) by --method\n"
        "  with --chains chains and at most --budget gradients per chain: hidden MSE, SSIM, share of\n"
        "  hidden pixels within ±2 predictive std, CRPS, log-evidence, gradients per chain, each the\n"
        "  mean over images with its 95 % interval. Skipped for --samples and with --images 0.",
        "examples:\n"
        "  cogen --threads 1 evaluate --model fashion-mnist --out eval/fm\n"
        "  cogen evaluate --model runs/fm --out runs/fm/eval --images 20\n"
        "  cogen evaluate --samples runs/fm/samples.npy --data fashion-mnist --out eval/fm-samples\n"
        "\n--model takes what `cogen complete --model` takes. --samples is a .npy array of float32\n"
        "(N, 1, 28, 28) images in [-1, 1]. --data defaults to the data set the model was trained on.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", default=None,
                        help="shipped model name, checkpoint file, run folder or module.path:factory")
    source.add_argument("--samples", default=None, help="a .npy file of (N, 1, 28, 28) images in [-1, 1] to score")
    parser.add_argument("--data", default=None, choices=sorted(SPLIT_PLANS),
                        help="data set whose report split and classifier to use (default: the model's)")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="latent size of a module.path:factory generator without a `latent_dim` attribute")
    parser.add_argument("--out", default="cogen-evaluation", help="output folder (default: %(default)s)")
    parser.add_argument("--generate", type=int, default=DEFAULT_SAMPLES,
                        help="images to draw from the model for FD, precision and recall (default: %(default)s)")
    parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP_RESAMPLES,
                        help="bootstrap resamples of the FD interval (default: %(default)s)")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                        help="report images to complete; 0 skips co-generation (default: %(default)s)")
    parser.add_argument("--masks", default=",".join(DEFAULT_MASKS),
                        help="observation patterns, comma-separated (default: %(default)s)")
    parser.add_argument("--method", default=DEFAULT_METHOD, help="co-generation method (default: %(default)s)")
    parser.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help="chains per image (default: %(default)s)")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                        help="generator gradient evaluations per chain (default: %(default)s)")
    parser.add_argument("--loglik", action="store_true",
                        help="also the AIS log-likelihood of --loglik-images report images, σ fitted on the validation "
                             "split, with the BDMC gap on 10 simulated images (docs/families.md)")
    parser.add_argument("--loglik-images", type=int, default=50, help="report images for --loglik (default: %(default)s)")
    parser.add_argument("--loglik-steps", type=int, default=1000, help="AIS temperatures for --loglik (default: %(default)s)")
    parser.set_defaults(handler=run)


def _check(args: argparse.Namespace) -> None:
    for name, low in (("generate", 8), ("bootstrap", 2), ("images", 0), ("chains", 1), ("budget", 1)):
        if getattr(args, name) < low:
            raise ValueError(f"--{name} must be at least {low}, got {getattr(args, name)}")
    if args.samples is not None and args.data is None:
        raise ValueError("--samples needs --data (fashion-mnist or mnist): the data set to compare the samples with")
    if args.latent_dim is not None and args.latent_dim < 1:
        raise ValueError(f"--latent-dim must be at least 1, got {args.latent_dim}")


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, nn.Module):
        return {"type": type(part).__name__, "parameters": sum(p.numel() for p in part.parameters())}
    return {"type": type(part).__name__, "parameters": None}


def _interval(value: float, low: float | None, high: float | None, **extra: Any) -> dict[str, Any]:
    return {"value": value, "low": low, "high": high, **extra}


def _quality_report(quality: SampleQuality, dataset: str) -> dict[str, Any]:
    pr = quality.precision_recall
    common = {"samples": quality.samples, "reference": quality.reference, "reference_split": quality.reference_split,
              "classifier": f"classifier-{dataset}"}
    return {
        "fd": _interval(quality.fd, quality.fd_interval.low, quality.fd_interval.high, level=quality.fd_interval.level,
                        interval="bootstrap over the generated images, bias-corrected percentile",
                        resamples=quality.resamples, **common),
        "precision": _interval(pr.precision, *(pr.precision_interval[:2] if pr.precision_interval else (None, None)),
                               k=pr.k, chunks=pr.chunks, **common),
        "recall": _interval(pr.recall, *(pr.recall_interval[:2] if pr.recall_interval else (None, None)),
                            k=pr.k, chunks=pr.chunks, **common),
    }


def _describe(model: Any, spec: str) -> dict[str, Any]:
    return {
        "model": model_label(spec), "family": model.family,
        "parts": {name: _part(part) for name, part in model.parts.items()},
        "latent_dim": model.latent_dim, "x_shape": list(sample_shape(model)), "conditional": model.conditional,
        "iteration": model.config.get("iteration"), "trained_on": model.config.get("dataset"),
        "trained_by": model.command,
    }


def _load_samples(path: str) -> np.ndarray:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"--samples {path}: no such file")
    try:
        return np.load(file, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"--samples {path}: not a .npy array ({error})") from None


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    _check(args)
    device = setup(args)
    seed = seed_of(args)
    bars = StageBars(args)
    seconds: dict[str, float] = {}
    report: dict[str, Any] = {}
    model = None
    if args.model is not None:
        model = load_model(args.model, device=device, latent_dim=args.latent_dim)
        report.update(_describe(model, args.model))
        dataset = args.data or model.config.get("dataset")
        if dataset not in SPLIT_PLANS:
            raise ValueError(f"the model's data set is {'unknown' if dataset is None else repr(dataset)}: give "
                             f"--data ({' or '.join(sorted(SPLIT_PLANS))})")
        started = time.perf_counter()
        images = generate_samples(model, args.generate, rng=torch.Generator(device).manual_seed(seed),
                                  progress=lambda f: bars("generating", f))
        seconds["generate"] = time.perf_counter() - started
    else:
        dataset = args.data
        images = _load_samples(args.samples)
        report["samples_file"] = str(Path(args.samples).expanduser())
    report["dataset"] = dataset
    classifier = load_classifier(dataset)
    started = time.perf_counter()
    try:
        quality = evaluate_samples(torch.from_numpy(images) if isinstance(images, np.ndarray) else images, dataset,
                                   rng=torch.Generator().manual_seed(seed + 1), k=K_NEAREST, resamples=args.bootstrap,
                                   classifier=classifier, progress=bars)
    finally:
        bars.close()
    seconds["sample_quality"] = time.perf_counter() - started
    report.update(_quality_report(quality, dataset))
    report["classifier_report_accuracy"] = classifier.report_accuracy

    rows = []
    if model is not None and args.images > 0:
        masks = [m.strip() for m in args.masks.split(",") if m.strip()]
        started = time.perf_counter()
        try:
            rows = cogeneration_protocol(model, dataset, rng=torch.Generator(device).manual_seed(seed + 2),
                                         images=args.images, method=args.method, masks=masks, chains=args.chains,
                                         max_grad_evals=args.budget, progress=bars)
        finally:
            bars.close()
        seconds["cogeneration"] = time.perf_counter() - started
        report["cogeneration"] = {"method": rows[0].method, "images": args.images, "chains": args.chains,
                                  "max_grad_evals": args.budget, "report_split": quality.reference_split,
                                  "rows": [row_as_dict(row) for row in rows]}
    else:
        report["cogeneration"] = None
    if args.loglik and model is not None:  # issue 11: AIS log-likelihood with its BDMC gap
        from cogenerate.evaluation.likelihood import loglik_report

        report["loglik"] = loglik_report(model, dataset, images=args.loglik_images, steps=args.loglik_steps, seed=seed)
    report.update(command=command_line(args), device=str(device), seed=seed,
                  seconds={key: round(value, 1) for key, value in seconds.items()})

    target = Path(args.out).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    path = target / "evaluation.json"
    path.write_text(json.dumps(to_plain(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")

    what = report.get("model", report.get("samples_file"))
    print(f"{what}: {quality.samples} samples against {quality.reference_split} ({quality.reference} images), "
          f"features of classifier-{dataset} (report accuracy {classifier.report_accuracy:.3f})")
    pr = quality.precision_recall
    print(f"  FD {quality.fd:.2f} (95 % bootstrap {quality.fd_interval.low:.2f}–{quality.fd_interval.high:.2f})   "
          f"precision {pr.precision:.3f}   recall {pr.recall:.3f}   (k = {pr.k})")
    if rows:
        print(f"co-generation: {rows[0].method}, {args.images} images, {args.chains} chains, "
              f"≤ {args.budget} gradients per chain; mean (95 % interval) over images")
        print(cogeneration_table(rows), end="")
    if report.get("loglik"):
        print(f"log-likelihood: {report['loglik']['mean']:.1f} nats per image (σ {report['loglik']['sigma']:.3f} fitted on "
              f"validation images), BDMC gap {report['loglik']['bdmc_gap']:.1f} nats")
    print_files({"report": path})
    return 0
