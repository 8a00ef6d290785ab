"""Overhead of the samplers over the generator itself.

ratio = wall time of ``cg.complete(...)`` / wall time of the same number of bare generator
forward + backward passes (gradient with respect to z only, parameters frozen) on the same
batch of B·C latents. 1.00 means the sampler's own bookkeeping costs nothing.

    python benchmarks/overhead.py                 # toy MLP and DCGAN-sized 64×64 generator
    python benchmarks/overhead.py --model fashion-mnist   # the shipped 28×28 DCGAN too
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import cogenerate as cg
from cogenerate.models.dcgan import DCGANGenerator
from cogenerate.models.toy import ToyGenerator


def bare_passes(generator: torch.nn.Module, n: int, latent_dim: int, passes: int) -> float:
    """Seconds for ``passes`` forward+backward passes on a batch of ``n`` latents."""
    z = torch.randn(n, latent_dim)
    for p in generator.parameters():
        p.requires_grad_(False)
    generator.eval()
    started = time.perf_counter()
    for _ in range(passes):
        zz = z.detach().requires_grad_(True)
        x = generator(zz)
        (grad,) = torch.autograd.grad(x.pow(2).sum(), zz)
    return time.perf_counter() - started


def measure(name: str, generator: torch.nn.Module, observed: torch.Tensor, mask: torch.Tensor, *, chains: int,
            method: str, budget: int, repeats: int) -> dict:
    kwargs = {"leapfrog": 10, "max_grad_evals": budget}
    if method == "ais":
        kwargs["steps"] = budget
    cg.complete(generator, observed, mask, method=method, chains=chains, **{**kwargs, "max_grad_evals": 21})  # warm-up
    ratios, times = [], []
    for r in range(repeats):
        started = time.perf_counter()
        out = cg.complete(generator, observed, mask, method=method, chains=chains, seed=r, **kwargs)
        elapsed = time.perf_counter() - started
        bare = bare_passes(generator, observed.shape[0] * chains, generator.latent_dim, out.grad_evals)
        ratios.append(elapsed / bare)
        times.append(elapsed)
    return {
        "generator": name, "method": method, "batch": observed.shape[0] * chains, "grad_evals": out.grad_evals,
        "seconds_complete": round(min(times), 3), "ratio_median": round(sorted(ratios)[len(ratios) // 2], 3),
        "ratio_min": round(min(ratios), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default=None, help="also measure a shipped model, e.g. fashion-mnist")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # random weights for the stand-in generators (benchmark script, not library)
    rows = []
    toy = ToyGenerator()
    for method in ("ais", "smc"):
        rows.append(measure(f"toy MLP (2→{toy.hidden}×{toy.depth}→2)", toy, torch.zeros(1, 2), torch.tensor([0.0, 1.0]), chains=100,
                            method=method, budget=1001, repeats=args.repeats))
    dcgan = DCGANGenerator(100, image_size=64, channels=3, width=64)
    image = torch.zeros(1, 3, 64, 64)
    mask = torch.ones(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 0
    for method in ("ais", "smc"):
        rows.append(measure("DCGAN 64×64×3 (random weights)", dcgan, image, mask, chains=16, method=method, budget=51,
                            repeats=args.repeats))
    if args.model:
        from cogenerate.models.pretrained import load_pretrained

        g = load_pretrained(args.model).modules["generator"]
        x = torch.zeros(8, 1, 28, 28)
        m = torch.ones(8, 1, 28, 28)
        m[..., 8:20, 8:20] = 0
        for method in ("ais", "smc"):
            rows.append(measure(f"{args.model} DCGAN 28×28", g, x, m, chains=8, method=method, budget=201,
                                repeats=args.repeats))
    print(json.dumps(rows, indent=2))
    print("| generator | method | batch (B·C) | grad evals | complete() s | overhead ratio (median) | min |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['generator']} | {r['method']} | {r['batch']} | {r['grad_evals']} | {r['seconds_complete']} | "
              f"{r['ratio_median']} | {r['ratio_min']} |")


if __name__ == "__main__":
    main()
