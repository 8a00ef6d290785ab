"""``cogen models``: list the shipped pretrained models."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen models`` through ``command(name, help, description, epilog)``."""
    parser = command(
        "models", "list the shipped pretrained models",
        "List the generators shipped with the package (usable as `--model NAME`), with the noise σ each carries: "
        "the default of `cogen complete` for it, fitted by evidence on its validation images.",
        "example:\n  cogen models",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cogenerate.models.pretrained import PRETRAINED, SHORT_NAMES, pretrained_config, pretrained_files

    short = {full: alias for alias, full in SHORT_NAMES.items()}
    rows = [("name", "short name", "dataset", "images", "latent", "iterations", "noise σ", "size", "description")]
    for name, description in PRETRAINED.items():
        try:
            files = pretrained_files(name)
            config = pretrained_config(name)
        except ValueError:
            rows.append((name, short.get(name, "-"), "-", "-", "-", "-", "-", "-", f"{description} (not installed)"))
            continue
        generator = config["modules"]["generator"]["kwargs"]
        mb = sum(_resource_size(f) for f in files.values()) / 1e6
        shape = f"{generator.get('channels', '?')}×{generator.get('image_size', '?')}×{generator.get('image_size', '?')}"
        noise = config.get("noise_std", {}).get("value")  # complete()'s default σ for this model (docs/methods.md)
        rows.append((name, short.get(name, "-"), str(config.get("dataset", "?")), shape, str(generator.get("latent_dim", "?")),
                     str(config.get("iteration", "?")), "-" if noise is None else f"{noise:.3f}", f"{mb:.1f} MB",
                     description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def _resource_size(resource: Any) -> int:
    from importlib import resources

    with resources.as_file(resource) as path:
        return Path(path).stat().st_size
