"""Tests for cogenerate.models.triangle (the energy network of the divergence triangle)."""

from __future__ import annotations

import pytest
import torch

from cogenerate.models.dcgan import weights_init
from cogenerate.models.registry import build_module, module_config
from cogenerate.models.triangle import TriangleEnergy


@pytest.mark.parametrize("size", [28, 32, 64])
def test_energy_shapes_and_batch_independence(size: int) -> None:
    rng = torch.Generator().manual_seed(0)
    energy = weights_init(TriangleEnergy(image_size=size, channels=3, width=4), rng=rng)
    x = torch.rand(5, 3, size, size, generator=rng) * 2 - 1
    out = energy(x)
    assert out.shape == (5,)
    # no batch norm: one image's energy does not depend on the rest of its batch
    assert torch.allclose(energy(x[2:3]), out[2:3], atol=1e-6)


def test_registry_round_trip_and_bad_input() -> None:
    energy = TriangleEnergy(image_size=32, channels=1, width=4)
    config = module_config(energy)
    assert config == {"architecture": "triangle-energy", "kwargs": {"image_size": 32, "channels": 1, "width": 4}}
    assert isinstance(build_module(config["architecture"], config["kwargs"]), TriangleEnergy)
    with pytest.raises(ValueError, match="image_size"):
        TriangleEnergy(image_size=30)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        TriangleEnergy()(torch.zeros(2, 1, 32, 32))
