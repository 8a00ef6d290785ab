"""Train the evaluation classifier of a data set and write it where the package ships it.

    python benchmarks/evaluation_classifier.py --data fashion-mnist   # 10 epochs over 60,000 images
    python benchmarks/evaluation_classifier.py --data mnist           # 30 epochs over 4,500 digits

Writes ``src/cogenerate/weights/classifier-<data>.{safetensors,json}`` (or ``--out PREFIX``) with
the accuracy on the train, validation and report splits (:mod:`cogenerate.evaluation.splits`),
the settings, the wall time and this command in the JSON. One torch thread by default, so the
weights are the same on every run on the same machine.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from cogenerate.checkpoint import save_checkpoint
from cogenerate.evaluation.classifier_training import accuracy, train_classifier
from cogenerate.evaluation.splits import SPLIT_PLANS, load_split, load_split_labels

DEFAULT_EPOCHS = {"fashion-mnist": 10, "mnist": 30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, choices=sorted(SPLIT_PLANS))
    parser.add_argument("--epochs", type=int, default=None, help="default: 10 (fashion-mnist), 30 (mnist)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="checkpoint prefix (default: the package's weights folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    epochs = args.epochs or DEFAULT_EPOCHS[args.data]
    out = Path(args.out) if args.out else Path(__file__).resolve().parents[1] / "src/cogenerate/weights" / f"classifier-{args.data}"

    splits = {role: (load_split(args.data, role), load_split_labels(args.data, role))
              for role in ("train", "validation", "report")}
    started = time.perf_counter()
    last = [0.0]

    def progress(fraction: float, loss: float) -> None:
        if fraction - last[0] >= 0.1 or fraction == 1.0:
            last[0] = fraction
            print(f"  {100 * fraction:5.1f} %  loss {loss:.4f}  {time.perf_counter() - started:6.1f} s", file=sys.stderr)

    module = train_classifier(*splits["train"], rng=torch.Generator().manual_seed(args.seed), epochs=epochs,
                              batch_size=args.batch_size, lr=args.lr, progress=progress)
    seconds = time.perf_counter() - started
    scores = {f"{role}_accuracy": round(accuracy(module, *data), 4) for role, data in splits.items()}
    command = shlex.join(["python", "benchmarks/evaluation_classifier.py", *sys.argv[1:]])
    config = {
        "dataset": args.data, "kind": "evaluation-classifier", **scores,
        "splits": {role: int(data[0].shape[0]) for role, data in splits.items()},
        "training": {"epochs": epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                     "optimizer": "adam", "threads": args.threads, "seconds": round(seconds, 1),
                     "torch": torch.__version__},
        "command": command,
    }
    prefix = save_checkpoint(out, {"classifier": module}, config, iteration=epochs)
    print(f"{args.data}: {epochs} epochs in {seconds:.0f} s; " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    print(f"  wrote {prefix}.safetensors and .json")


if __name__ == "__main__":
    main()
