"""The pictures and text the page shows: plain ``uint8`` arrays and Markdown, no Gradio.

Images in ``[-1, 1]`` are enlarged by whole factors (each pixel a square) so that 28×28
completions are visible; the std map is the ``magma`` heat map of ``cogen complete``'s figure;
the importance weights are bars drawn with Pillow (pyplot is not thread-safe, and the page
redraws them several times a second).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cogenerate.data.images import to_uint8

__all__ = ["SHOWN", "enlarge", "heat_map", "weight_bars", "gallery", "live_text", "final_text"]

SHOWN = 16  # completions shown in the gallery (the highest weights)
VIEW_SIDE = 168  # about this many screen pixels a side per image
_BAR_COLOUR = (234, 88, 12)
_UNIFORM_COLOUR = (120, 120, 120)


def enlarge(image: Tensor, *, side: int = VIEW_SIDE) -> np.ndarray:
    """A ``(C, H, W)`` image in ``[-1, 1]`` as an ``(H·k, W·k, 3)`` ``uint8`` RGB array, each
    pixel a ``k × k`` square with ``k = max(1, side // H)``."""
    pixels = to_uint8(image)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    k = max(1, side // int(image.shape[-2]))
    return np.ascontiguousarray(pixels.repeat(k, axis=0).repeat(k, axis=1))


def heat_map(std: Tensor, *, side: int = VIEW_SIDE) -> np.ndarray:
    """The ``(C, H, W)`` std map averaged over channels, coloured with ``magma`` from 0 to its
    maximum (as in ``cogen complete``'s figure), enlarged like :func:`enlarge`."""
    from matplotlib import colormaps

    heat = std.detach().to("cpu", torch.float32).mean(0).numpy()
    top = max(float(heat.max()), 1e-6)
    rgb = (colormaps["magma"](np.clip(heat / top, 0.0, 1.0))[..., :3] * 255).round().astype(np.uint8)
    k = max(1, side // heat.shape[0])
    return np.ascontiguousarray(rgb.repeat(k, axis=0).repeat(k, axis=1))


def weight_bars(weights: Tensor, *, width: int = 336, height: int = 120) -> np.ndarray:
    """The ``(C,)`` importance weights as bars, one per chain in chain order, scaled to the
    largest; a grey line marks the uniform weight ``1/C``. ``(height, width, 3)`` ``uint8``."""
    from PIL import Image, ImageDraw

    w = weights.detach().to("cpu", torch.float64).numpy()
    chains = len(w)
    top = max(float(w.max()), 1.0 / max(chains, 1), 1e-12)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    pitch = width / max(chains, 1)
    gap = 1 if pitch >= 4 else 0
    for i, value in enumerate(w):
        bar = int(round((height - 2) * float(value) / top))
        left = int(i * pitch)
        right = max(left, int((i + 1) * pitch) - 1 - gap)
        if bar > 0:
            draw.rectangle((left, height - 1 - bar, right, height - 1), fill=_BAR_COLOUR)
    uniform = height - 1 - int(round((height - 2) / (chains * top))) if chains else height - 1
    draw.line((0, uniform, width - 1, uniform), fill=_UNIFORM_COLOUR, width=1)
    return np.asarray(canvas)


def gallery(completions: Tensor, weights: Tensor, *, shown: int = SHOWN) -> list[tuple[np.ndarray, str]]:
    """The ``shown`` completions of highest weight, heaviest first, each enlarged and captioned
    with its chain and weight: ``[(image, "chain 3 · w = 0.31"), …]``."""
    order = torch.argsort(weights, descending=True)[:shown]
    return [(enlarge(completions[int(i)], side=112), f"chain {int(i)} · w = {float(weights[i]):.2f}") for i in order]


def _number(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def live_text(*, method: str, fraction: float, chains: int, ess: float, beta: float | None, seconds: float) -> str:
    """One Markdown line on a run in progress."""
    temperature = f" · β = {beta:.3g}" if beta is not None else ""
    return (f"**Running {method}** · {fraction:.0%} done{temperature} · ESS {ess:.1f} of {chains} chains · "
            f"{seconds:.0f} s")


def final_text(report: dict[str, Any], *, cancelled: bool) -> str:
    """Markdown summary of a finished run from its JSON report (the numbers the page offers)."""
    lines = [
        f"**{'Cancelled: partial result of' if cancelled else 'Done:'} {report['method']}**, {report['chains']} "
        f"chains, {report['grad_evals']} gradient evaluations per chain, {report['seconds']:.1f} s",
        f"- ESS (effective sample size of the importance weights): **{_number(report['ess'], 2)}** of "
        f"{report['chains']}",
        f"- log evidence log p(observed): **{_number(report['log_evidence'], 2)}**",
        f"- observation noise std (fitted or given): {_number(report['fitted_noise_std'], 4)}",
    ]
    metrics = report.get("metrics")
    if metrics:
        mean, best = metrics["posterior_mean"], metrics["best_sample"]
        inside = metrics.get("truth_within_2_predictive_std")
        key = "hidden_mse" if "hidden_mse" in mean else "mse"
        region = "hidden-region MSE" if key == "hidden_mse" else "MSE"
        lines.append(f"- against the uploaded image: posterior mean {region} {_number(mean[key], 4)}, "
                     f"PSNR {_number(mean['psnr'])} dB, SSIM {_number(mean['ssim'], 3)}; best sample {region} "
                     f"{_number(best[key], 4)}; truth within ±2 predictive std: "
                     f"{_number(None if inside is None else 100 * inside, 0)} % of hidden pixels")
    for warning in (report.get("diagnostics") or {}).get("warnings") or ():
        lines.append(f"- ⚠ {warning}")
    lines.append(f"\nSame result from the command line: `{report['command']}`")
    return "\n".join(lines)
