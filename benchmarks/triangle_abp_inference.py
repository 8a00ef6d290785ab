"""ABP's inference step: its Langevin dynamics against this package's sampler, at equal gradients (issue 12).

    python benchmarks/triangle_abp_inference.py --occlusions b30 p.5 --budgets 100 300 \
        --models /work/runs/bench/incomplete-models --json /work/runs/bench/triangle_abp_inference.json

For a generator trained by ABP on occluded images (``benchmarks/triangle_incomplete.py
--save-models``), the first ``--images`` of the same occluded training images are inferred
again from scratch, 8 chains per image from z ~ N(0, I), under the same target
log p(z) + log N(x_o; m ⊙ g(z), σ²) with ABP's σ = 0.3:

- ``langevin``: ``budget`` Langevin moves of step 0.1 (ABP's own step,
  :func:`cogenerate.training.incomplete.langevin_latents`); the estimate is the mean of the
  8 chains' g(z) on the hidden pixels;
- ``complete``: ``complete()`` with its default method at ``max_grad_evals=budget`` per chain,
  the same σ; the estimate is its weighted posterior mean.

Both are scored with Table III's recovery error on the hidden pixels (mean ± standard error
over the images). This compares the inference steps at a fixed generator; swapping the
sampler *inside* ABP's learning loop is not done here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import cogenerate as cg
from cogenerate.data.images import load_dataset
from cogenerate.models.loading import load_model
from cogenerate.training.incomplete import langevin_latents, occlusion_masks, recovery_error

CHAINS = 8
NOISE_STD = 0.3
"""ABP's σ in ``train_abp_on_incomplete``."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--occlusions", nargs="+", default=["b30", "p.5"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[100, 300])
    parser.add_argument("--models", required=True, help="the --save-models folder of triangle_incomplete.py")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--train-images", type=int, default=3000, help="--images of the run that trained the models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.json)
    table = json.loads(out.read_text()) if out.exists() else {}
    train = load_dataset("fashion-mnist", split="train")
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[: args.train_images]
    truth = train[pick][: args.images]
    for occlusion in args.occlusions:
        mask = occlusion_masks(occlusion, args.train_images, seed=args.seed)[: args.images]
        observed = truth * mask
        model = load_model(Path(args.models) / f"abp-{occlusion}")
        generator = model.generator.eval()
        for budget in args.budgets:
            for sampler in ("langevin", "complete"):
                key = f"{sampler}/{occlusion}/{budget}"
                if key in table:
                    continue
                started = time.perf_counter()
                if sampler == "langevin":
                    rng = torch.Generator().manual_seed(args.seed)
                    n = observed.shape[0]
                    z0 = torch.randn(n * CHAINS, model.latent_dim, generator=rng)
                    z = langevin_latents(generator, z0, observed.repeat_interleave(CHAINS, 0),
                                         mask.repeat_interleave(CHAINS, 0), steps=budget, step_size=0.1,
                                         noise_std=NOISE_STD, rng=rng)
                    with torch.no_grad():
                        mean = generator(z).reshape(n, CHAINS, *observed.shape[1:]).mean(1)
                    estimate = mask * observed + (1 - mask) * mean
                else:
                    result = cg.complete(model, observed, mask, chains=CHAINS, max_grad_evals=budget,
                                         noise_std=NOISE_STD, seed=args.seed)
                    estimate = result.estimate
                errors = recovery_error(estimate, truth, mask)
                table[key] = {"sampler": sampler, "occlusion": occlusion, "budget": budget, "images": len(truth),
                              "error": float(errors.mean()), "error_se": float(errors.std() / len(errors) ** 0.5),
                              "seconds": round(time.perf_counter() - started, 1)}
                out.write_text(json.dumps(table, indent=1))
                print(f"{key}: error {table[key]['error']:.4f} ± {table[key]['error_se']:.4f} "
                      f"({table[key]['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
