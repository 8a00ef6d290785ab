"""Markdown tables of docs/benchmarks.md section 8 from the JSON files the sampling benchmarks wrote.

    .venv/bin/python benchmarks/sampling_report.py --quality runs/bench/sampling_quality*.json \
        --cogeneration runs/bench/sampling_cogeneration*.json

Paired differences (λ = 1 minus λ = 0, and each family minus the DCGAN; same images, same masks) come with a normal 95 %
interval over the 100 images.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

Z_95 = 1.959963984540054


def _load(paths: list[str]) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        rows.extend(json.loads(Path(path).read_text()))
    return rows


def _paired(a: list[float], b: list[float]) -> str:
    diffs = [y - x for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = Z_95 * sd / math.sqrt(n)
    return f"{mean:+.4f} ({mean - half:+.4f} to {mean + half:+.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", nargs="+", default=[])
    parser.add_argument("--cogeneration", nargs="+", default=[])
    args = parser.parse_args()

    print("| model | method | FD (95 % interval) | precision | recall | acceptance | generator calls / sample | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in _load(args.quality):
        print(f"| {r['model']} | {r['method']} | {r['fd']:.2f} ({r['fd_interval'][0]:.2f}–{r['fd_interval'][1]:.2f}) | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | {r['acceptance_rate']:.3f} | "
              f"{r['generator_calls_per_sample']:.1f} | {r['seconds']:.0f} |")

    entries = _load(args.cogeneration)
    print()
    print("| model | λ | σ | mask | hidden MSE | SSIM | within ±2 std | CRPS | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in entries:
        for row in e["rows"]:
            cell = lambda key, digits: f"{row[key]['mean']:.{digits}f} ({row[key]['low']:.{digits}f}–{row[key]['high']:.{digits}f})"  # noqa: E731
            print(f"| {e['model']} | {e['discriminator_weight']:g} | {e['noise_std']} | {row['mask']} | "
                  f"{cell('hidden_mse', 4)} | {cell('ssim', 3)} | {cell('within_2_std', 3)} | {cell('crps', 4)} | "
                  f"{row['seconds']:.0f} |")

    print()
    print("| model | mask | Δ hidden MSE (λ=1 − λ=0) | Δ SSIM | Δ within ±2 std |")
    print("|---|---|---|---|---|")
    by_key = {(e["model"], e["discriminator_weight"], str(e["noise_std"])): e for e in entries}
    for (model, weight, sigma), e in by_key.items():
        base = by_key.get((model, 0.0, sigma))
        if weight == 0 or base is None:
            continue
        for mask, values in e["per_image"].items():
            ref = base["per_image"][mask]
            print(f"| {model} | {mask} | {_paired(ref['hidden_mse'], values['hidden_mse'])} | "
                  f"{_paired(ref['ssim'], values['ssim'])} | {_paired(ref['within_2_std'], values['within_2_std'])} |")

    print()
    print("| model − DCGAN | λ | σ | mask | Δ hidden MSE | Δ SSIM | Δ within ±2 std |")
    print("|---|---|---|---|---|---|---|")
    for (model, weight, sigma), e in by_key.items():
        base = by_key.get(("fashion-mnist", weight, sigma))
        if model == "fashion-mnist" or base is None:
            continue
        for mask, values in e["per_image"].items():
            ref = base["per_image"][mask]
            print(f"| {model} | {weight:g} | {sigma} | {mask} | {_paired(ref['hidden_mse'], values['hidden_mse'])} | "
                  f"{_paired(ref['ssim'], values['ssim'])} | {_paired(ref['within_2_std'], values['within_2_std'])} |")


if __name__ == "__main__":
    main()
