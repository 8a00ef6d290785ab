"""Figure of docs/benchmarks.md section 8: the first samples of every (model, method) drawn by
``benchmarks/sampling_quality.py`` (same seed, so the plain samples are the same latents).

    .venv/bin/python benchmarks/sampling_figure.py --samples-dir runs/bench/samples \
        --models fashion-mnist fashion-mnist-ebgan fashion-mnist-ebgan-pt fashion-mnist-began \
        --out docs/figures/sampling_methods.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples-dir", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--methods", nargs="+", default=["plain", "drs", "mh", "ddls"])
    parser.add_argument("--per-cell", type=int, default=16, help="samples per (model, method), a square number")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = int(round(args.per_cell ** 0.5))
    fig, axes = plt.subplots(len(args.models), len(args.methods),
                             figsize=(2.2 * len(args.methods), 2.3 * len(args.models)), squeeze=False)
    for row, model in enumerate(args.models):
        for col, method in enumerate(args.methods):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            path = Path(args.samples_dir) / f"{Path(model).name}-{method}" / "samples.npy"
            if path.is_file():
                images = np.load(path)[: side * side, 0]
                tiles = images.reshape(side, side, *images.shape[1:]).transpose(0, 2, 1, 3)
                ax.imshow(tiles.reshape(side * images.shape[1], side * images.shape[2]), cmap="gray", vmin=-1, vmax=1)
            if row == 0:
                ax.set_title(method)
            if col == 0:
                ax.set_ylabel(Path(model).name, fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=75)


if __name__ == "__main__":
    main()
