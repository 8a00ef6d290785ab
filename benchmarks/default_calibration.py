"""Where the default's under-coverage comes from (issue "A default that wins in every regime", target 3).

Held-out Fashion-MNIST images (the validation split, ``test[5000:]``), the co-generation
protocol's masks, the shipped DCGAN unless ``--model``. Three probes, each printing the share of
hidden pixels whose truth lies within ±2 (and ±3) predictive std, the CRPS over hidden pixels,
the hidden MSE, the mean noise std and the log evidence:

- ``noise``: the default (8 chains × 300 gradients) with Gaussian and with Laplace noise, each
  scale fitted by evidence;
- ``reference``: SMC with ``--chains`` particles and a ``--budget`` (e.g. 128 × 1,000), one
  image at a time, σ fitted by evidence;
- ``band``: the default, then a second ``complete()`` with the observed pixels within ``--band``
  px of the hidden region held out; σ² for the hidden pixels = the held-out pixels' mean squared
  error minus the posterior variance there (never below the evidence σ).

    python benchmarks/default_calibration.py noise --images 20
    python benchmarks/default_calibration.py reference --images 8 --chains 128 --budget 1000
    python benchmarks/default_calibration.py band --images 20 --band 3
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import cogenerate as cg
from cogenerate.evaluation.cogeneration import completion_scores, protocol_operator
from cogenerate.evaluation.scores import crps_gaussian_mixture
from cogenerate.evaluation.splits import load_split


def coverage_and_crps(out: cg.Completion, truth: torch.Tensor, sigma: torch.Tensor) -> dict[str, float]:
    """Per-image-mean coverage at ±2 and ±3 predictive std and CRPS, the predictive noise ``sigma`` ``(B,)``."""
    hidden = out.hidden.bool()
    count = hidden.flatten(1).sum(1)
    predictive = (out.std.pow(2) + sigma.view(-1, *[1] * (truth.dim() - 1)).pow(2)).sqrt()
    error = (truth - out.mean).abs()
    crps = crps_gaussian_mixture(out.samples, out.log_weights, sigma, truth)
    return {
        "within_2": float((((error <= 2 * predictive) & hidden).flatten(1).sum(1) / count).mean()),
        "within_3": float((((error <= 3 * predictive) & hidden).flatten(1).sum(1) / count).mean()),
        "least_covered_image": float((((error <= 2 * predictive) & hidden).flatten(1).sum(1) / count).min()),
        "crps": float(((crps * hidden).flatten(1).sum(1) / count).mean()),
    }


def summary(out: cg.Completion, truth: torch.Tensor, sigma: torch.Tensor | None = None) -> dict[str, float]:
    scores = completion_scores(out, truth)
    row = coverage_and_crps(out, truth, out.noise_std if sigma is None else sigma)
    row.update({key: float(scores[key].mean()) for key in ("hidden_mse", "log_evidence")})
    row["sigma"] = float((out.noise_std if sigma is None else sigma).mean())
    return {key: round(value, 4) for key, value in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("noise", "reference", "band"))
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--mask", default="top-half")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--band", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = load_split("fashion-mnist", "validation")[: args.images]
    mask = protocol_operator(args.mask, list(range(args.images)), size=28).mask
    observed = images * mask
    if args.probe == "noise":
        for noise in ("gaussian", "laplace"):
            out = cg.complete(args.model, observed, mask, chains=args.chains, max_grad_evals=args.budget,
                              noise=noise, seed=0)
            print(noise, summary(out, images), flush=True)
    elif args.probe == "reference":
        rows = []
        for i in range(args.images):
            out = cg.complete(args.model, observed[i:i + 1], mask[i:i + 1], chains=args.chains,
                              method=cg.SMC(leapfrog=5, candidates=4 * args.chains), max_grad_evals=args.budget, seed=0)
            rows.append(summary(out, images[i:i + 1]) | {"grad_evals": out.grad_evals})
            print(i, rows[-1], flush=True)
        print("mean", {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in rows[0]})
    else:
        hidden = 1 - mask
        band = (F.max_pool2d(hidden, 2 * args.band + 1, stride=1, padding=args.band) > 0).float() * mask
        out = cg.complete(args.model, observed, mask, chains=args.chains, max_grad_evals=args.budget, seed=0)
        held = cg.complete(args.model, images * (mask - band), mask - band, chains=args.chains,
                           max_grad_evals=args.budget, seed=1)
        squared = ((images - held.mean).pow(2) - held.std.pow(2)) * band
        sigma = (squared.flatten(1).sum(1) / band.flatten(1).sum(1).clamp_min(1)).clamp_min(0).sqrt()
        print("evidence sigma", summary(out, images), flush=True)
        print("band sigma", summary(out, images, torch.maximum(sigma, out.noise_std)), flush=True)


if __name__ == "__main__":
    main()
