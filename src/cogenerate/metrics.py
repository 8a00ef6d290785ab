"""Image-quality metrics as pure per-image functions.

Every metric takes batches of images in ``[-1, 1]`` of shape ``(N, C, H, W)`` and returns a
tensor of shape ``(N,)``, one value per image, computed from that image alone, so a batch's
metrics equal the concatenated metrics of its pieces. Average them yourself.

:func:`completion_metrics` scores a whole :class:`~cogenerate.result.Completion` against the
truth: these metrics for its posterior mean, its point estimate and its best chain, and how
often the truth of a hidden pixel lies within two predictive standard deviations.

SSIM and MS-SSIM use ``pytorch_msssim`` on images mapped to ``[0, 1]`` (``data_range=1``),
with its default Gaussian window (σ = 1.5) and constants ``K = (0.01, 0.03)`` (Wang et al.,
2004). The window and the number of scales are adapted to the small images this project
uses (8–64 px); see :func:`ssim` and :func:`ms_ssim`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _pm_ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
from torch import Tensor

if TYPE_CHECKING:
    from cogenerate.result import Completion

__all__ = [
    "completion_metrics",
    "image_scores",
    "mse",
    "masked_mse",
    "psnr",
    "ssim",
    "ms_ssim",
    "rank_correlation",
    "MS_SSIM_WEIGHTS",
]

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Exponents of the five MS-SSIM scales, finest first (Wang, Simoncelli & Bovik, 2003)."""

_WIN_SIGMA = 1.5
_SSIM_WIN = 11  # Wang et al. (2004)
_MS_SSIM_WIN = 7


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() != 4:
        raise ValueError(f"expected image batches of shape (N, C, H, W), got {tuple(x.shape)}")


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per image over all pixels and channels.

    Args:
        x, y: ``(N, C, H, W)``.

    Returns:
        ``(N,)``.
    """
    _check_pair(x, y)
    return (x - y).pow(2).flatten(1).mean(1)


def masked_mse(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error per image over the hidden pixels (``mask == 0``) only.

    The average runs over hidden pixels × channels: ``Σ (1 − m)(x − y)² / Σ (1 − m)`` with the
    mask broadcast to the images' shape. An image with no hidden pixel gets NaN.

    Args:
        x, y: ``(N, C, H, W)``.
        mask: broadcasts to ``(N, C, H, W)``, e.g. ``(N, 1, H, W)`` or ``(1, 1, H, W)``;
            1 = observed, 0 = hidden.

    Returns:
        ``(N,)``.
    """
    _check_pair(x, y)
    hidden = (1.0 - mask.to(x.dtype)).expand_as(x)
    total = hidden.flatten(1).sum(1)
    return ((x - y).pow(2) * hidden).flatten(1).sum(1) / total


