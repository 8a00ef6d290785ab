"""Figures for the ``cogen`` command: image grids and the completion panel.

Plotting sits on top of the library (like :mod:`cogenerate.cli`); nothing in the core
imports it. Functions that write a file take its path; the others return arrays or
figures. Matplotlib is imported lazily with the non-interactive Agg backend, so importing
this module is cheap and never needs a display.

Images are tensors in ``[-1, 1]`` of shape ``(N, C, H, W)`` (grey ``C = 1`` or RGB ``C = 3``),
the range of a DCGAN generator's ``tanh`` output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cogenerate.data.images import to_uint8

__all__ = ["image_grid", "save_image_grid", "hidden_as_grey", "observed_view", "completion_figure", "completions_table_figure"]

HIDDEN_GREY = 0.0
"""Value in ``[-1, 1]`` used to paint hidden pixels in figures (mid grey)."""


def image_grid(images: Tensor, *, nrow: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in ``[-1, 1]`` into one ``uint8`` array.

    Args:
        images: ``(N, C, H, W)`` with ``C`` 1 or 3.
        nrow: images per row (default: ``ceil(sqrt(N))``).
        padding: pixels between tiles and around the border.
        pad_value: 8-bit value of the padding.

    Returns:
        ``(rows·(H+p)+p, nrow·(W+p)+p, C)`` ``uint8`` array.
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch of images (N, C, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    ncol = int(nrow) if nrow else math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncol)
    tiles = to_uint8(images)  # (N, H, W, C)
    c = tiles.shape[-1]
    grid = np.full((nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[top : top + h, left : left + w] = tiles[i]
    return grid


def save_image_grid(images: Tensor, path: str | Path, *, nrow: int | None = None, scale: int = 1,
                    padding: int = 2) -> Path:
    """Write :func:`image_grid` of ``images`` to a PNG, each pixel repeated ``scale`` times.

    Returns:
        The path written (parent folders are created).
    """
    from PIL import Image

    grid = image_grid(images, nrow=nrow, padding=padding)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
    return path


def hidden_as_grey(image: Tensor, mask: Tensor) -> Tensor:
    """``image`` with its hidden pixels (``mask == 0``) painted mid grey; shapes broadcast."""
    return torch.where(mask.to(image.device) > 0, image, torch.full_like(image, HIDDEN_GREY))


def observed_view(image: Tensor, operator: Any) -> Tensor:
    """What a sampler sees of ``image`` ``(C, H, W)`` through ``operator``, at full size, to show
    as the input: hidden pixels of a :class:`~cogenerate.operators.Mask` painted grey, a
    :class:`~cogenerate.operators.Downsample` observation upsampled by repeating pixels;
    ``image`` itself for other operators."""
    from cogenerate.operators import Downsample, Mask

    if isinstance(operator, Mask):
        return hidden_as_grey(image, operator.full(1, tuple(image.shape))[0])
    if isinstance(operator, Downsample):
        low = torch.nn.functional.avg_pool2d(image.unsqueeze(0), operator.factor)
        return torch.nn.functional.interpolate(low, scale_factor=operator.factor, mode="nearest")[0]
    return image


def _show(ax: Any, image: Tensor, title: str) -> None:
    array = to_uint8(image)  # (H, W, C)
    if array.shape[-1] == 1:
        ax.imshow(array[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(array, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def completion_figure(
    path: str | Path,
    *,
    observed: Tensor,
    completions: Tensor,
    mean: Tensor,
    std: Tensor,
    truth: Tensor | None = None,
    completion_titles: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """The ``cogen complete`` panel: observed input, completions, posterior mean, std map, truth.

    Args:
        path: PNG to write.
        observed: ``(C, H, W)`` what the sampler saw, hidden pixels already painted grey
            (see :func:`hidden_as_grey`) or a low-resolution image upsampled to ``H × W``.
        completions: ``(K, C, H, W)`` completions to show (e.g. the highest-weight chains).
        mean: ``(C, H, W)`` weighted posterior mean.
        std: ``(C, H, W)`` per-pixel posterior standard deviation (averaged over channels and
            shown as a heat map with a colour bar).
        truth: ``(C, H, W)`` ground truth, when known.
        completion_titles: one caption per completion (e.g. its weight).
        title: figure title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = completions.shape[0]
    panels = 3 + k + (truth is not None)
    ncol = min(panels, 12)
    nrows = math.ceil(panels / ncol)
    fig, axes = plt.subplots(nrows, ncol, figsize=(1.45 * ncol, 1.65 * nrows + (0.3 if title else 0)), squeeze=False)
    flat = list(axes.flat)
    position = 0

    def next_ax() -> Any:
        nonlocal position
        ax = flat[position]
        position += 1
        return ax

    _show(next_ax(), observed, "observed")
    for i in range(k):
        caption = completion_titles[i] if completion_titles is not None else f"sample {i + 1}"
        _show(next_ax(), completions[i], caption)
    _show(next_ax(), mean, "posterior mean")
    ax = next_ax()
    heat = std.detach().to("cpu", torch.float32).mean(0).numpy()
    image = ax.imshow(heat, cmap="magma", vmin=0.0, vmax=max(float(heat.max()), 1e-6), interpolation="nearest")
    ax.set_title("posterior std", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colorbar.ax.tick_params(labelsize=6)
    if truth is not None:
        _show(next_ax(), truth, "ground truth")
    for ax in flat[position:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def completions_table_figure(
    path: str | Path,
    *,
    truth: Tensor,
    observed: Tensor,
    completions: Tensor,
    mean: Tensor,
    std: Tensor,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Several completed images, one per row: truth, observed input, completions, posterior
    mean and std map (one colour scale shared by every row, so rows compare).

    Args:
        path: PNG to write.
        truth: ``(N, C, H, W)`` the images.
        observed: ``(N, C, H, W)`` what the sampler saw (see :func:`observed_view`).
        completions: ``(N, K, C, H, W)`` completions to show per image.
        mean: ``(N, C, H, W)`` weighted posterior means.
        std: ``(N, C, H, W)`` per-pixel posterior std (averaged over channels).
        row_labels: one caption per image, shown left of its row.
        title: figure title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, k = completions.shape[:2]
    ncol = k + 4
    fig = plt.figure(figsize=(1.05 * ncol + 1.5, 1.08 * n + (0.45 if title else 0.2)))
    grid = fig.add_gridspec(n, ncol + 1, width_ratios=[1.0] * ncol + [0.08], wspace=0.08, hspace=0.12)
    heat = std.detach().to("cpu", torch.float32).mean(1).numpy()  # (N, H, W)
    top = max(float(heat.max()), 1e-6)
    heading = ["truth", "observed", *[f"completion {j + 1}" for j in range(k)], "posterior mean", "posterior std"]
    shown = None
    for i in range(n):
        row = [truth[i], observed[i], *completions[i], mean[i]]
        axes = [fig.add_subplot(grid[i, j]) for j in range(ncol)]
        for j, image in enumerate(row):
            _show(axes[j], image, heading[j] if i == 0 else "")
        shown = axes[-1].imshow(heat[i], cmap="magma", vmin=0.0, vmax=top, interpolation="nearest")
        axes[-1].set_title(heading[-1] if i == 0 else "", fontsize=8)
        axes[-1].set_xticks([])
        axes[-1].set_yticks([])
        if row_labels is not None:
            axes[0].set_ylabel(row_labels[i], fontsize=7, rotation=0, ha="right", va="center", labelpad=4)
    colorbar = fig.colorbar(shown, cax=fig.add_subplot(grid[:, -1]))
    colorbar.ax.tick_params(labelsize=6)
    colorbar.set_label("posterior std (pixel values in [-1, 1])", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
