"""Energy landscape mapping (Han et al. 2019, §6.3, Fig. 14–15, after Hill, Nijkamp & Zhu 2019).

Each image is carried to a local minimum of an energy E by projected steepest descent
x ← clip(x − η ∇E(x), −1, 1); the barrier between two minima is the highest energy on the
straight line between them, b_ij = max_γ E(x̂_i + γ(x̂_j − x̂_i)); the minima are clustered by
barrier (single linkage: two basins join at the lowest barrier between any of their members, the
disconnectivity graph's merge level). The descent is projected onto the images' box [-1, 1]^D:
a piecewise-linear energy network (LeakyReLU, no normalisation) need not have an unconstrained
minimum. The functions that compute take tensors and return them; :func:`landscape_figure` writes
the one figure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["DescentResult", "EnergyFn", "LandscapeClusters", "barrier_energies", "basin_purity",
           "cluster_by_barrier", "descend_energy", "landscape_figure"]

EnergyFn = Callable[[Tensor], Tensor]


class DescentResult(NamedTuple):
    """Steepest descent of the energy from a batch of images.

    Attributes:
        minima: ``(N, C, H, W)`` where each descent stopped, in ``[-1, 1]``.
        energies: ``(N,)`` E at the minima.
        start_energies: ``(N,)`` E at the starting images.
        distances: ``(N,)`` Euclidean distance travelled from start to minimum.
        step_norms: ``(N,)`` the norm of the last step (≈ 0 at a minimum of the box-constrained energy).
    """

    minima: Tensor
    energies: Tensor
    start_energies: Tensor
    distances: Tensor
    step_norms: Tensor


def _energy_and_grad(energy: EnergyFn, x: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        values = energy(x)
        (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), grad


def descend_energy(energy: EnergyFn, x: Tensor, *, steps: int, step_size: float) -> DescentResult:
    """Projected steepest descent ``x ← clip(x − η ∇E(x), −1, 1)`` of every image at once.

    Args:
        energy: ``(N, C, H, W) -> (N,)``, lower = more like the data (the triangle's E_α = −f_α).
        x: ``(N, C, H, W)`` starting images in ``[-1, 1]``.
        steps: descent steps.
        step_size: η.

    Returns:
        A :class:`DescentResult`.
    """
    if steps < 1 or not step_size > 0:
        raise ValueError(f"steps must be >= 1 and step_size > 0, got {steps}, {step_size}")
    start = x.detach()
    current = start.clone()
    start_energies, _ = _energy_and_grad(energy, current)
    step = torch.zeros_like(current)
    for _ in range(steps):
        _, grad = _energy_and_grad(energy, current)
        moved = (current - step_size * grad).clamp(-1, 1)
        step, current = moved - current, moved
    with torch.no_grad():
        final = energy(current)
    return DescentResult(current, final, start_energies, (current - start).flatten(1).norm(dim=1),
                         step.flatten(1).norm(dim=1))


def barrier_energies(energy: EnergyFn, minima: Tensor, *, points: int = 32, batch_size: int = 2048) -> Tensor:
    """Barrier matrix ``b_ij = max_{γ ∈ [0, 1]} E(x̂_i + γ(x̂_j − x̂_i))`` on ``points`` evenly
    spaced γ (ends included), ``(M, C, H, W) -> (M, M)`` symmetric, ``b_ii = E(x̂_i)``."""
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    m = minima.shape[0]
    rows, cols = torch.triu_indices(m, m, offset=1)
    gammas = torch.linspace(0, 1, points, dtype=minima.dtype, device=minima.device)
    highest = torch.empty(rows.shape[0], dtype=minima.dtype, device=minima.device)
    pairs_per_batch = max(1, batch_size // points)
    with torch.no_grad():
        for start in range(0, rows.shape[0], pairs_per_batch):
            a, b = minima[rows[start:start + pairs_per_batch]], minima[cols[start:start + pairs_per_batch]]
            line = a.unsqueeze(1) + gammas.reshape(1, -1, 1, 1, 1) * (b - a).unsqueeze(1)  # (P, points, C, H, W)
            values = energy(line.flatten(0, 1)).reshape(line.shape[0], points)
            highest[start:start + line.shape[0]] = values.max(1).values
        barriers = torch.empty(m, m, dtype=minima.dtype, device=minima.device)
        barriers[rows, cols] = highest
        barriers[cols, rows] = highest
        barriers[torch.arange(m), torch.arange(m)] = energy(minima)
    return barriers


class LandscapeClusters(NamedTuple):
    """Single-linkage clustering of minima by barrier energy.

    Attributes:
        linkage: scipy linkage matrix ``(M − 1, 4)``; column 2 is the barrier energy at which
            the two basins join (the disconnectivity graph's merge level) minus ``floor``.
        order: ``(M,)`` leaf order of the dendrogram.
        labels: ``(M,)`` basin of each minimum when cut into ``basins`` basins.
        floor: the lowest minimum's energy (scipy wants heights ≥ 0).
    """

    linkage: Any
    order: list[int]
    labels: list[int]
    floor: float


def cluster_by_barrier(barriers: Tensor, *, basins: int) -> LandscapeClusters:
    """Single-linkage clustering of the minima on their barrier matrix ``(M, M)`` (``M >= 2``)."""
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    from scipy.spatial.distance import squareform

    b = barriers.double().cpu()
    floor = float(b.diagonal().min())
    heights = (b - floor).clamp_min(0).numpy()  # ≥ 0 for scipy; the merge level is height + floor
    heights[range(len(heights)), range(len(heights))] = 0.0
    tree = linkage(squareform(heights, checks=False), method="single")
    labels = fcluster(tree, t=max(1, min(basins, len(heights))), criterion="maxclust")
    return LandscapeClusters(tree, [int(i) for i in leaves_list(tree)], [int(v) - 1 for v in labels], floor)


def landscape_figure(path: Path, starts: Tensor, result: DescentResult, clusters: LandscapeClusters) -> Path:
    """The dendrogram of the minima over two rows of images (minima, their starting test images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram

    from cogenerate.plotting import image_grid

    m = len(clusters.order)
    fig = plt.figure(figsize=(max(8.0, 0.3 * m), 6.0))
    top = fig.add_axes((0.05, 0.42, 0.9, 0.53))
    cut = len(set(clusters.labels))  # colour the basins of the cut
    threshold = float(clusters.linkage[-(cut - 1), 2]) - 1e-9 if cut > 1 else float(clusters.linkage[-1, 2]) + 1.0
    dendrogram(clusters.linkage, ax=top, no_labels=True, color_threshold=threshold, above_threshold_color="0.5")
    top.set_ylabel(f"barrier E − ({clusters.floor:.1f})")
    top.set_title("energy landscape: minima of −f joined at their barrier energy (single linkage)")
    order = torch.tensor(clusters.order)
    for row, (images, name) in enumerate(((result.minima[order], "minima"), (starts[order], "start (test image)"))):
        ax = fig.add_axes((0.05, 0.22 - 0.18 * row, 0.9, 0.16))
        ax.imshow(image_grid(images, nrow=m, padding=1)[..., 0], cmap="gray", vmin=0, vmax=255, aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def basin_purity(labels: list[int], classes: Tensor) -> tuple[float, list[dict[str, Any]]]:
    """Share of minima whose class is their basin's most common one, and a row per basin."""
    basins = torch.tensor(labels)
    rows, agree = [], 0
    for basin in sorted(set(labels)):
        members = classes[basins == basin]
        counts = torch.bincount(members, minlength=10)
        agree += int(counts.max())
        rows.append({"basin": basin, "minima": int(members.numel()), "majority class": int(counts.argmax()),
                     "purity": round(float(counts.max()) / members.numel(), 3)})
    return agree / len(labels), rows
