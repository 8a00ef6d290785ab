"""Is the default's spread the posterior's? Per-image posterior std and proper scores against a large-SMC reference.

Issue "A default that wins in every regime", targets 2–4. Held-out Fashion-MNIST test[:5000]
images with the top half hidden, the shipped DCGAN. For each image:

- the default (16 chains, ``--budget`` gradients per chain, noise std fitted by evidence
  unless ``--noise-std`` is given): its mean posterior std over the hidden pixels and the
  fraction of hidden pixels whose truth lies within ±2 predictive std;
- the reference: SMC with ``--ref-chains`` particles and ``--ref-budget`` gradients per chain
  (``--ref-seeds`` seeds pooled) at the noise std the default used for that image; each
  seed's completions are cached in ``--cache`` (one file per image and seed) so it is computed once;
- the ratio default / reference of the mean std, and the spread of that ratio one gets from
  16 particles drawn from the reference itself (what 16 chains can do at best);
- with two or more seeds, the reference's own noise: the ratio of seed 1000's std to seed
  1001's, and the default against seed 1001's reference beside 16 draws of seed 1000's
  against it (the yardstick for a sampler that draws as well as the reference method, scored
  against a reference that is not exact);
- target 4, for the default, each ``--compare`` method (gd-best's restarts: the same chains and
  budget, or with ``--budget 0`` the gradients the default spent) and the reference, over the
  hidden pixels of each one's weighted completions: the CRPS (per pixel) and the energy score (the whole hidden vector), both proper scoring rules
  that reward accuracy and honest spread together (lower is better;
  :mod:`cogenerate.evaluation.scores`), the point estimate's hidden MSE, and the best-of-K
  hidden MSE (the best of the method's 16 completions; for the reference, the mean over 50
  draws of 16 of its particles by weight).

    python benchmarks/default_spread.py --images 20 --budget 300 --ref-chains 1024 --ref-budget 1500

Prints one row per image and the geometric mean and spread of the ratios. ``--figure PATH``
draws, for the first ``--figure-images`` images, one row each: the observed half, the truth, the
default's and the reference's std maps (black 0, white ≥ ``STD_WHITE``), then
``FIGURE_DRAWS`` of the default's completions and as many of the reference's, drawn by weight.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import cogenerate as cg
from cogenerate.data.images import load_dataset
from cogenerate.data.masks import top_half
from cogenerate.evaluation.scores import crps_ensemble, energy_score
from cogenerate.models.pretrained import load_pretrained
from cogenerate.plotting import hidden_as_grey, save_image_grid

SUBSAMPLES = 50  # draws of 16 reference particles: the ratio's spread and the reference's best-of-K
FIGURE_DRAWS = 6  # completions per method in a figure row
STD_WHITE = 0.4  # a std map's white


def std_map(completions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The weighted per-pixel std of ``(C, 1, H, W)`` completions, as an image in ``[-1, 1]``."""
    mean = (weights[:, None, None, None] * completions).sum(0)
    std = (weights[:, None, None, None] * (completions - mean).pow(2)).sum(0).sqrt()
    return (2 * std / STD_WHITE - 1).clamp(-1, 1)


def scores(completions: torch.Tensor, log_weights: torch.Tensor, truth: torch.Tensor, hidden: torch.Tensor) -> dict:
    """CRPS, energy score and best-of-K hidden MSE of one image's weighted ``(C, ...)`` completions."""
    x = completions.flatten(1)[:, hidden.flatten()].unsqueeze(0)  # (1, C, P)
    y = truth.flatten()[hidden.flatten()].unsqueeze(0)  # (1, P)
    w = log_weights.unsqueeze(0)
    return {"crps": float(crps_ensemble(x, w, y).mean()), "energy": float(energy_score(x, w, y)[0]),
            "best_of_k": float((x[0] - y).pow(2).mean(1).min())}


def hidden_std(out: cg.Completion, hidden: torch.Tensor) -> torch.Tensor:
    return out.std.flatten(1)[:, hidden.flatten()].mean(1)


def reference_spread(subsample_ratios: list[list[float]], *, trials: int = 2000, seed: int = 0) -> torch.Tensor:
    """What target 2's spread of ratios would be if each image's 16 completions were 16 draws of
    its reference: per trial one of each image's subsample ratios, the geometric sd of those
    across the images; the 10th, 50th and 90th percentiles over ``trials``."""
    table = torch.tensor(subsample_ratios).log()  # (images, subsamples)
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(table.shape[1], (trials, table.shape[0]), generator=g)
    drawn = table.gather(1, picks.T).T  # (trials, images)
    return drawn.std(dim=1).exp().quantile(torch.tensor([0.1, 0.5, 0.9]))


def weighted_std(completions: torch.Tensor, weights: torch.Tensor, hidden: torch.Tensor) -> float:
    """Mean over hidden pixels of the weighted std of ``(C, ...)`` completions."""
    x = completions.flatten(1)[:, hidden.flatten()]
    mean = (weights[:, None] * x).sum(0)
    return float(((weights[:, None] * (x - mean).pow(2)).sum(0)).sqrt().mean())


