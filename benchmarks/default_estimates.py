"""Which point estimate from the default's polished chains? Every rule on the same chains.

Issue "A default that wins in every regime", target 1. The default (``smc-polish``) ends with
polished chains and takes one point estimate from them (``SMCPolish.estimate``,
``mean_within``, ``exact_below``). The chains do not depend on that rule, so ``run`` keeps them
(their completions, one file per cell) with gd-best's restarts at the same gradients and prior
draws, and ``table`` scores every rule on them, through the default's own code
(``SMCPolish._mean_or_exact``):

  gd-best             gd-best's estimate, the best of its restarts (the baseline)
  gd-best mean        the mean of gd-best's restarts
  best                the default's best-fitting polished chain (``estimate="best"``)
  mean                the mean of all polished chains, the best fit where it is exact
                      (``mean_within=inf``, the default before)
  within R            the mean of the chains whose misfit is within R times the best's, the
                      best fit where it is exact (``mean_within=R``; R = 2 is the default)

    python benchmarks/default_estimates.py run --targets fm-box,fm-inrange --chains 8 --budget 300 --images 40
    python benchmarks/default_estimates.py run --targets fm-top-half --budget 0 --images 30   # no budget
    python benchmarks/default_estimates.py table runs/estimates/*.pt
    python benchmarks/default_estimates.py table --summary runs/estimates/*.pt   # one row per cell

Targets are those of ``default_regimes.py`` with a pixel mask (not sr4). ``--budget 0`` runs the
default without a budget, as ``cogen complete`` does, and gives gd-best the gradients it spent.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import cogenerate as cg
from cogenerate import metrics
from cogenerate.operators import Gaussian, Mask
from cogenerate.posterior import Posterior

from default_regimes import RECOVERED, add_cell_arguments, method_settings, paired, table_row, targets

RULES = ("gd-best", "gd-best mean", "best", "mean", "within 1.5", "within 2", "within 2.5", "within 3")


def run_cell(kind: str, *, chains: int, budget: int, images: int, candidates: int, seed: int, batch: int) -> dict:
    """The default's polished chains' completions and gd-best's restarts, ``(N, C, *x)`` each."""
    model, truth, operator = targets(kind, images, seed)
    if not isinstance(operator, Mask):
        raise SystemExit(f"{kind}: only pixel-mask targets (the chains' misfit is scored on the mask)")
    generator = getattr(model, "generator", model)
    cell = {"target": kind, "chains": chains, "budget": budget, "images": images, "seed": seed, "truth": truth,
            "mask": operator.mask, "latent_dim": generator.latent_dim}
    spent = [0] * images  # the default's gradients per chain, for gd-best without a budget
    for name in ("smc-polish", "gd-best"):
        settings, noise_std = method_settings(name, candidates)
        started, points, sigmas, own = time.perf_counter(), [], [], []
        for start in range(0, images, batch):
            stop = min(images, start + batch)
            cap = budget or (None if name == "smc-polish" else max(spent[start:stop]))
            out = cg.complete(model, truth[start:stop], Mask(operator.mask[start:stop]), method=settings,
                              chains=chains, noise_std=noise_std, max_grad_evals=cap, steps=cap, seed=seed + start)
            if name == "smc-polish":
                latents = out.diagnostics["polished_latents"]
                with torch.no_grad():
                    completions = generator(latents.flatten(0, 1)).reshape(*latents.shape[:2], *truth.shape[1:])
                spent[start:stop] = [out.grad_evals] * (stop - start)
            else:
                completions = out.samples
            points.append(completions.float())
            own.append(out.estimate.float())
            sigmas.append(out.noise_std.reshape(-1).float())
        cell[name] = {"points": torch.cat(points), "sigma": torch.cat(sigmas), "estimate": torch.cat(own),
                      "grad_evals": max(spent) if name == "smc-polish" or not budget else budget,
                      "seconds": round(time.perf_counter() - started, 1)}
        print(f"{kind} {chains}×{budget} {name}: {cell[name]['seconds']} s", flush=True)
    return cell


def estimates(cell: dict, rule: str) -> torch.Tensor:
    """``(N, *x)`` the point estimates of one rule on a cell's saved chains."""
    name = "gd-best" if rule.startswith("gd-best") else "smc-polish"
    if rule == "gd-best":
        return cell[name]["estimate"]  # its own choice of restart
    points, sigma, truth, mask = cell[name]["points"], cell[name]["sigma"], cell["truth"], cell["mask"]
    out = []
    for i in range(len(truth)):
        posterior = Posterior(None, truth[i:i + 1], Mask(mask[i:i + 1].to(truth)), Gaussian(float(sigma[i])),
                              latent_dim=cell["latent_dim"])
        chains = points[i:i + 1]
        fit = posterior.log_likelihood_of_samples(chains)
        if rule == "best":
            out.append(chains[0, fit[0].argmax()])
            continue
        if rule == "gd-best mean":
            out.append(chains[0].mean(0))
            continue
        within = math.inf if rule == "mean" else float(rule.split()[1])
        settings = cg.SMCPolish(mean_within=within)
        estimate, _, _ = settings._mean_or_exact(posterior, chains, torch.ones(1))
        out.append(estimate[0, 0])
    return torch.stack(out)


