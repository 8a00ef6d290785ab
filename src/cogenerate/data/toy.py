"""The synthetic 2-D data of Fang & Schwing (2019), §3.1: a ring of Gaussians.

"The 2-dimensional data x = (x1, x2) is drawn from a mixture of five equally weighted
Gaussians each with a variance of 0.02, the means of which are spaced equally on the unit
circle" (seeds/cogeneration-ais-hmc-fang-schwing.txt, §3.1). The first mean lies at angle 0,
i.e. at (1, 0), which is the optimal reconstruction for the paper's query x_o = x2 = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ring_means", "ring_of_gaussians"]


def ring_means(
    modes: int = 5,
    radius: float = 1.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Means of the ring mixture, equally spaced on a circle, the first at angle 0.

    Args:
        modes: number of mixture components (5 in the paper).
        radius: radius of the circle (1 in the paper).
        device, dtype: of the result (defaults: CPU, the default float dtype).

    Returns:
        Tensor of shape ``(modes, 2)``; row ``k`` is
        ``radius * (cos(2πk/modes), sin(2πk/modes))``.
    """
    if modes < 1:
        raise ValueError(f"modes must be >= 1, got {modes}")
    angles = torch.arange(modes, device=device, dtype=torch.float64) * (2.0 * math.pi / modes)
    means = radius * torch.stack((torch.cos(angles), torch.sin(angles)), dim=1)
    return means.to(dtype=dtype if dtype is not None else torch.get_default_dtype())


def ring_of_gaussians(
    n: int,
    *,
    rng: torch.Generator,
    modes: int = 5,
    radius: float = 1.0,
    variance: float = 0.02,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Draw ``n`` points from an equally weighted ring of isotropic Gaussians.

    Each point picks a component uniformly at random, then adds isotropic Gaussian noise with
    ``variance`` per coordinate (standard deviation ``sqrt(variance)``) to that component's
    mean (see :func:`ring_means`). Defaults are the paper's: 5 modes on the unit circle,
    variance 0.02.

    Args:
        n: number of samples.
        rng: source of all randomness. Samples are drawn on ``rng.device`` and then moved to
            ``device``, so the same seed gives the same points on every device.
        modes, radius, variance: the mixture.
        device: device of the result (default: ``rng.device``).
        dtype: dtype of the result (default: the default float dtype).

    Returns:
        Tensor of shape ``(n, 2)``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if variance < 0:
        raise ValueError(f"variance must be >= 0, got {variance}")
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    draw_device = rng.device
    components = torch.randint(modes, (n,), generator=rng, device=draw_device)
    noise = torch.randn(n, 2, generator=rng, device=draw_device, dtype=dtype)
    means = ring_means(modes, radius, device=draw_device, dtype=dtype)
    points = means[components] + math.sqrt(variance) * noise
    return points.to(device=device if device is not None else draw_device)
