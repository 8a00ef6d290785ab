"""``cogen evaluate``: describe a trained model and measure it (the metrics come with later issues).

Today it loads the model and writes ``OUT/evaluation.json``: what the model is (family, parts,
latent size, sample shape, the command that trained it) and one slot per metric, ``null`` until
the evaluation that fills it exists. Each metric is a library function; this command only
calls them and writes the file.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from cogenerate.cli.common import command_line, print_files, setup, to_plain
from cogenerate.cli.model_spec import load_model, model_label, sample_shape

__all__ = ["METRIC_SLOTS", "register", "run"]

METRIC_SLOTS: dict[str, str] = {
    "frechet_distance": "Fréchet distance of samples to held-out images in a shipped classifier's features",
    "precision": "fraction of samples inside the data manifold (k-nearest-neighbour balls of the features)",
    "recall": "fraction of held-out images inside the samples' manifold",
    "log_likelihood": "AIS estimate of log p(x) on held-out images, in nats, with its BDMC upper bound",
    "completion": "hidden-region MSE and ±2-std coverage of `cogen complete` on held-out images",
}
"""Metric name -> what it will measure; each is ``null`` in the JSON until it is implemented."""


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen evaluate`` through ``command(name, help, description, epilog)``."""
    slots = "".join(f"  {name}: {text}\n" for name, text in METRIC_SLOTS.items())
    parser = command(
        "evaluate", "describe a trained model and write its evaluation report (metrics: to come)",
        "Load a model and write OUT/evaluation.json: the model's family, its parts (generator,\n"
        "discriminator, energy, encoder) with their parameter counts, latent size, sample shape\n"
        "and the command that trained it, and one slot per metric:\n"
        f"{slots}"
        "This version fills in the description only; the metric slots are null until the\n"
        "evaluations that compute them are added.",
        "examples:\n"
        "  cogen evaluate --model fashion-mnist --out eval/fm\n"
        "  cogen evaluate --model runs/fm --out runs/fm/eval\n"
        "  cogen evaluate --model mygan:make_generator --latent-dim 128 --out eval/mygan\n"
        "\n--model takes what `cogen complete --model` takes.",
    )
    parser.add_argument("--model", required=True,
                        help="shipped model name, checkpoint file, run folder or module.path:factory")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="latent size of a module.path:factory generator without a `latent_dim` attribute")
    parser.add_argument("--out", default="cogen-evaluation", help="output folder (default: %(default)s)")
    parser.set_defaults(handler=run)


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, nn.Module):
        return {"type": type(part).__name__, "parameters": sum(p.numel() for p in part.parameters())}
    return {"type": type(part).__name__, "parameters": None}


def run(args: argparse.Namespace) -> int:
    device = setup(args)
    if args.latent_dim is not None and args.latent_dim < 1:
        raise ValueError(f"--latent-dim must be at least 1, got {args.latent_dim}")
    model = load_model(args.model, device=device, latent_dim=args.latent_dim)
    description = {
        "model": model_label(args.model),
        "family": model.family,
        "parts": {name: _part(part) for name, part in model.parts.items()},
        "latent_dim": model.latent_dim,
        "x_shape": list(sample_shape(model)),
        "conditional": model.conditional,
        "iteration": model.config.get("iteration"),
        "dataset": model.config.get("dataset"),
        "trained_by": model.command,
    }
    report = {
        **description,
        "metrics": {name: None for name in METRIC_SLOTS},
        "command": command_line(args),
        "device": str(device),
    }
    target = Path(args.out).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    path = target / "evaluation.json"
    path.write_text(json.dumps(to_plain(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    parts = ", ".join(f"{name} ({info['parameters']:,} parameters)" if info["parameters"] is not None else name
                      for name, info in description["parts"].items())
    print(f"{description['model']}: {model.family}, latent {model.latent_dim}, samples "
          f"{'×'.join(map(str, description['x_shape']))}; parts: {parts}")
    print("metrics: none computed yet (slots: " + ", ".join(METRIC_SLOTS) + ")")
    print_files({"report": path})
    return 0
