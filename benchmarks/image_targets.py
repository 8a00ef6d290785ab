"""Where sampling must earn its cost: the image targets of the issue "Images end to end".

Held-out Fashion-MNIST test images, the final DCGAN checkpoint, every method at the same
gradient budget per chain, the same chains and the same prior draws (candidates) for the
methods that start from the best of many.

    python benchmarks/image_targets.py point --chains 8 --images 100 --budget 300
    python benchmarks/image_targets.py point --chains 32 --images 40 --budget 300
    python benchmarks/image_targets.py diversity --chains 16 --images 16 --budget 300

`point`: hidden-region MSE / SSIM of each method's point estimate on random boxes; the
ratio default/gd-best must be ≤ 1 for MSE (and ≥ 1 for SSIM).
`diversity`: the top half hidden; best of K completions on the hidden region (sampler
vs gd-best's K restarts, target ≥ 20 % lower MSE), the rank correlation between the
posterior std map and the actual error over hidden pixels (target ≥ 0.5), and how often
the truth lies within two posterior std of the posterior mean (calibration).

smc and smc-polish fit the noise std by maximum evidence, as `complete()` does by default;
`--fixed-noise` gives them `--noise-std` (the other methods always use it). With gd-best
in the run (or `--baseline` naming an earlier run on the same images), the paired
per-image differences against it are printed too.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from cogenerate.api import DEFAULT_METHOD
from cogenerate.data.images import load_dataset
from cogenerate.data.masks import make_operator
from cogenerate.experiments.images import ImagesConfig, evaluate_method, summarise


def load_model(spec: str):
    if spec.endswith((".json", ".safetensors")) or "/" in spec:
        from cogenerate.checkpoint import load_checkpoint

        modules = load_checkpoint(spec).modules
    else:
        from cogenerate.models.pretrained import load_pretrained

        modules = load_pretrained(spec).modules
    return modules["generator"], modules.get("discriminator")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=["point", "diversity"])
    parser.add_argument("--model", default="fashion-mnist", help="shipped model name or checkpoint path")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--noise-std", type=float, default=0.1)
    parser.add_argument("--fixed-noise", action="store_true",
                        help="smc and smc-polish use --noise-std too, instead of fitting it by maximum evidence "
                             "(noise_std='auto', the default of complete())")
    parser.add_argument("--methods", default=None, help="comma-separated (default depends on the target)")
    parser.add_argument("--options", type=json.loads, default={},
                        help='further method options as JSON, e.g. \'{"smc-polish": {"prior_weight": 0}}\'')
    parser.add_argument("--label", default="", help="appended to the method names in the rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--baseline", default=None,
                        help="JSON of an earlier run with the same images whose gd-best row to compare against")
    args = parser.parse_args()

    generator, discriminator = load_model(args.model)
    test = load_dataset("fashion-mnist", split="test")
    rng = torch.Generator().manual_seed(args.seed)
    images = test[torch.randperm(len(test), generator=rng)[: args.images]]
    spec = "box" if args.target == "point" else "top-half"
    operator = make_operator(spec, n=len(images), size=images.shape[-1], rng=rng)
    default_methods = ["gd-best", DEFAULT_METHOD, "smc", "smc-polish"] if args.target == "point" else ["gd-best", "smc", "ais"]
    methods = list(dict.fromkeys(args.methods.split(",") if args.methods else default_methods))
    config = ImagesConfig(images=args.images, chains=args.chains, budget=args.budget, candidates=args.candidates,
                          noise_std=args.noise_std, fit_noise=not args.fixed_noise,
                          seed=args.seed, method_options=args.options)
    rows = []
    for method in methods:
        started = time.perf_counter()
        result = evaluate_method(generator, images, operator, method, config, discriminator=discriminator)
        row = {"method": method + args.label, "mask": spec, "images": args.images, "chains": args.chains,
               "grad_evals_per_chain": result["grad_evals_per_chain"], "budget": args.budget,
               "prior_draws": config.candidates if method in ("gd-best", "smc", "smc-polish") else args.chains,
               "seconds": round(time.perf_counter() - started, 1)}
        scale = result["noise_scale"]
        row["noise_scale"] = (f"{scale.median():.3f} ({scale.min():.3f}–{scale.max():.3f})" if scale.max() > scale.min()
                              else f"{scale.max():.2f}")
        for key in ("mse_hidden_estimate", "ssim_estimate", "mse_hidden_best", "ssim_best", "std_error_rank_correlation",
                    "coverage_2std"):
            mean, half = summarise(result[key])
            row[key] = f"{mean:.4f} ± {half:.4f}"
            row[key + "_mean"] = mean
            row[key + "_values"] = [round(v, 6) for v in result[key].tolist()]
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = next((r for r in rows if r["method"] == "gd-best"), None)
    if base is None and args.baseline:
        with open(args.baseline) as f:
            base = next(r for r in json.load(f) if r["method"] == "gd-best")
        rows.insert(0, base)
    if base is None:
        base = rows[0]
    print()
    print("| method | chains | grad evals/chain | prior draws | noise std | hidden MSE (estimate) | SSIM (estimate) | "
          "hidden MSE (best of K) | std–error rank corr. | truth within 2 std | MSE ratio vs gd-best | "
          "SSIM ratio | best-of-K ratio vs gd-best | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['chains']} | {r['grad_evals_per_chain']} | {r['prior_draws']} | "
              f"{r.get('noise_scale', '')} | {r['mse_hidden_estimate']} | {r['ssim_estimate']} | {r['mse_hidden_best']} | "
              f"{r['std_error_rank_correlation']} | {r.get('coverage_2std', '')} | "
              f"{r['mse_hidden_estimate_mean'] / base['mse_hidden_estimate_mean']:.3f} | "
              f"{r['ssim_estimate_mean'] / base['ssim_estimate_mean']:.3f} | "
              f"{r['mse_hidden_best_mean'] / base['mse_hidden_best_mean']:.3f} | {r['seconds']} |")
    if "ssim_estimate_values" in base:
        print("\nPaired differences against gd-best on the same images (mean ± 95 % half-width):\n")
        print("| method | Δ hidden MSE (estimate) | Δ SSIM (estimate) | Δ hidden MSE (best of K) |")
        print("|---|---|---|---|")
        for r in rows:
            if r is base:
                continue
            cells = []
            for key in ("mse_hidden_estimate", "ssim_estimate", "mse_hidden_best"):
                mean, half = summarise(torch.tensor(r[key + "_values"]) - torch.tensor(base[key + "_values"]))
                cells.append(f"{mean:+.4f} ± {half:.4f}")
            print(f"| {r['method']} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