def reference(generator, x, mask, *, sigma: float, args, key: str) -> dict:
    """The reference's completions and weights for one image, seeds pooled, each seed cached in its own file.

    Returns ``{"completions", "log_weights", "seeds"}``: the pooled particles (every seed's
    weights normalised, so each seed counts alike) and, per seed, its own ``{"completions",
    "log_weights"}`` (the reference's seed-to-seed noise).
    """
    seeds = []
    for s in range(args.ref_seeds):
        path = Path(args.cache) / f"{key}-seed{1000 + s}.pt"
        if not path.exists():
            ref = cg.complete(generator, x, mask, method=cg.SMC(leapfrog=5, candidates=4 * args.ref_chains,
                                                                final_moves=10 ** 6, compile=args.ref_compile),
                              chains=args.ref_chains, max_grad_evals=args.ref_budget, noise_std=sigma, seed=1000 + s)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"completions": ref.completions[0], "log_weights": torch.log_softmax(ref.log_weights[0], 0)},
                       path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
        seeds.append(torch.load(path))
    return {"completions": torch.cat([r["completions"] for r in seeds]),
            "log_weights": torch.log_softmax(torch.cat([r["log_weights"] for r in seeds]), 0), "seeds": seeds}


def draws(weights: torch.Tensor, chains: int, g: torch.Generator) -> list[torch.Tensor]:
    """``SUBSAMPLES`` draws of ``chains`` particle indices by weight, with replacement."""
    return [torch.multinomial(weights, chains, replacement=True, generator=g) for _ in range(SUBSAMPLES)]


def subsample_ratios(completions: torch.Tensor, picks: list[torch.Tensor], hidden: torch.Tensor, *,
                     against: float) -> torch.Tensor:
    """Per draw in ``picks``, the std of the drawn particles over ``against``."""
    uniform = torch.full((len(picks[0]),), 1 / len(picks[0]))
    return torch.tensor([weighted_std(completions[pick], uniform, hidden) for pick in picks]) / against


