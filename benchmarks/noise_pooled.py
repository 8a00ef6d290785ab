"""Fit each shipped model's own noise σ and record it in its shipped JSON (``"noise_std"``).

    .venv/bin/python benchmarks/noise_pooled.py                 # every shipped image model
    .venv/bin/python benchmarks/noise_pooled.py --models fashion-mnist --dry-run

σ is :func:`cogenerate.evaluation.likelihood.fit_noise_std` on the first ``--images`` images of
the model's validation split: each image's maximum-evidence σ (SMC, nothing hidden, 8 chains,
300 gradients), pooled as the root of their mean square. ``complete()`` uses it as the default
noise scale of the model for pixel masks (docs/methods.md, "The model's own noise scale").
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources

import torch

from cogenerate.evaluation.likelihood import fit_noise_std
from cogenerate.evaluation.splits import load_split
from cogenerate.models.loading import load_model
from cogenerate.models.pretrained import PRETRAINED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=sorted(PRETRAINED))
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="print the values, write nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.models:
        model = load_model(name)
        dataset = model.config["dataset"]
        started = time.perf_counter()
        sigma = fit_noise_std(model, load_split(dataset, "validation")[: args.images], seed=args.seed)
        record = {"value": round(sigma, 4), "fitted_on": f"{dataset} validation[:{args.images}]",
                  "command": f"python benchmarks/noise_pooled.py --models {name} --images {args.images} --seed {args.seed}"}
        print(json.dumps({"model": name, **record, "seconds": round(time.perf_counter() - started, 1)}), flush=True)
        if args.dry_run:
            continue
        path = resources.files("cogenerate") / "weights" / f"{name}.json"
        config = json.loads(path.read_text())
        config["noise_std"] = record
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
