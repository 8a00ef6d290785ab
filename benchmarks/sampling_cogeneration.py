"""Co-generation with and without the critic's energy in the target (docs/benchmarks.md, section 8).

The co-generation protocol of issue 8 (:func:`cogenerate.evaluation.cogeneration_protocol`): the
first 100 report images (``test[:5000]``), random boxes and top half, the default method,
8 chains and 300 gradient evaluations per chain. Each model is run twice at the same fixed noise
std (σ = 0.1; the fitted σ of the default method cannot be combined with a critic term):

- ``λ = 0``: the target is ``log p(z) + log p(x_o | G(z))``;
- ``λ = 1``: plus ``1 · log_ratio(G(z))`` (tempered with the likelihood): the DCGAN's logit, or an
  energy family's ``−E(G(z)) / energy_scale`` with the shipped, calibrated ``energy_scale``.

The protocol function has no ``discriminator_weight`` option, so for ``λ ≠ 0`` this script hands
it :func:`cogenerate.complete` with ``discriminator_weight=λ`` bound (``unittest.mock.patch``);
everything else (images, masks, seeds, scoring) is the protocol's own. Results are appended to
``--json`` one (model, λ, σ) at a time; entries already there are skipped. ``--noise-std auto
--weights 0`` runs the protocol's own default (σ fitted), comparable with the DCGAN rows of
section 6.

    .venv/bin/python benchmarks/sampling_cogeneration.py --json runs/bench/sampling_cogeneration.json \
        --models fashion-mnist fashion-mnist-ebgan fashion-mnist-ebgan-pt fashion-mnist-began
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any
from unittest import mock

import torch

import cogenerate
import cogenerate.evaluation.cogeneration as protocol
from cogenerate.models.loading import load_model

MASKS = ("box", "top-half")


def measure(model_spec: str, weight: float, *, noise_std: float | str, images: int, seed: int) -> dict[str, Any]:
    model = load_model(model_spec)
    complete = functools.partial(cogenerate.complete, discriminator_weight=weight) if weight else cogenerate.complete
    with mock.patch.object(protocol, "complete", complete):
        rows = protocol.cogeneration_protocol(model, "fashion-mnist", rng=torch.Generator().manual_seed(seed),
                                              images=images, masks=MASKS, noise_std=noise_std)
    return {"model": model_spec, "family": model.family, "discriminator_weight": weight, "noise_std": noise_std,
            "energy_scale": model.energy_scale, "seed": seed,
            "rows": [protocol.row_as_dict(row) for row in rows],
            "per_image": {row.mask: {k: v.tolist() for k, v in row.per_image.items()} for row in rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 1.0])
    parser.add_argument("--noise-std", type=lambda t: t if t == "auto" else float(t), default=0.1,
                        help="a number, or auto (the protocol's default: σ fitted by maximum evidence; λ = 0 only)")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    path = Path(args.json)
    results: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    done = {(r["model"], r["discriminator_weight"], r["noise_std"]) for r in results}
    for model_spec in args.models:
        for weight in args.weights:
            if (model_spec, weight, args.noise_std) in done:
                continue
            entry = measure(model_spec, weight, noise_std=args.noise_std, images=args.images, seed=args.seed)
            results.append(entry)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
            for row in entry["rows"]:
                print(f"{model_spec:28s} λ={weight:g} {row['mask']:9s} MSE {row['hidden_mse']['mean']:.4f} "
                      f"SSIM {row['ssim']['mean']:.3f} ±2std {row['within_2_std']['mean']:.3f} "
                      f"{row['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
