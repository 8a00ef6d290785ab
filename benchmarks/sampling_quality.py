"""Sample quality with and without the critic-based correctors (docs/benchmarks.md, section 8).

For each model and method: draw ``--n`` samples with :func:`cogenerate.sampling.run_sampler`
(the critic calibrated on the Fashion-MNIST validation split, ``test[5000:]``), then score them
with the evaluation protocol of issue 8 (:func:`cogenerate.evaluation.evaluate_samples`: FD with
a bootstrap interval, precision and recall, k = 3, against ``test[:5000]``). Results are appended
to ``--json`` one (model, method) at a time; samples already drawn (``--samples-dir``) and
entries already scored are not redone, so the script can be stopped and run again, and
``--no-scores`` draws the samples before the classifier is there.

    .venv/bin/python benchmarks/sampling_quality.py --json runs/bench/sampling_quality.json \
        --samples-dir runs/bench/samples --models fashion-mnist fashion-mnist-ebgan fashion-mnist-ebgan-pt fashion-mnist-began \
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


def draw(model_spec: str, method: str, *, n: int, seed: int, options: dict[str, Any], validation: torch.Tensor,
         folder: Path) -> dict[str, Any]:
    """Sample with ``method`` and write ``folder/samples.npy`` and ``folder/sample.json``."""
    model = load_model(model_spec)
    started = time.perf_counter()
    run = run_sampler(model, method, n=n, rng=torch.Generator().manual_seed(seed), validation=validation, **options)
    seconds = time.perf_counter() - started
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "samples.npy", run.result.samples.clamp(-1, 1).float().numpy())
    calibration = run.calibration
    meta = {
        "model": model_spec, "family": model.family, "method": method, "n": n, "seed": seed,
        "acceptance_rate": run.result.acceptance_rate, "generator_calls_per_sample": run.result.calls_per_sample,
        "constants": run.result.stats, "seconds": seconds,
        "calibration": None if calibration is None else calibration._asdict(),
    }
    (folder / "sample.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def score(folder: Path, seed: int) -> dict[str, Any]:
    """The evaluation protocol's FD, precision and recall of ``folder/samples.npy``."""
    meta = json.loads((folder / "sample.json").read_text())
    samples = torch.from_numpy(np.load(folder / "samples.npy"))
    quality = evaluate_samples(samples, "fashion-mnist", rng=torch.Generator().manual_seed(seed + 1))
    return {**meta, "fd": quality.fd, "fd_interval": list(quality.fd_interval)[:2],
            "precision": quality.precision_recall.precision, "recall": quality.precision_recall.recall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, help="scores of every (model, method), appended")
    parser.add_argument("--samples-dir", required=True, help="where each (model, method) keeps its samples")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--methods", nargs="+", default=["plain", "drs", "mh", "ddls"])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mh-chain-length", type=int, default=64)
    parser.add_argument("--ddls-steps", type=int, default=100)
    parser.add_argument("--no-scores", action="store_true", help="only draw the samples (score them later)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    path, samples_dir = Path(args.json), Path(args.samples_dir)
    results: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    done = {(r["model"], r["method"]) for r in results}
    validation = load_split("fashion-mnist", "validation")
    options = {"plain": {}, "drs": {}, "mh": {"chain_length": args.mh_chain_length},
               "ddls": {"steps": args.ddls_steps}}
    for model_spec in args.models:
        for method in args.methods:
            if (model_spec, method) in done:
                continue
            folder = samples_dir / f"{Path(model_spec).name}-{method}"
            if not (folder / "sample.json").is_file():
                meta = draw(model_spec, method, n=args.n, seed=args.seed, options=options[method],
                            validation=validation, folder=folder)
                print(f"{model_spec:28s} {method:6s} drawn: acc {meta['acceptance_rate']:.3f} "
                      f"calls/sample {meta['generator_calls_per_sample']:.1f} {meta['seconds']:.0f} s", flush=True)
            if args.no_scores:
                continue
            row = score(folder, args.seed)
            results.append(row)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2) + "\n")
            print(f"{model_spec:28s} {method:6s} FD {row['fd']:8.2f} [{row['fd_interval'][0]:.2f}, "
                  f"{row['fd_interval'][1]:.2f}] P {row['precision']:.3f} R {row['recall']:.3f}", flush=True)


if __name__ == "__main__":
    main()