def table(files: list[str], summary: bool = False) -> None:
    """One row per cell and rule, or with ``summary`` one row per cell: gd-best, the default
    before (``mean``) and now (``within 2``)."""
    if summary:
        print("| target | chains × grads | images | gd-best | gd-best's restarts, mean | default before (mean) | "
              "**default now** | ratio now | Δ MSE now (95 % paired) | Δ SSIM now (95 % paired) | "
              "recovered (gd-best / before / now) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    else:
        print("| target | chains × grads | images | rule | mean hidden MSE | pooled ratio vs gd-best | "
              "Δ MSE (95 % paired) | Δ SSIM (95 % paired) | recovered |")
        print("|---|---|---|---|---|---|---|---|---|")
    for file in files:
        cell = torch.load(file)
        truth, hidden = cell["truth"], 1 - cell["mask"].to(cell["truth"]).expand_as(cell["truth"])
        inrange = cell["target"].endswith("inrange") or cell["target"].startswith("dc64")
        observed = cell["mask"].to(truth)
        # the observed part pasted in, as complete() does (SSIM runs over the whole image)
        points = {rule: observed * truth + (1 - observed) * estimates(cell, rule) for rule in RULES}
        # The default's rule, replayed here, gives the estimate complete() returned.
        default = f"within {cg.SMCPolish().mean_within:g}"
        gap = ((points[default] - cell["smc-polish"]["estimate"]) * hidden).abs().max()
        if gap > 1e-3:  # float rounding: the generator ran on other batches
            print(f"warning: {file}: the replayed default differs from complete()'s estimate by {gap:.2e}")
        mse = {rule: ((estimate - truth).pow(2) * hidden).flatten(1).sum(1) / hidden.flatten(1).sum(1)
               for rule, estimate in points.items()}
        ssim = {rule: metrics.ssim(estimate, truth) for rule, estimate in points.items()}
        base = mse["gd-best"]
        grads = cell["smc-polish"]["grad_evals"]
        budget = cell["budget"] or f"none ({grads})"
        if summary:
            now = mse[default]
            dm, hm = paired(now.tolist(), base.tolist())
            ds, hs = paired(ssim[default].tolist(), ssim["gd-best"].tolist())
            ratio = now.sum() / base.sum().clamp_min(1e-12)
            recovered = " / ".join(str(int((mse[r] < RECOVERED).sum())) for r in ("gd-best", "mean", default))
            print(f"| {cell['target']} | {cell['chains']} × {budget} | {len(now)} | {base.mean():.5f} | "
                  f"{mse['gd-best mean'].mean():.5f} | {mse['mean'].mean():.5f} "
                  f"({mse['mean'].sum() / base.sum().clamp_min(1e-12):.3f}) | {now.mean():.5f} | "
                  f"{'**' if dm + hm < 0 else ''}{ratio:.3f}{'**' if dm + hm < 0 else ''} | {dm:+.5f} ± {hm:.5f} | "
                  f"{ds:+.4f} ± {hs:.4f} | {recovered + f' of {len(now)}' if inrange else ''} |")
            continue
        for rule, row in mse.items():
            print(table_row(cell, rule, row.tolist(), ssim[rule].tolist(), base.tolist(), ssim["gd-best"].tolist(),
                            inrange=inrange, budget=budget))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    add_cell_arguments(run, budget_help="gradients per chain; 0: none (complete()'s default)")
    run.add_argument("--out", type=Path, default=Path("runs/estimates"))
    tab = sub.add_parser("table")
    tab.add_argument("files", nargs="+")
    tab.add_argument("--summary", action="store_true", help="one row per cell: gd-best, the default before and now")
    args = parser.parse_args()
    if args.command == "table":
        table(args.files, summary=args.summary)
        return
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for kind in args.targets.split(","):
        cell = run_cell(kind, chains=args.chains, budget=args.budget, images=args.images,
                        candidates=args.candidates, seed=args.seed, batch=args.batch)
        path = args.out / f"{kind}_{args.chains}x{args.budget}_s{args.seed}.pt"
        torch.save(cell, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
