"""Turn a finished ``cogen train`` run of an energy family into shipped weights.

The energy enters co-generation and the samplers as ``log_ratio(x) = −E(x) / energy_scale``.
This script fits ``logit = a − b·E(x)`` by logistic regression on the Fashion-MNIST validation
split (``test[5000:]``) against as many generator samples, sets ``energy_scale = 1 / b`` (so that
``log_ratio`` has the slope of a calibrated log density ratio; 1 when ``b <= 0``), records the fit and the training
command and wall time in the JSON, and writes ``src/cogenerate/weights/<name>.{safetensors,json}``.

    .venv/bin/python benchmarks/sampling_ship_weights.py --run /work/runs/fm-ebgan \
        --name fashion-mnist-ebgan --wall-seconds 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from cogenerate.checkpoint import latest_checkpoint
from cogenerate.evaluation.splits import load_split
from cogenerate.models.loading import load_model, save_model
from cogenerate.sampling.calibration import calibrate

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "cogenerate" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="cogen train run folder")
    parser.add_argument("--name", required=True, help="shipped model name, e.g. fashion-mnist-ebgan")
    parser.add_argument("--wall-seconds", type=float, required=True, help="measured wall time of the training run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(WEIGHTS), help="folder to write <name>.{safetensors,json} to")
    args = parser.parse_args()
    torch.set_num_threads(1)

    checkpoint = latest_checkpoint(Path(args.run))
    model = load_model(args.run)
    if model.energy is None:
        raise SystemExit(f"{args.run}: the model has no energy part")
    fit = calibrate(model, load_split("fashion-mnist", "validation"),
                    rng=torch.Generator().manual_seed(args.seed), critic=lambda x: -model.energy(x))
    # a slope <= 0 means the energy does not rank real images above generated ones: no positive
    # scale turns it into a log ratio, so the scale stays 1 and the fit is recorded as it came out
    scale = 1.0 / fit.slope if fit.slope > 0 else 1.0
    shipped = dataclasses.replace(model, energy_scale=scale)
    prefix = save_model(Path(args.out) / args.name, shipped, config={
        "energy_calibration": {
            "fit": "logit = intercept - slope * energy, logistic regression, validation split vs generator samples",
            "data": "fashion-mnist validation (test[5000:])", "seed": args.seed, "intercept": fit.intercept,
            "slope": fit.slope, "log_loss": fit.log_loss, "count": fit.count,
            "energy_scale": "1 / slope" if fit.slope > 0 else "1 (slope <= 0: the energy does not separate real "
                                                             "from generated images the right way round)",
        },
        "training_wall_seconds": args.wall_seconds,
        "trained_from": str(checkpoint),
    })
    config = json.loads(prefix.with_suffix(".json").read_text())
    print(f"{prefix}: energy_scale {scale:.4g} (slope {fit.slope:.4g}, intercept {fit.intercept:.4g}, "
          f"log loss {fit.log_loss:.4f}); command: {config.get('command')}")


if __name__ == "__main__":
    main()
