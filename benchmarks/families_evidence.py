"""Does the encoder start keep the evidence right? log p(x_o) from the encoder-started and the
prior-started SMC at one fixed σ (issue 11).

    python benchmarks/families_evidence.py --model fashion-mnist-vae --sigma 0.223 --images 20 \
        --budgets 100,1000 --json /work/runs/bench/evidence_vae.json

SMC (the sampler alone, no polish) with ``--chains`` chains at each budget, on the first
``--images`` report images under the protocol's boxes and top halves, σ fixed (the value fitted
on the validation split, docs/benchmarks.md §9). Starts (``--starts``): "prior" (the prior
path from prior draws), "encoder" (the prior path from the encoder's draws weighted p/q) and
"bridge" (the path from q itself, ``temper_from="init"``). All estimate the same number without
bias, so their per-image differences should go to 0 as the budget grows; the log of an
unbiased estimate is biased low, so the larger one is the better one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import cogenerate as cg
from cogenerate.evaluation.cogeneration import protocol_operator
from cogenerate.evaluation.splits import load_split
from cogenerate.models.loading import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion-mnist-vae")
    parser.add_argument("--sigma", type=float, required=True)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--budgets", default="100,1000")
    parser.add_argument("--masks", nargs="+", default=["box", "top-half"])
    parser.add_argument("--starts", default="prior,encoder,bridge", help="comma-separated: prior, encoder, bridge")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model)
    images = load_split("fashion-mnist", "report")[: args.images]
    rows = []
    for mask in args.masks:
        operator = protocol_operator(mask, range(args.images), size=28)
        for budget in (int(b) for b in args.budgets.split(",")):
            found = {}
            for start in args.starts.split(","):
                used = model.with_parts(encoder=None) if start == "prior" else model
                settings = cg.SMC(temper_from="init" if start == "bridge" else "prior")
                started = time.perf_counter()
                out = cg.complete(used, images, operator, method=settings, chains=args.chains, noise_std=args.sigma,
                                  max_grad_evals=budget, seed=1)
                hidden = out.hidden.to(images)
                mse = ((out.estimate - images).pow(2) * hidden).flatten(1).sum(1) / hidden.flatten(1).sum(1)
                found[start] = (out.log_evidence.double(), time.perf_counter() - started, out.grad_evals, mse)
            row = {"mask": mask, "budget": budget}
            for start, (evidence, wall, spent, mse) in found.items():
                row.update({start: float(evidence.mean()), f"{start}_wall_s": round(wall, 1),
                            f"{start}_grad_evals": spent, f"{start}_hidden_mse": float(mse.mean())})
                if start != "prior" and "prior" in found:
                    difference = evidence - found["prior"][0]
                    row.update({f"{start}_minus_prior_mean": float(difference.mean()),
                                f"{start}_minus_prior_sd": float(difference.std()),
                                f"{start}_higher": float((difference > 0).double().mean())})
            rows.append(row)
            print(json.dumps(row), flush=True)
            Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
