"""Energy landscape mapping: descent to minima, barriers, clustering by barrier."""

from __future__ import annotations

import pytest
import torch

from cogenerate.experiments.landscape import barrier_energies, cluster_by_barrier, descend_energy


def quadratic(centre: torch.Tensor):
    return lambda x: (x - centre).pow(2).flatten(1).sum(1)


def test_descent_finds_the_minimum_of_a_quadratic_inside_and_on_the_box() -> None:
    centre = torch.full((1, 1, 2, 2), 0.3)
    centre[..., 0, 0] = 2.0  # outside the box: the constrained minimum clips it to 1
    x = torch.zeros(3, 1, 2, 2)
    x[1] = -1.0
    result = descend_energy(quadratic(centre), x, steps=200, step_size=0.1)
    expected = centre.clamp(-1, 1).expand(3, 1, 2, 2)
    assert torch.allclose(result.minima, expected, atol=1e-5)
    assert torch.allclose(result.energies, torch.ones(3), atol=1e-4)  # (2 − 1)² left at the clipped pixel
    assert result.step_norms.max() < 1e-5 and bool((result.energies < result.start_energies).all())
    with pytest.raises(ValueError):
        descend_energy(quadratic(centre), x, steps=0, step_size=0.1)


def test_barriers_of_a_double_well_and_the_basins() -> None:
    """E(x) = (x² − 0.25)² on the first pixel: minima at ±0.5, barrier E(0) = 0.0625 between them."""

    def double_well(x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1)[:, 0].pow(2) - 0.25).pow(2)

    minima = torch.tensor([-0.5, -0.5, 0.5, 0.5]).reshape(4, 1, 1, 1)
    barriers = barrier_energies(double_well, minima, points=5, batch_size=7)
    assert torch.allclose(barriers.diagonal(), torch.zeros(4))
    assert torch.equal(barriers, barriers.T)
    assert barriers[0, 1].item() == pytest.approx(0.0) and barriers[2, 3].item() == pytest.approx(0.0)
    assert barriers[0, 2].item() == pytest.approx(0.0625) and barriers[1, 3].item() == pytest.approx(0.0625)
    clusters = cluster_by_barrier(barriers, basins=2)
    assert clusters.labels[0] == clusters.labels[1] != clusters.labels[2] == clusters.labels[3]
    assert clusters.floor == pytest.approx(0.0)
    assert clusters.linkage[-1, 2] + clusters.floor == pytest.approx(0.0625)  # the last merge: at the barrier
    assert sorted(clusters.order) == [0, 1, 2, 3]
