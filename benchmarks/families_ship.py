"""Copy a family's trained run into the package as a shipped model (issue 11).

    python benchmarks/families_ship.py --run /work/runs/fm-vae --name vae --log /work/runs/logs/fm-vae.log

Writes ``src/cogenerate/weights/<name>.{safetensors,json}``: the run's latest checkpoint reduced
to the model's parts (:func:`cogenerate.models.loading.save_model`: generator(s), encoder,
discriminator; training-only modules such as a code discriminator are left out), float32 (or
float16 with ``--float16``; ``--drop ROLE`` leaves out a part co-generation does not use), with
the training commands and the wall time the run's log recorded (``wall N s`` lines, one per
session of a resumed run, or ``--wall SECONDS``) under ``"shipped"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import torch

from cogenerate.models.loading import load_model, save_model

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "cogenerate" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="cogen train run folder")
    parser.add_argument("--name", required=True, help="shipped name, e.g. vae")
    parser.add_argument("--log", help="the run's log with 'wall N s' lines")
    parser.add_argument("--wall", type=int, nargs="*", default=[], help="the run's wall seconds per session, "
                        "where no log recorded them")
    parser.add_argument("--float16", action="store_true", help="store the weights in float16 (half the file)")
    parser.add_argument("--drop", nargs="*", default=[], help="parts to leave out, e.g. discriminator")
    parser.add_argument("--note", default="", help="a sentence for the JSON (e.g. how far a run got)")
    args = parser.parse_args()
    if args.log is None and not args.wall:
        parser.error("give --log (a log with 'wall N s' lines) or --wall SECONDS")
    model = load_model(args.run)
    if args.drop:
        model = dataclasses.replace(model, parts={k: v for k, v in model.parts.items() if k not in args.drop})
    walls = args.wall or [int(m) for m in re.findall(r"^wall (\d+) s$", Path(args.log).read_text(), flags=re.M)]
    iteration = int(model.config.get("iteration", 0))
    shipped = {"run": args.run, "iteration": iteration, "wall_seconds": sum(walls), "sessions": len(walls),
               "threads": 1, "machine": "2 shared CPU cores", "note": args.note}
    prefix = save_model(WEIGHTS / args.name, model, config={"shipped": shipped}, iteration=iteration,
                        storage_dtype=torch.float16 if args.float16 else None)
    size = sum(path.stat().st_size for path in WEIGHTS.glob(f"{args.name}.*"))
    print(f"{prefix}: {model.family}, parts {sorted(model.parts)}, iteration {iteration}, "
          f"{sum(walls)} s in {len(walls)} session(s), {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
