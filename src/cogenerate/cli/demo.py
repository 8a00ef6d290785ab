"""``cogen demo``: the paper's toy experiment, then image completion with the shipped model.

Part 1 trains the toy GAN of Fang & Schwing (2019, §3.1) and compares gd, ais and smc on it.
Part 2 hides the centre of six held-out Fashion-MNIST test images shipped inside the package
(:mod:`cogenerate.data.demo`) and completes them with the shipped ``fashion-mnist`` DCGAN:
several completions, the posterior mean and the std map per image, and a table of the
hidden-region MSE and of how often the truth lies within ±2 predictive std. Neither part needs
a data package or user data.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cogenerate.cli.common import (
    PROGRESS_STEPS, fraction_bar, print_files, progress_bar, seed_of, setup, to_plain,
)
from cogenerate.cli.reproduce import TOY_THREADS, run_experiment

__all__ = ["IMAGE_BUDGET", "IMAGE_CHAINS", "register", "run"]

# Part 2 at 16 chains and 400 gradient evaluations per chain takes about 20 s on one CPU thread.
IMAGE_CHAINS = 16
IMAGE_BUDGET = 400
IMAGE_SHOWN = 4  # completions per image in the figure
TOY_AIS = {"steps": 1000, "leapfrog": 10}


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen demo`` through ``command(name, help, description, epilog)``."""
    parser = command(
        "demo", "toy GAN (gd vs ais vs smc), then completing shipped images (about 1 minute)",
        "1. Train the toy GAN of Fang & Schwing (2019, §3.1) on a ring of five Gaussians, then\n"
        "   co-generate x1 given x2 = 0 (true answer: (1, 0)) with gradient descent, AIS and SMC\n"
        "   from 100 chains each; writes the figures and a results table, and prints the table.\n"
        "2. Hide the centre of six held-out Fashion-MNIST test images shipped with the package and\n"
        f"   complete them with the shipped fashion-mnist DCGAN (default method, {IMAGE_CHAINS} chains,\n"
        f"   {IMAGE_BUDGET} gradient evaluations per chain); writes OUT/images.png (truth, observed,\n"
        "   completions, posterior mean, std map per image) and OUT/images.json, and prints the\n"
        "   hidden-region MSE and how often the truth lies within ±2 predictive std.\n"
        "Needs no data package and no user data. Runs on one CPU thread unless --threads says\n"
        "otherwise (the models are small).",
        "examples:\n"
        "  cogen demo\n"
        "  cogen demo --out /tmp/demo --iterations 5000\n"
        "  cogen demo --only images\n"
        "\nThe full toy reproduction (four checkpoints, 6,000-step AIS as in the paper's Fig. 3) is\n"
        "`cogen reproduce toy`; `cogen complete` completes one image of your own.",
    )
    parser.add_argument("--out", default="cogen-demo", help="output folder (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=15000,
                        help="toy GAN training iterations (default: %(default)s)")
    parser.add_argument("--only", choices=("toy", "images"), default=None,
                        help="run one part only (default: both)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    device = setup(args, default_threads=TOY_THREADS)
    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    out = Path(args.out).expanduser()
    if args.only != "images":
        from cogenerate.experiments.toy import ToyConfig, reproduce_toy

        config = ToyConfig(iterations=(args.iterations,), ais=TOY_AIS, seed=seed_of(args))
        run_experiment(args, reproduce_toy, out, config, "toy demo")
    if args.only != "toy":
        if args.only is None:
            print()
        _complete_shipped_images(args, out, device)
    return 0


def _complete_shipped_images(args: argparse.Namespace, out: Path, device: torch.device) -> None:
    import cogenerate as cg
    from cogenerate.cli.model_spec import load_model
    from cogenerate.data.demo import load_demo_images
    from cogenerate.data.masks import centre_box
    from cogenerate.metrics import completion_metrics
    from cogenerate.operators import Mask
    from cogenerate.plotting import completions_table_figure, observed_view

    model = load_model("fashion-mnist", device=device)
    demo = load_demo_images()
    truth = demo.images
    n, side = truth.shape[0], truth.shape[-1]
    mask = centre_box(n, side)  # (N, 1, 28, 28): the central 14×14 pixels hidden
    observed = torch.where(mask > 0, truth, torch.full_like(truth, float("nan")))  # hidden pixels unseen
    started = time.perf_counter()
    with progress_bar(args, total=PROGRESS_STEPS, desc="complete shipped images", unit="%") as bar:
        bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
        completion = cg.complete(model, observed.to(device), mask.to(device), chains=IMAGE_CHAINS,
                                 max_grad_evals=IMAGE_BUDGET, seed=seed_of(args), progress=fraction_bar(bar))
        fraction_bar(bar)(1.0)
    seconds = time.perf_counter() - started
    completion = completion.to("cpu")
    scores = completion_metrics(completion, truth, mask)
    hidden_mse = scores["estimate"]["hidden_mse"]
    coverage = scores["truth_within_2_predictive_std"]

    order = torch.argsort(completion.weights, dim=1, descending=True)[:, :IMAGE_SHOWN]
    shown = torch.stack([completion.completions[i, order[i]] for i in range(n)])
    labels = [f"{label}\n(test #{index})" for label, index in zip(demo.labels, demo.test_index)]
    out.mkdir(parents=True, exist_ok=True)
    files = {"figure": out / "images.png", "json": out / "images.json"}
    completions_table_figure(
        files["figure"], truth=truth, observed=torch.stack([observed_view(truth[i], Mask(mask[i])) for i in range(n)]),
        completions=shown, mean=completion.mean, std=completion.std, row_labels=labels,
        title=f"shipped fashion-mnist DCGAN · centre {side // 2}×{side // 2} hidden · {completion.method}, "
              f"{IMAGE_CHAINS} chains, {completion.grad_evals} grad evals/chain",
    )
    report = {
        "model": "fashion-mnist",
        "images": [{"label": label, "test_index": index} for label, index in zip(demo.labels, demo.test_index)],
        "mask": "centre",
        "method": completion.method,
        "chains": IMAGE_CHAINS,
        "grad_evals": completion.grad_evals,
        "seed": seed_of(args),
        "seconds": round(seconds, 3),
        "metrics": to_plain(scores),
        "fitted_noise_std": to_plain(completion.noise_std),
        "log_evidence": to_plain(completion.log_evidence),
    }
    files["json"].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    print("| image | hidden MSE | truth within ±2 predictive std |\n|---|---|---|")
    for label, index, error, inside in zip(demo.labels, demo.test_index, hidden_mse.tolist(), coverage.tolist()):
        print(f"| {label} (test #{index}) | {error:.3f} | {inside:.0%} |")
    print(f"| mean | {hidden_mse.mean():.3f} | {coverage.mean():.0%} |")
    print(f"completed {n} shipped Fashion-MNIST test images (centre hidden) with {completion.method}, "
          f"{IMAGE_CHAINS} chains, {completion.grad_evals} gradient evaluations per chain in {seconds:.0f} s; files:")
    print_files(files)