def psnr(x: Tensor, y: Tensor, *, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio per image in dB: ``10·log10(data_range² / mse)``.

    ``data_range`` is 2 for images in ``[-1, 1]``. Identical images give ``+inf``.

    Args:
        x, y: ``(N, C, H, W)``.

    Returns:
        ``(N,)``.
    """
    return 10.0 * torch.log10(data_range**2 / mse(x, y))


def _window(size: int, channels: int, like: Tensor) -> Tensor:
    """pytorch_msssim's 1-D Gaussian window repeated per channel: ``(C, 1, 1, size)``."""
    win = _fspecial_gauss_1d(size, _WIN_SIGMA)
    return win.repeat(channels, 1, 1, 1).to(device=like.device, dtype=like.dtype)


def _largest_odd_at_most(value: int) -> int:
    return value if value % 2 else value - 1


def ssim(x: Tensor, y: Tensor, *, win_size: int | None = None) -> Tensor:
    """Structural similarity per image (Wang et al., 2004), averaged over channels.

    Computed by ``pytorch_msssim.ssim`` on ``(x + 1) / 2`` with ``data_range=1``, a Gaussian
    window of σ = 1.5 and "valid" filtering (no padding). ``win_size`` defaults to the standard
    11, shrunk to the largest odd number not above the image's smaller side for smaller
    images (7 for the 8×8 digits).

    Args:
        x, y: ``(N, C, H, W)`` in ``[-1, 1]``.
        win_size: odd Gaussian window size, at most the image's smaller side.

    Returns:
        ``(N,)``; 1 for identical images.
    """
    _check_pair(x, y)
    side = min(x.shape[-2:])
    if win_size is None:
        win_size = min(_SSIM_WIN, _largest_odd_at_most(side))
    if win_size % 2 == 0 or not 1 <= win_size <= side:
        raise ValueError(f"win_size must be odd and at most the image side {side}, got {win_size}")
    x01, y01 = (x + 1.0) / 2.0, (y + 1.0) / 2.0
    return _pm_ssim(x01, y01, data_range=1.0, size_average=False, win=_window(win_size, x.shape[1], x))


def ms_ssim(x: Tensor, y: Tensor, *, win_size: int = _MS_SSIM_WIN, levels: int | None = None) -> Tensor:
    """Multi-scale structural similarity per image, adapted to small images.

    Standard MS-SSIM (Wang, Simoncelli & Bovik, 2003; ``pytorch_msssim.ms_ssim``) uses an 11 px
    window over 5 scales and needs images larger than ``(11 − 1)·2⁴ = 160`` px; with its
    fixed assertion ``side > (win_size − 1)·16`` no window wider than 1 px passes for 28 or
    32 px images. This function runs the same computation scale by scale with
    ``pytorch_msssim``'s own SSIM kernel (``pytorch_msssim.ssim._ssim``), with two changes:

    - a 7 px Gaussian window (σ = 1.5) instead of 11 px, so the coarse scales of small images
      still hold a full window;
    - ``levels`` scales instead of 5, by default the most (at most 5) whose coarsest scale is
      still at least one window wide: ``side / 2^(levels−1) ≥ win_size``. That is 3 scales at
      28 and 32 px (28→14→7, 32→16→8), 4 at 64 px, 5 from 112 px; 1 (plain SSIM with
      a 7 px window) below 14 px. The exponents are the first ``levels`` standard
      :data:`MS_SSIM_WEIGHTS` renormalised to sum to 1, so the result stays in ``[0, 1]``
      and equal images give 1.

    As in ``pytorch_msssim``, the contrast-structure terms of the finer scales and the SSIM
    of the coarsest scale are clipped at 0, images are mapped to ``[0, 1]`` with
    ``data_range=1``, and with ``win_size=11, levels=5`` on images larger than 160 px the
    result equals ``pytorch_msssim.ms_ssim`` (tested).

    Args:
        x, y: ``(N, C, H, W)`` in ``[-1, 1]``.
        win_size: odd Gaussian window size.
        levels: number of scales, 1 to 5; ``None`` picks it as above.

    Returns:
        ``(N,)``; 1 for identical images.
    """
    _check_pair(x, y)
    if win_size % 2 == 0 or win_size < 1:
        raise ValueError(f"win_size must be a positive odd number, got {win_size}")
    side = min(x.shape[-2:])
    if side < win_size:
        raise ValueError(f"images of side {side} are smaller than the MS-SSIM window {win_size}")
    if levels is None:
        levels = min(len(MS_SSIM_WEIGHTS), 1 + int(math.floor(math.log2(side / win_size))))
    if not 1 <= levels <= len(MS_SSIM_WEIGHTS):
        raise ValueError(f"levels must lie in [1, {len(MS_SSIM_WEIGHTS)}], got {levels}")
    if math.ceil(side / 2 ** (levels - 1)) < win_size:
        raise ValueError(
            f"{levels} MS-SSIM scales of {side} px images are smaller than the window {win_size} "
            f"at the coarsest scale; use fewer levels or a smaller window"
        )
    weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    win = _window(win_size, x.shape[1], x)
    a, b = (x + 1.0) / 2.0, (y + 1.0) / 2.0
    factors = []
    for level in range(levels):
        ssim_per_channel, cs = _ssim(a, b, data_range=1.0, win=win, size_average=False)
        if level < levels - 1:
            factors.append(torch.relu(cs))
            padding = [s % 2 for s in a.shape[2:]]
            a = F.avg_pool2d(a, kernel_size=2, padding=padding)
            b = F.avg_pool2d(b, kernel_size=2, padding=padding)
    factors.append(torch.relu(ssim_per_channel))
    stacked = torch.stack(factors, dim=0)  # (levels, N, C)
    per_channel = torch.prod(stacked ** weights.view(-1, 1, 1), dim=0)
    return per_channel.mean(1)


def _average_ranks(values: Tensor) -> Tensor:
    """Ranks ``0 … M−1`` along the last dimension, ties sharing their mean rank: ``(N, M)``."""
    n, m = values.shape
    sorted_values, order = values.sort(dim=1)
    new_group = torch.ones(n, m, dtype=torch.long, device=values.device)
    new_group[:, 1:] = (sorted_values[:, 1:] != sorted_values[:, :-1]).long()
    group = new_group.cumsum(1) - 1  # (N, M) tie-group index of each sorted position
    positions = torch.arange(m, dtype=torch.float64, device=values.device).expand(n, m)
    group_rank = torch.zeros(n, m, dtype=torch.float64, device=values.device).scatter_reduce(
        1, group, positions, reduce="mean", include_self=False
    )
    sorted_ranks = group_rank.gather(1, group)
    return torch.empty_like(sorted_ranks).scatter_(1, order, sorted_ranks)


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation per row, e.g. between a posterior std map and the error map.

    Each of the ``N`` rows is flattened; values are ranked with ties given their average rank
    (as ``scipy.stats.spearmanr``), and the Pearson correlation of the ranks is returned.
    A row whose values are all equal gets NaN.

    Args:
        a, b: ``(N, ...)`` with the same shape (e.g. ``(N, C, H, W)``).

    Returns:
        ``(N,)`` in ``[-1, 1]``, in ``a``'s floating dtype (float32 for integer inputs).
    """
    if a.shape != b.shape:
        raise ValueError(f"inputs must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < 1:
        raise ValueError("expected inputs of shape (N, ...)")
    out_dtype = a.dtype if a.is_floating_point() else torch.float32
    ra = _average_ranks(a.reshape(a.shape[0], -1))
    rb = _average_ranks(b.reshape(b.shape[0], -1))
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    denom = ra.pow(2).sum(1).sqrt() * rb.pow(2).sum(1).sqrt()
    return ((ra * rb).sum(1) / denom).to(out_dtype)


def image_scores(x: Tensor, truth: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
    """Every per-image metric of ``x`` against ``truth``.

    Args:
        x, truth: ``(N, C, H, W)`` in ``[-1, 1]``.
        mask: broadcasts to ``(N, C, H, W)``; 1 = observed, 0 = hidden. ``None`` (e.g. a
            super-resolution operator, where no pixel is observed as is) gives a NaN
            ``hidden_mse``.

    Returns:
        ``{"hidden_mse", "mse", "psnr", "ssim", "ms_ssim"}``, each ``(N,)`` (see the functions
        of the same names; ``hidden_mse`` is :func:`masked_mse`).
    """
    x, truth = x.float(), truth.float()
    if mask is None:
        hidden_mse = torch.full(x.shape[:1], math.nan, dtype=x.dtype, device=x.device)
    else:
        hidden_mse = masked_mse(x, truth, mask.to(x.device))
    return {"hidden_mse": hidden_mse, "mse": mse(x, truth), "psnr": psnr(x, truth), "ssim": ssim(x, truth),
            "ms_ssim": ms_ssim(x, truth)}


def completion_metrics(completion: Completion, truth: Tensor, mask: Tensor | None = None) -> dict[str, dict | Tensor]:
    """Score the completions of B images against their truth.

    Args:
        completion: what :func:`cogenerate.complete` returned for B images of shape
            ``(C, H, W)`` (``completion.completions`` is ``(B, chains, C, H, W)``).
        truth: ``(B, C, H, W)`` (or ``(C, H, W)`` for B = 1) in ``[-1, 1]``.
        mask: the observation mask, broadcasting to ``(B, C, H, W)``; 1 = observed,
            0 = hidden; ``None`` for operators that are not a mask (then ``hidden_mse`` is NaN
            and the best chain is the one with the smallest MSE over the whole image).

    Returns:
        ``"posterior_mean"`` and ``"estimate"``: :func:`image_scores` of the importance-weighted
        mean and of the method's point estimate; ``"best_sample"``: the scores of the chain
        closest to the truth (over the hidden pixels) plus ``"chain"`` (its index) and
        ``"weight"`` (its importance weight); ``"truth_within_2_predictive_std"``: the
        fraction of hidden pixels whose true value lies within ``±2·predictive_std`` of the
        posterior mean (about 0.95 for a calibrated Gaussian posterior). Every leaf is
        ``(B,)``.
    """
    completions = completion.completions.float()
    b = completions.shape[0]
    truth = truth.to(completions).reshape(b, *completions.shape[2:])
    hidden_mask = None if mask is None else mask.to(completions).expand_as(truth)
    region = torch.ones_like(truth) if hidden_mask is None else 1.0 - hidden_mask
    errors = ((completions - truth.unsqueeze(1)) ** 2 * region.unsqueeze(1)).flatten(2).sum(2)  # (B, chains)
    best = errors.argmin(1)
    rows = torch.arange(b, device=best.device)
    mean = completion.mean.float()
    hidden = completion.hidden.bool() if completion.hidden is not None else region.bool()
    inside = ((mean - truth).abs() <= 2 * completion.predictive_std.to(mean)) & hidden
    coverage = inside.flatten(1).sum(1) / hidden.flatten(1).sum(1).clamp_min(1)
    return {
        "truth_within_2_predictive_std": coverage,
        "posterior_mean": image_scores(mean, truth, hidden_mask),
        "estimate": image_scores(completion.estimate, truth, hidden_mask),
        "best_sample": {"chain": best, "weight": completion.weights[rows, best],
                        **image_scores(completions[rows, best], truth, hidden_mask)},
    }
