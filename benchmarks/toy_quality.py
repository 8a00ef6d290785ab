"""Quality per compute on the paper's toy problem (Fang & Schwing 2019, §3.1).

Generator: the toy GAN trained 15k iterations on five Gaussians on the unit circle
(``runs/toy-gan/iter_0015000``; trained here, ≈1–2 min, if missing). Observed: ``x2 = 0``,
hidden ``x1``; noise σ = 0.05; 100 chains. A chain succeeds when
``‖G(z) − (1, 0)‖² / 2 < 0.01``. For every method and budget (``max_grad_evals`` per chain)
and seeds 0, 1, 2 we report the fraction of successful chains (unweighted and
importance-weighted, ``Σ w_c · success_c``), the gradient evaluations actually spent
(``out.grad_evals``) and the wall time per run (median over the seeds, after one warm-up
call per method, ``torch.set_num_threads(1)``). The reference is the exact posterior mass
within 0.01 (:func:`cogenerate.experiments.toy.reference_posterior`, 10⁶ importance draws):
no correct sampler exceeds it in expectation; with 100 chains the binomial sd of a fraction
is ``sqrt(p (1 − p) / 100)``.

Methods (``cg.complete(G, observed, mask, chains=100, noise_std=0.05, seed=s, ...)``):

- ``gd``: ``method=cg.GD(lr=0.01), steps=B, max_grad_evals=B``
- ``ais``: ``method="ais", steps=B, leapfrog=10, max_grad_evals=B``
- ``smc``: ``method="smc", leapfrog=10, max_grad_evals=B,
  method=cg.SMC(candidates=1000, final_moves=1000)`` (final moves capped by the budget)
- ``smc-prior``: as ``smc`` but started from 100 prior draws, ``cg.SMC(final_moves=1000)``

A budget is skipped for a method when the previous budget's time per gradient evaluation
predicts more than ``--max-seconds`` (20 s) per run.

Commands (from the repository root; the peer first, then this script, which can overlay it):

    .bench-venv/bin/python benchmarks/peer_blackjax.py --json runs/bench/peer_blackjax.json
    .venv/bin/python benchmarks/toy_quality.py --json runs/bench/toy_quality.json \\
        --plot runs/bench/toy_quality.png --peer runs/bench/peer_blackjax.json
    # re-plot without measuring again:
    .venv/bin/python benchmarks/toy_quality.py --from-json runs/bench/toy_quality.json \
        --plot runs/bench/toy_quality.png --peer runs/bench/peer_blackjax.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import cogenerate as cg
from cogenerate.experiments.toy import ToyConfig, reconstruction_error, reference_posterior, toy_observation
from cogenerate.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "runs" / "toy-gan" / "iter_0015000"
NOISE_STD = 0.05
CHAINS = 100
THRESHOLD = 0.01
BUDGETS = [11, 21, 31, 51, 61, 101, 201, 501, 1001, 2001, 5001, 20001]


def method_kwargs(method: str, budget: int) -> dict[str, Any]:
    """The ``cg.complete`` keyword arguments of ``method`` at ``budget`` gradient evaluations."""
    if method == "gd":
        return {"method": cg.GD(lr=0.01), "steps": budget, "max_grad_evals": budget}
    if method == "ais":
        return {"method": "ais", "steps": budget, "leapfrog": 10, "max_grad_evals": budget}
    if method == "smc":
        return {"method": cg.SMC(candidates=1000, final_moves=1000), "leapfrog": 10, "max_grad_evals": budget}
    if method == "smc-prior":
        return {"method": cg.SMC(final_moves=1000), "leapfrog": 10, "max_grad_evals": budget}
    raise ValueError(f"unknown method {method!r}")


def load_generator(prefix: Path) -> torch.nn.Module:
    if not Path(str(prefix) + ".safetensors").exists():
        if prefix != CHECKPOINT:
            raise SystemExit(f"{prefix}.safetensors not found")
        from cogenerate.training.gan import train_toy_gan

        print(f"{prefix}.safetensors missing: training the toy GAN (1–2 min)", flush=True)
        train_toy_gan(iterations=15000, seed=0, checkpoint_dir=ROOT / "runs" / "toy-gan")
    return load_checkpoint(prefix).modules["generator"]


def run_once(generator: torch.nn.Module, method: str, budget: int, seed: int) -> dict[str, Any]:
    observed, mask = toy_observation()
    started = time.perf_counter()
    out = cg.complete(generator, observed, mask, chains=CHAINS, noise_std=NOISE_STD, seed=seed,
                      **method_kwargs(method, budget))
    elapsed = time.perf_counter() - started
    success = (reconstruction_error(out.samples[0]) < THRESHOLD).double()
    return {
        "fraction": success.mean().item(),
        "weighted_fraction": (out.weights[0].double() * success).sum().item(),
        "grad_evals": int(out.grad_evals),
        "ms": 1000 * elapsed,
        "tempering_steps": out.diagnostics.get("steps"),
    }


def markdown(rows: list[dict[str, Any]], seeds: list[int]) -> str:
    head = (["method", "budget"] + [f"frac s{s}" for s in seeds] + ["mean frac"]
            + [f"wfrac s{s}" for s in seeds] + ["mean wfrac", "grad evals", "ms (median)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], str(r["budget"])]
        cells += [f"{f:.2f}" for f in r["fractions"]] + [f"{r['mean_fraction']:.3f}"]
        cells += [f"{f:.3f}" for f in r["weighted_fractions"]] + [f"{r['mean_weighted_fraction']:.3f}"]
        evals = sorted(set(r["grad_evals"]))
        cells += ["/".join(map(str, evals)), f"{r['median_ms']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], reference: float, path: Path, peer: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 5))
    colors = {"gd": "tab:gray", "ais": "tab:blue", "smc": "tab:red", "smc-prior": "tab:orange"}
    for method in dict.fromkeys(r["method"] for r in rows):
        sub = [r for r in rows if r["method"] == method]
        x = [statistics.mean(r["grad_evals"]) for r in sub]
        y = [r["mean_fraction"] for r in sub]
        lo = [r["mean_fraction"] - min(r["fractions"]) for r in sub]
        hi = [max(r["fractions"]) - r["mean_fraction"] for r in sub]
        color = colors.get(method)
        ax.errorbar(x, y, yerr=[lo, hi], marker="o", ms=4, capsize=2, color=color, label=f"{method} (unweighted)")
        ax.plot(x, [r["mean_weighted_fraction"] for r in sub], ls="--", lw=1, color=color,
                label=f"{method} (weighted)")
    if peer is not None:
        peer_colors = ["indigo", "darkviolet", "magenta", "teal", "olive"]
        for i, s in enumerate(peer["summary"]):
            ax.errorbar([s["mean_grad_evals_per_chain"]], [s["mean_fraction"]], yerr=[[s["sd_fraction"] or 0]],
                        marker="*", ms=10, ls="none", capsize=2, color=peer_colors[i % len(peer_colors)],
                        label=f"BlackJAX ATSMC-HMC ε={s['step_size']} (mean±sd, 10 runs)")
    sd = math.sqrt(reference * (1 - reference) / CHAINS)
    ax.axhline(reference, color="black", lw=1.2, label=f"exact posterior mass {reference:.3f}")
    ax.axhspan(reference - sd, reference + sd, color="black", alpha=0.08, label="±1 binomial sd (100 chains)")
    ax.set_xscale("log")
    ax.set_xlabel("gradient evaluations per chain")
    ax.set_ylabel("fraction of chains with error < 0.01")
    ax.set_ylim(0, 1)
    ax.set_title("Toy problem (15k-iteration generator, σ = 0.05, 100 chains, seeds 0–2)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT, help="checkpoint prefix (no suffix)")
    parser.add_argument("--methods", nargs="+", default=["gd", "ais", "smc", "smc-prior"])
    parser.add_argument("--budgets", type=int, nargs="+", default=BUDGETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-seconds", type=float, default=20.0, help="skip budgets predicted to take longer")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--peer", type=Path, default=None, help="peer_blackjax.py JSON to overlay on the plot")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-print the table and re-plot from an earlier --json file instead of measuring")
    args = parser.parse_args()
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        print(markdown(saved["rows"], args.seeds))
        if args.plot is not None:
            peer = json.loads(args.peer.read_text()) if args.peer is not None else None
            plot(saved["rows"], saved["reference"]["fraction_within_0.01"], args.plot, peer)
        return

    torch.set_num_threads(1)
    generator = load_generator(args.checkpoint)
    ref = reference_posterior(generator, ToyConfig(noise_std=NOISE_STD))
    p = ref["fraction_within_0.01"]
    print(f"reference: posterior mass within {THRESHOLD} = {p:.4f} (binomial sd with {CHAINS} chains "
          f"{math.sqrt(p * (1 - p) / CHAINS):.3f}); log p(x_o) = {ref['log_evidence']:.3f}; "
          f"reference ESS {ref['ess']:.0f}", flush=True)

    rows, skipped = [], []
    for method in args.methods:
        run_once(generator, method, 21, seed=999)  # warm-up
        ms_per_eval = None
        for budget in args.budgets:
            if ms_per_eval is not None and ms_per_eval * budget / 1000 > args.max_seconds:
                skipped.append({"method": method, "budget": budget,
                                "predicted_s": round(ms_per_eval * budget / 1000, 1)})
                print(f"skip {method} at {budget}: ~{ms_per_eval * budget / 1000:.0f} s per run predicted", flush=True)
                continue
            runs = [run_once(generator, method, budget, seed) for seed in args.seeds]
            row = {
                "method": method,
                "budget": budget,
                "fractions": [r["fraction"] for r in runs],
                "mean_fraction": statistics.mean(r["fraction"] for r in runs),
                "weighted_fractions": [r["weighted_fraction"] for r in runs],
                "mean_weighted_fraction": statistics.mean(r["weighted_fraction"] for r in runs),
                "grad_evals": [r["grad_evals"] for r in runs],
                "ms": [round(r["ms"], 2) for r in runs],
                "median_ms": statistics.median(r["ms"] for r in runs),
                "tempering_steps": [r["tempering_steps"] for r in runs],
            }
            rows.append(row)
            ms_per_eval = row["median_ms"] / max(1, max(row["grad_evals"]))
            print(f"{method:9s} {budget:6d}: frac {row['mean_fraction']:.3f} wfrac {row['mean_weighted_fraction']:.3f}"
                  f" evals {row['grad_evals']} {row['median_ms']:.0f} ms", flush=True)

    print()
    print(f"Exact reference (10⁶ IS draws): {p:.4f} ± {math.sqrt(p * (1 - p) / CHAINS):.3f} (1 binomial sd, 100 chains)\n")
    table = markdown(rows, args.seeds)
    print(table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "checkpoint": str(args.checkpoint), "noise_std": NOISE_STD, "chains": CHAINS, "threshold": THRESHOLD,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "reference": ref,
            "method_kwargs_at_budget_1001": {m: method_kwargs(m, 1001) for m in args.methods},
            "rows": rows, "skipped": skipped,
        }, indent=2))
    if args.plot is not None:
        peer = json.loads(args.peer.read_text()) if args.peer is not None else None
        plot(rows, p, args.plot, peer)


if __name__ == "__main__":
    main()