def parse(spec: str):
    """Settings from ``name`` or ``name{json options}``."""
    from cogenerate.methods import method_from_options

    base, _, options = spec.partition("{")
    return method_from_options(base, json.loads("{" + options) if options else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--budget", type=int, default=300, help="gradients per chain; 0 for no cap (complete()'s default)")
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--method", default="smc-polish", help="name, or name{json options}")
    parser.add_argument("--compare", default="gd-best",
                        help="';'-separated methods scored beside it (target 4), '' for none")
    parser.add_argument("--ref-chains", type=int, default=1024)
    parser.add_argument("--ref-budget", type=int, default=1500)
    parser.add_argument("--ref-seeds", type=int, default=2)
    parser.add_argument("--ref-compile", action="store_true",
                        help="run the reference's HMC moves compiled (same answer up to rounding, ~1.5× faster at 1,024 chains)")
    parser.add_argument("--cache", default="runs/spread-reference", help="folder of the references' completions")
    parser.add_argument("--sigma-from-default", action="store_true",
                        help="run --method at the σ the plain default fits (one more default run per image), so "
                             "that methods are compared against one reference per image")
    parser.add_argument("--noise-std", default="auto",
                        help="σ of the default's run: 'auto' (fitted per image) or a number, e.g. the model's own "
                             "(complete()'s default for the shipped model); the reference runs at the σ used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--figure", type=Path, default=None, help="write the completions' figure here (PNG)")
    parser.add_argument("--figure-images", type=int, default=6)
    args = parser.parse_args()
    args.budget = args.budget or None
    torch.set_num_threads(args.threads)
    method = parse(args.method)
    compared = {spec: parse(spec) for spec in args.compare.split(";") if spec}
    generator = load_pretrained("fashion-mnist").modules["generator"].eval()
    test = load_dataset("fashion-mnist", split="test")[:5000]
    rng = torch.Generator().manual_seed(args.seed)
    index = torch.randperm(len(test), generator=rng)[: args.images].tolist()
    mask = top_half(1, 28)[0]
    hidden = mask[0] == 0
    ratios, rows, figure = [], [], []
    for i in index:
        x = test[i : i + 1]
        noise_std = args.noise_std if args.noise_std == "auto" else float(args.noise_std)
        if args.sigma_from_default:  # the image's σ is the plain default's (seed 0's), as the reference's
            noise_std = float(cg.complete(generator, x, mask, chains=args.chains, max_grad_evals=args.budget,
                                          seed=i).noise_std[0])
        out = cg.complete(generator, x, mask, method=method, chains=args.chains, max_grad_evals=args.budget,
                          seed=args.seed + i, noise_std=noise_std)
        sigma = float(out.noise_std[0])
        default_std = float(hidden_std(out, hidden)[0])
        inside = ((out.mean[0] - x[0]).abs() <= 2 * out.predictive_std[0])[0][hidden].float().mean().item()
        key = f"{i}-{sigma:.5f}-{args.ref_chains}-{args.ref_budget}"
        ref = reference(generator, x, mask, sigma=sigma, args=args, key=key)
        weights = ref["log_weights"].exp()
        ref_std = weighted_std(ref["completions"], weights, hidden)
        g = torch.Generator().manual_seed(0)
        picks = draws(weights, args.chains, g)
        sub_ratios = subsample_ratios(ref["completions"], picks, hidden, against=ref_std)
        seed_stds = [weighted_std(r["completions"], r["log_weights"].exp(), hidden) for r in ref["seeds"]]
        ref_scores = scores(ref["completions"], ref["log_weights"], x[0], hidden)
        uniform = torch.full((args.chains,), -torch.log(torch.tensor(float(args.chains))).item())
        ref_scores["best_of_k"] = sum(scores(ref["completions"][pick], uniform, x[0], hidden)["best_of_k"]
                                      for pick in picks) / SUBSAMPLES
        ref_mean = (weights[:, None] * ref["completions"].flatten(1)).sum(0)
        ref_scores["mse"] = float((ref_mean - x[0].flatten())[hidden.flatten()].pow(2).mean())

        def scored(result: cg.Completion) -> dict:
            row = scores(result.completions[0], result.log_weights[0], x[0], hidden)
            row["mse"] = float((result.estimate[0] - x[0])[0][hidden].pow(2).mean())
            row["mean_mse"] = float((result.mean[0] - x[0])[0][hidden].pow(2).mean())
            return row

        ratio = default_std / ref_std
        ratios.append(ratio)
        row = {"image": i, "sigma": round(sigma, 4), "grad_evals": int(out.grad_evals), "default_std": round(default_std, 4), "reference_std": round(ref_std, 4),
               "ratio": round(ratio, 3), "subsample_ratio_p10_p90": [round(float(sub_ratios.quantile(q)), 3) for q in (0.1, 0.9)],
               "subsample_ratios": [round(float(r), 4) for r in sub_ratios],
               "within_2_predictive_std": round(inside, 3),
               "seed_stds": [round(v, 4) for v in seed_stds],
               "scores": {"default": scored(out), "reference": ref_scores}}
        for spec, settings in compared.items():
            other = cg.complete(generator, x, mask, method=settings, chains=args.chains, seed=args.seed + i,
                                max_grad_evals=args.budget or int(out.grad_evals), noise_std=noise_std)
            row["scores"][spec] = scored(other)
        if len(ref["seeds"]) >= 2:  # 16 draws of seed 1000's reference against seed 1001's
            first = ref["seeds"][0]
            row["ratio_to_seed1"] = round(default_std / seed_stds[1], 4)
            cross = subsample_ratios(first["completions"], draws(first["log_weights"].exp(), args.chains, g), hidden,
                                     against=seed_stds[1])
            row["cross_subsample_ratios"] = [round(float(r), 4) for r in cross]
        row["scores"] = {name: {k: round(v, 4) for k, v in values.items()} for name, values in row["scores"].items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.figure is not None and len(figure) < args.figure_images:
            drawn = torch.multinomial(weights, FIGURE_DRAWS, replacement=True, generator=g)
            shown = torch.multinomial(out.weights[0], FIGURE_DRAWS, replacement=False, generator=g) \
                if int((out.weights[0] > 0).sum()) >= FIGURE_DRAWS else torch.arange(FIGURE_DRAWS)
            figure.append(torch.cat([hidden_as_grey(x, mask), x, std_map(out.completions[0], out.weights[0])[None],
                                     std_map(ref["completions"], weights)[None], out.completions[0, shown],
                                     ref["completions"][drawn]]))
    logs = torch.tensor(ratios).log()
    low, mid, high = reference_spread([r["subsample_ratios"] for r in rows]).tolist()
    print(f"\ngeometric mean ratio {logs.mean().exp():.3f}, geometric sd {logs.std().exp():.3f} (16 draws of the "
          f"references instead: {mid:.3f}, 10th–90th percentile {low:.3f}–{high:.3f}); "
          f"truth within ±2 predictive std: {sum(r['within_2_predictive_std'] for r in rows) / len(rows):.3f}")
    if "ratio_to_seed1" in rows[0]:
        seeds = torch.tensor([r["seed_stds"][0] / r["seed_stds"][1] for r in rows]).log()
        to_one = torch.tensor([r["ratio_to_seed1"] for r in rows]).log()
        low, mid, high = reference_spread([r["cross_subsample_ratios"] for r in rows]).tolist()
        print(f"reference seed 1000 / seed 1001: geometric mean {seeds.mean().exp():.3f}, geometric sd "
              f"{seeds.std().exp():.3f}; default / seed 1001's reference: geometric mean {to_one.mean().exp():.3f}, "
              f"geometric sd {to_one.std().exp():.3f} (16 draws of seed 1000's reference instead: {mid:.3f}, "
              f"10th–90th percentile {low:.3f}–{high:.3f})")
    for name in rows[0]["scores"]:
        means = {k: sum(r["scores"][name][k] for r in rows) / len(rows) for k in rows[0]["scores"][name]}
        print(f"{name:>12}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
    if figure:
        per_row = figure[0].shape[0]
        print(f"wrote {save_image_grid(torch.cat(figure), args.figure, nrow=per_row, scale=3)}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"args": settings, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
