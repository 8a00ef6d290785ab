"""Marginalising over a Bayesian GAN's generators: coverage, hidden MSE and CRPS, and how the
evidence weights spread over the M generator samples (issue 11).

    python benchmarks/families_mixture.py --models fashion-mnist-bayesian-gan fashion-mnist \
        fashion-mnist-bayesian-gan:0 --json /work/runs/bench/mixture.json

``NAME:k`` is generator k of a several-generator model alone. Each model completes the first
``--images`` report images under the protocol's top-half mask (default method, 8 chains per
generator, ``--budget`` gradients per chain) and is scored with the co-generation protocol's
per-image metrics (``cogenerate.evaluation.cogeneration``). For a mixture the JSON also holds
the posterior weights p(θ_m | x_o) of every image, and their summary: the mean weight of each
generator, the mean largest weight, and the share of images whose largest weight exceeds 0.99.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import cogenerate as cg
from cogenerate.evaluation.cogeneration import completion_scores, protocol_operator
from cogenerate.evaluation.scores import summarise
from cogenerate.evaluation.splits import load_split
from cogenerate.mixture import single_generator_models
from cogenerate.models.loading import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--mask", default="top-half")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = load_split("fashion-mnist", "report")[: args.images]
    out = Path(args.json)
    table = json.loads(out.read_text()) if out.exists() else {}
    for spec in args.models:
        name, _, index = spec.partition(":")
        model = load_model(name)
        if index:
            model = single_generator_models(model)[int(index)]
        rng = torch.Generator().manual_seed(args.seed)
        started = time.perf_counter()
        scores, weights = [], []
        for start in range(0, args.images, args.batch):
            stop = min(args.images, start + args.batch)
            operator = protocol_operator(args.mask, range(start, stop), size=28)
            completion = cg.complete(model, images[start:stop], operator, chains=args.chains,
                                     max_grad_evals=args.budget, rng=rng)
            scores.append({k: v.detach().double() for k, v in completion_scores(completion, images[start:stop]).items()})
            if "generator_weights" in completion.diagnostics:
                weights.append(completion.diagnostics["generator_weights"].double())
        per_image = {key: torch.cat([s[key] for s in scores]) for key in scores[0]}
        row = {key: summarise(value)._asdict() for key, value in per_image.items()}
        row["seconds"] = round(time.perf_counter() - started, 1)
        if weights:
            w = torch.cat(weights)
            row["generator_weights"] = {
                "mean_per_generator": w.mean(0).tolist(), "mean_largest": float(w.max(1).values.mean()),
                "share_above_0.99": float((w.max(1).values > 0.99).double().mean()),
                "effective_generators": float((1 / w.pow(2).sum(1)).mean()), "per_image": w.tolist()}
        table[spec] = row
        out.write_text(json.dumps(table, indent=1, default=float))
        print(spec, {k: round(row[k]["mean"], 4) for k in ("hidden_mse", "ssim", "within_2_std", "crps")},
              {k: v for k, v in row.get("generator_weights", {}).items() if k != "per_image"}, f"{row['seconds']} s",
              flush=True)


if __name__ == "__main__":
    main()
