"""Does the default method win in every regime? Point estimates against gd-best at equal compute.

Issue "A default that wins in every regime". Each run is one cell: a generator and a kind of
target, a number of chains and a gradient budget per chain; every method gets the same
gradients per chain and the same prior draws (``--candidates``, scored by forward passes).

Targets (``--targets``):
  fm-box, fm-centre, fm-top-half, fm-sr4   held-out Fashion-MNIST test[:5000] images, shipped DCGAN
  fm-inrange, mnist-inrange               G(z*), z* from the prior, random boxes, shipped DCGANs
  dc64-100, dc64-512                      64×64 RGB DCGAN (width 64) with PyTorch's default
                                          initialisation and latent 100 / 512, batch-norm statistics
                                          recalibrated on 1,000 prior draws; G(z*) targets, 15–30 px boxes

    python benchmarks/default_regimes.py run --targets fm-box --chains 8 --budget 300 --images 40 --out runs/regimes
    python benchmarks/default_regimes.py run --targets fm-box --methods "smc-polish@auto" ...   # σ fitted per image
    python benchmarks/default_regimes.py table runs/regimes/*.json

``run`` writes one JSON per (target, chains, budget) with per-image hidden MSE and SSIM of each
method's point estimate (its ``estimate``, and its weighted mean of the completions, a row of
its own in the table); ``table`` prints the one table: per cell, the pooled MSE ratio
(Σ default / Σ gd-best), the paired 95 % interval of the per-image MSE and SSIM differences,
and for in-range targets how many targets each method recovers (hidden MSE < 1e-3).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import cogenerate as cg
from cogenerate import metrics
from cogenerate.data.masks import make_operator, random_box
from cogenerate.methods import method_from_options
from cogenerate.models.dcgan import DCGANGenerator
from cogenerate.operators import Mask

RECOVERED = 1e-3  # hidden MSE below which an in-range target counts as recovered
HELD_OUT = 5000  # test[:5000] is the reported split
TARGET_SEED_OFFSET = 1_000_003  # in-range targets' latents: a stream apart from the methods' seeds


def recalibrated_dcgan(latent_dim: int, *, seed: int, draws: int = 1000) -> torch.nn.Module:
    """A 64×64 RGB DCGAN generator with PyTorch's default initialisation whose batch-norm
    running statistics are the averages over ``draws`` prior samples (so samples vary)."""
    torch.manual_seed(seed)
    g = DCGANGenerator(latent_dim, image_size=64, channels=3, width=64)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    g.train()
    rng = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _ in range(draws // 100):
            g(torch.randn(100, latent_dim, generator=rng))
    return g.eval()


def targets(kind: str, n: int, seed: int) -> tuple[object, torch.Tensor, object]:
    """(model, images (n, C, H, W), operator) of a target kind: the shipped model (which carries
    its own noise σ) or, for dc64, a bare generator."""
    from cogenerate.models.pretrained import load_pretrained_model

    rng = torch.Generator().manual_seed(seed)
    # z* from a stream of its own: the methods' prior draws (seeded seed + first image) must
    # not contain the targets' latents (with one seed, the first in-range targets were among
    # the candidates, and every method recovered them)
    latent_rng = torch.Generator().manual_seed(seed + TARGET_SEED_OFFSET)
    if kind.startswith("fm-") and kind != "fm-inrange":
        from cogenerate.data.images import load_dataset

        model = load_pretrained_model("fashion-mnist")  # the model, with its own noise σ
        test = load_dataset("fashion-mnist", split="test")[:HELD_OUT]
        images = test[torch.randperm(len(test), generator=rng)[:n]]
        spec = {"fm-box": "box", "fm-centre": "centre", "fm-top-half": "top-half", "fm-sr4": "sr4"}[kind]
        return model, images, make_operator(spec, n=n, size=28, rng=rng)
    if kind in ("fm-inrange", "mnist-inrange"):
        model = load_pretrained_model("mnist" if kind.startswith("mnist") else "fashion-mnist")
        with torch.no_grad():
            images = model.generator(torch.randn(n, model.latent_dim, generator=latent_rng))
        return model, images, Mask(random_box(n, 28, rng=rng))
    if kind in ("dc64-100", "dc64-512"):
        generator = recalibrated_dcgan(int(kind.split("-")[1]), seed=seed)
        size = 64
    else:
        raise SystemExit(f"unknown target kind {kind!r}")
    with torch.no_grad():
        images = generator(torch.randn(n, generator.latent_dim, generator=latent_rng))
    return generator, images, Mask(random_box(n, size, rng=rng))


def method_settings(name: str, candidates: int) -> tuple[cg.MethodSettings, float | str | None]:
    """``name`` at ``candidates`` prior draws, and its noise std; ``name`` may carry JSON options,
    ``smc-polish{"lr":0.02}``, and a noise std after "@": ``smc-polish@auto``, ``gd-best@0.3``
    (default: ``complete()``'s, the model's own σ for the shipped models)."""
    name, _, noise = name.partition("@")
    noise_std = None if not noise else noise if noise == "auto" else float(noise)
    base, _, options = name.partition("{")
    options = json.loads("{" + options) if options else {}
    if base in ("gd-best", "smc", "smc-polish") and "candidates" not in options:
        options["candidates"] = candidates
    return method_from_options(base, options), noise_std


def run_cell(kind: str, *, chains: int, budget: int, images: int, methods: list[str], candidates: int,
             seed: int, batch: int) -> dict:
    generator, truth, operator = targets(kind, images, seed)
    hidden = operator.full(images, tuple(truth.shape[1:])) if isinstance(operator, Mask) else None
    rows = {}
    for name in methods:
        settings, noise_std = method_settings(name, candidates)
        started = time.perf_counter()
        estimates, means, misfits, grads, scales = [], [], [], [], []
        for start in range(0, images, batch):
            stop = min(images, start + batch)
            op = Mask(operator.mask[start:stop]) if isinstance(operator, Mask) else operator
            out = cg.complete(generator, truth[start:stop], op, method=settings, chains=chains, noise_std=noise_std,
                              max_grad_evals=budget, steps=budget, seed=seed + start)
            estimates.append(out.estimate)
            means.append(out.mean)
            if out.diagnostics.get("best_misfit") is not None:
                misfits.append(out.diagnostics["best_misfit"])
            grads.append(out.grad_evals)
            scales.append(out.noise_std)
        mask = hidden if hidden is not None else torch.zeros_like(truth)

        def scored(estimate: torch.Tensor) -> dict:
            mse = torch.stack([metrics.masked_mse(estimate[i:i + 1], truth[i:i + 1], mask[i:i + 1])[0]
                               for i in range(images)])
            return {"mse": mse.tolist(), "ssim": metrics.ssim(estimate, truth).tolist()}

        rows[name] = {**scored(torch.cat(estimates)), "grad_evals": max(grads),
                      "noise_std": torch.cat(scales).tolist(), "seconds": round(time.perf_counter() - started, 1),
                      "weighted_mean": scored(torch.cat(means))}
        if misfits:  # the default's best polished fit, residual-implied noise scale over σ*
            rows[name]["best_misfit"] = torch.cat(misfits).tolist()
        mse, ssim = torch.tensor(rows[name]["mse"]), torch.tensor(rows[name]["ssim"])
        print(f"{kind} {chains}×{budget} {name}: mean hidden MSE {mse.mean():.5f}, SSIM {ssim.mean():.4f}, "
              f"{rows[name]['seconds']} s", flush=True)
    return {"target": kind, "chains": chains, "budget": budget, "images": images, "candidates": candidates,
            "seed": seed, "methods": rows}


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    half = 1.96 * d.std().item() / math.sqrt(len(d)) if len(d) > 1 else math.nan
    return d.mean().item(), half


def table_row(cell: dict, name: str, mse: list[float], ssim: list[float], base_mse: list[float],
              base_ssim: list[float], *, inrange: bool, budget: object = None, extra: str = "") -> str:
    """One markdown row: a method's (or rule's) mean hidden MSE, pooled ratio and paired Δ MSE
    and Δ SSIM against the baseline's, and for in-range targets the recovered count."""
    dm, hm = paired(mse, base_mse)
    ds, hs = paired(ssim, base_ssim)
    ratio = sum(mse) / max(sum(base_mse), 1e-12)
    recovered = f"{sum(v < RECOVERED for v in mse)}/{len(mse)}" if inrange else ""
    return (f"| {cell['target']} | {cell['chains']} × {cell['budget'] if budget is None else budget} | {len(mse)} | "
            f"{name} | {sum(mse) / len(mse):.5f} | {ratio:.3f} | {dm:+.5f} ± {hm:.5f} | {ds:+.4f} ± {hs:.4f} | "
            f"{recovered} |{extra}")


