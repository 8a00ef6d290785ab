"""Sample quality with and without the critic-based correctors (docs/benchmarks.md, section 6).

For each model and method: draw ``--n`` samples with :func:`cogenerate.sampling.run_sampler`
(the critic calibrated on the Fashion-MNIST validation split, ``test[5000:]``), then score them
with the evaluation protocol of issue 8 (:func:`cogenerate.evaluation.evaluate_samples`: FD with
a bootstrap interval, precision and recall, k = 3, against ``test[:5000]``). Results are appended
to ``--json`` one (model, method) at a time, and entries already there are skipped, so the
script can be stopped and run again.

    .venv/bin/python benchmarks/sampling_quality.py --json runs/bench/sampling_quality.json \
        --models fashion-mnist fashion-mnist-ebgan fashion-mnist-ebgan-pt fashion-mnist-began \
        --methods plain drs mh ddls --n 5000 --mh-chain-length 64 --ddls-steps 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cogenerate.evaluation import evaluate_samples
from cogenerate.evaluation.splits import load_split
from cogenerate.models.loading import load_model
from cogenerate.sampling import run_sampler


def measure(model_spec: str, method: str, *, n: int, seed: int, options: dict[str, Any],
            validation: torch.Tensor, samples_dir: Path | None) -> dict[str, Any]:
    model = load_model(model_spec)
    started = time.perf_counter()
    run = run_sampler(model, method, n=n, rng=torch.Generator().manual_seed(seed), validation=validation, **options)
    seconds = time.perf_counter() - started
    samples = run.result.samples.clamp(-1, 1).float()
    if samples_dir is not None:
        folder = samples_dir / f"{Path(model_spec).name}-{method}"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "samples.npy", samples.numpy())
    quality = evaluate_samples(samples, "fashion-mnist", rng=torch.Generator().manual_seed(seed + 1))
    calibration = run.calibration
    return {
        "model": model_spec, "family": model.family, "method": method, "n": n, "seed": seed,
        "fd": quality.fd, "fd_interval": list(quality.fd_interval),
        "precision": quality.precision_recall.precision, "recall": quality.precision_recall.recall,
        "acceptance_rate": run.result.acceptance_rate, "generator_calls_per_sample": run.result.calls_per_sample,
        "constants": run.result.stats, "seconds": seconds,
        "calibration": None if calibration is None else calibration._asdict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--methods", nargs="+", default=["plain", "drs", "mh", "ddls"])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mh-chain-length", type=int, default=64)
    parser.add_argument("--ddls-steps", type=int, default=100)
    parser.add_argument("--samples-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    path = Path(args.json)
    results: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    done = {(r["model"], r["method"]) for r in results}
    validation = load_split("fashion-mnist", "validation")
    options = {"plain": {}, "drs": {}, "mh": {"chain_length": args.mh_chain_length},
               "ddls": {"steps": args.ddls_steps}}
    for model_spec in args.models:
        for method in args.methods:
            if (model_spec, method) in done:
                continue
            row = measure(model_spec, method, n=args.n, seed=args.seed, options=options[method],
                          validation=validation, samples_dir=Path(args.samples_dir) if args.samples_dir else None)
            results.append(row)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2) + "\n")
            print(f"{model_spec:28s} {method:6s} FD {row['fd']:8.2f} [{row['fd_interval'][0]:.2f}, "
                  f"{row['fd_interval'][1]:.2f}] P {row['precision']:.3f} R {row['recall']:.3f} "
                  f"acc {row['acceptance_rate']:.3f} calls/sample {row['generator_calls_per_sample']:.1f} "
                  f"{row['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
