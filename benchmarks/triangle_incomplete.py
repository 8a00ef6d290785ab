"""Learning from incomplete images (Han et al. 2019, Table III) at this machine's scale (issue 12).

    python benchmarks/triangle_incomplete.py --methods triangle vae abp --occlusions p.5 p.7 mb10 b20 b30 \
        --images 5000 --iterations 1500 --json /work/runs/bench/triangle_incomplete.json

For each (method, occlusion): the first ``--images`` images of a fixed permutation (seed 0) of
the Fashion-MNIST training set, each with its own occlusion (drawn with seed 0), train the
family from scratch with :func:`cogenerate.training.incomplete.train_on_incomplete` (zero-fill,
then refill with g(μ(x̃)) after each step that saw the image), and score the recovered training
images on their hidden pixels (Table III's error: mean absolute difference / pixel range).
Width 32, latent 32, batch 64, each family's own defaults otherwise. ``abp`` is alternating
back-propagation (:func:`cogenerate.training.incomplete.train_abp_on_incomplete`: a DCGAN
generator, one persistent latent per image, ``--langevin-steps`` moves of step 0.1 at σ = 0.3
per visit); ``abp-hmc`` is the same with this package's HMC kernel as the inference step (3
moves of 3 leapfrog steps plus the start: the same 10 gradients per visit).

Occlusions, scaled from the paper's 64 px CelebA to 28 px by 28/64 (rounded): P.5 / P.7 hide
50 % / 70 % of the pixels at random; MB10 hides 10 random 4×4 blocks (10×10 at 64 px);
B20 / B30 hide one random 9×9 / 13×13 block (20×20 / 30×30 at 64 px).

Rows are appended to ``--json`` as they finish; pairs already there are skipped. ``--figure``
writes truth / occluded / recovered rows of the first 8 images of each finished pair.
``--save-models DIR`` keeps each trained model as ``DIR/<method>-<occlusion>``.

The co-generation angle: ``--complete MODEL ...`` skips training and instead completes the
first ``--complete-images`` of the same occluded training images with ``complete()`` (default
method, 8 chains, seed 0) on each model (``{occlusion}`` in a path is replaced, so a model
trained on that occlusion with ``--save-models`` can be named), scoring the point estimate
with the same recovery error, e.g.::

    python benchmarks/triangle_incomplete.py --occlusions b30 --complete dcgan \
        /work/runs/bench/incomplete-models/triangle-{occlusion} --json /work/runs/bench/triangle_complete.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cogenerate.data.images import load_dataset
from cogenerate.training.families import resolve_settings
from cogenerate.training.incomplete import (occlusion_masks, recover, recovery_error, train_abp_on_incomplete,
                                            train_on_incomplete)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["triangle", "vae"])
    parser.add_argument("--occlusions", nargs="+", default=["p.5", "p.7", "mb10", "b20", "b30"])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--langevin-steps", type=int, default=10, help="ABP: Langevin moves per visit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    parser.add_argument("--figure", default=None, help="PNG of truth / occluded / recovered per finished pair")
    parser.add_argument("--save-models", default=None, help="folder to keep each trained model in")
    parser.add_argument("--complete", nargs="+", default=None, help="models to complete the occluded images with")
    parser.add_argument("--complete-images", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = json.loads(out.read_text()) if out.exists() else {}
    train = load_dataset("fashion-mnist", split="train")
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[: args.images]
    truth = train[pick]
    if args.complete:
        complete_rows(args, truth, table, out)
        return
    for occlusion in args.occlusions:
        mask = occlusion_masks(occlusion, len(truth), seed=args.seed)
        for method in args.methods:
            key = f"{method}/{occlusion}"
            if key in table:
                continue
            started = time.perf_counter()
            rng = torch.Generator().manual_seed(args.seed)
            if method in ("abp", "abp-hmc"):
                run = train_abp_on_incomplete(truth * mask, mask, latent_dim=32, width=32, batch_size=64,
                                              iterations=args.iterations, rng=rng, langevin_steps=args.langevin_steps,
                                              inference="hmc" if method == "abp-hmc" else "langevin")
                recovered = run.recovered
            else:
                settings = resolve_settings(method, {"width": 32, "latent_dim": 32, "batch_size": 64})
                run = train_on_incomplete(method, truth * mask, mask, settings=settings, iterations=args.iterations,
                                          rng=rng)
                recovered = recover(run.modules, run.filled, truth * mask, mask)
            errors = recovery_error(recovered, truth, mask)
            table[key] = {
                "method": method, "occlusion": occlusion, "images": len(truth), "iterations": args.iterations,
                "hidden_fraction": float(1 - mask.mean()), "error": float(errors.mean()),
                "error_se": float(errors.std() / len(errors) ** 0.5),
                "zero_fill_error": float(recovery_error(truth * mask, truth, mask).mean()),
                "seconds": round(time.perf_counter() - started, 1),
                "last_losses": run.losses[-1],
            }
            table[key + "/examples"] = {"recovered": recovered[:8].tolist()}
            if args.save_models:
                save_trained(Path(args.save_models) / f"{method}-{occlusion}", method,
                             {"generator": run.generator} if method.startswith("abp") else run.modules)
            out.write_text(json.dumps(table))
            print(f"{key}: error {table[key]['error']:.4f} ± {table[key]['error_se']:.4f} "
                  f"({table[key]['seconds']:.0f} s)", flush=True)
    if args.figure:
        from cogenerate.plotting import save_image_grid

        rows = []
        for occlusion in args.occlusions:
            mask = occlusion_masks(occlusion, len(truth), seed=args.seed)[:8]
            rows += [truth[:8], truth[:8] * mask]
            rows += [torch.tensor(table[f"{m}/{occlusion}/examples"]["recovered"]) for m in args.methods
                     if f"{m}/{occlusion}/examples" in table]
        save_image_grid(torch.cat(rows), args.figure, nrow=8, scale=2)


def save_trained(prefix: Path, method: str, modules: dict) -> None:
    """Keep a model trained on occluded images (its parts by role) as a checkpoint."""
    from cogenerate.models.base import GenerativeModel
    from cogenerate.models.loading import save_model

    parts = {role: module for role, module in modules.items() if role in ("generator", "energy", "encoder")}
    save_model(prefix, GenerativeModel(family=method, parts=parts, latent_dim=32, x_shape=(1, 28, 28)))


def complete_rows(args: argparse.Namespace, truth: torch.Tensor, table: dict, out: Path) -> None:
    """``complete()`` on the first ``--complete-images`` occluded images with each ``--complete`` model."""
    import cogenerate as cg
    from cogenerate.models.loading import load_model

    for occlusion in args.occlusions:
        mask = occlusion_masks(occlusion, len(truth), seed=args.seed)[: args.complete_images]
        images = truth[: args.complete_images]
        for spec in args.complete:
            name = spec.format(occlusion=occlusion)
            key = f"complete:{name}/{occlusion}"
            if key in table:
                continue
            started = time.perf_counter()
            result = cg.complete(load_model(name), images * mask, mask, chains=8, seed=args.seed)
            errors = recovery_error(result.estimate, images, mask)
            table[key] = {"method": f"complete({name})", "occlusion": occlusion, "images": len(images),
                          "error": float(errors.mean()), "error_se": float(errors.std() / len(errors) ** 0.5),
                          "grad_evals": result.grad_evals, "seconds": round(time.perf_counter() - started, 1)}
            out.write_text(json.dumps(table))
            print(f"{key}: error {table[key]['error']:.4f} ± {table[key]['error_se']:.4f} "
                  f"({table[key]['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
