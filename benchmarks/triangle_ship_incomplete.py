"""Ship the models of Table III (trained on occluded images) for ``cogen reproduce triangle``.

Takes the models that ``benchmarks/triangle_incomplete.py --save-models DIR`` kept (one per method
and occlusion) and writes them into ``src/cogenerate/weights/incomplete/<method>-<occlusion>``
with their weights stored in float16 (they load back in float32). The triangle keeps its
generator and inference model (recovery and co-generation use only these; its energy, 0.7 MB
each, stays behind); the VAE its decoder and encoder; ABP its generator. Each JSON records the
training command, the data and the wall time from the benchmark's ``--json``.

    .venv/bin/python benchmarks/triangle_ship_incomplete.py --models /work/runs/bench/incomplete-models \
        --json /work/runs/bench/triangle_incomplete.json /work/runs/bench/triangle_incomplete_b30.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from cogenerate.experiments.triangle import INCOMPLETE_METHODS
from cogenerate.models.loading import load_model, save_model
from cogenerate.training.incomplete import OCCLUSIONS

OUT = Path(__file__).resolve().parents[1] / "src" / "cogenerate" / "weights" / "incomplete"
COMMAND = ("python benchmarks/triangle_incomplete.py --methods {method} --occlusions {occlusion} --images 3000 "
           "--iterations 1000 --save-models DIR --json FILE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="the --save-models folder")
    parser.add_argument("--json", nargs="+", required=True, help="the benchmark's --json files (for wall times)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    table: dict = {}
    for file in args.json:
        table.update(json.loads(Path(file).read_text()))
    for method in INCOMPLETE_METHODS:
        for occlusion in OCCLUSIONS:
            model = load_model(str(Path(args.models) / f"{method}-{occlusion}"))
            keep = {role: part for role, part in model.parts.items() if role in ("generator", "encoder")}
            row = table.get(f"{method}/{occlusion}", {})
            prefix = save_model(Path(args.out) / f"{method}-{occlusion}", dataclasses.replace(model, parts=keep),
                                storage_dtype=torch.float16, config={
                                    "description": f"{method} trained on 3,000 Fashion-MNIST training images occluded "
                                                   f"by {occlusion} (Table III; docs/benchmarks.md §11)",
                                    "data": "fashion-mnist train, first 3,000 of randperm(seed 0); masks "
                                            f"occlusion_masks({occlusion!r}, 3000, seed=0)",
                                    "command": COMMAND.format(method=method, occlusion=occlusion),
                                    "training_wall_seconds": row.get("seconds"),
                                    "training_recovery_error": row.get("error"),
                                })
            size = sum(f.stat().st_size for f in prefix.parent.glob(prefix.name + ".*"))
            print(f"{prefix.name}: {sorted(keep)} {size / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()