def add_cell_arguments(parser: argparse.ArgumentParser, *, budget_help: str | None = None) -> None:
    """The options that pick a cell: targets, chains, budget, images, prior draws, batch, seed."""
    parser.add_argument("--targets", default="fm-box")
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--budget", type=int, default=300, help=budget_help)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=20, help="images per complete() call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)


def table(files: list[str], baseline: str = "gd-best") -> None:
    print("| target | chains × grads | images | method | mean hidden MSE | pooled MSE ratio vs gd-best | "
          "Δ MSE (95 % paired) | Δ SSIM (95 % paired) | recovered | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for file in files:
        cell = json.loads(Path(file).read_text())
        base = cell["methods"][baseline]
        inrange = cell["target"].endswith("inrange") or cell["target"].startswith("dc64")
        rows = [(name, row) for name, row in cell["methods"].items()]
        rows += [(f"{name} (weighted mean)", {**row["weighted_mean"], "seconds": row["seconds"]})
                 for name, row in cell["methods"].items() if "weighted_mean" in row]
        for name, row in rows:
            print(table_row(cell, name, row["mse"], row["ssim"], base["mse"], base["ssim"], inrange=inrange,
                            extra=f" {row['seconds']} |"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    add_cell_arguments(run)
    run.add_argument("--methods", default="gd-best,smc-polish", help="comma-separated; name{json options} allowed")
    run.add_argument("--out", default="runs/regimes")
    tab = sub.add_parser("table")
    tab.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.command == "table":
        table(args.files)
        return
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(";" if ";" in args.methods or "{" in args.methods else ",") if m]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind in args.targets.split(","):
        cell = run_cell(kind, chains=args.chains, budget=args.budget, images=args.images, methods=methods,
                        candidates=args.candidates, seed=args.seed, batch=args.batch)
        path = out / f"{kind}_{args.chains}x{args.budget}_s{args.seed}.json"
        if path.exists():  # merge methods run separately on the same cell
            old = json.loads(path.read_text())
            old["methods"].update(cell["methods"])
            cell = old
        path.write_text(json.dumps(cell))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
