"""Tests for cogenerate.models.ebgan: shapes, the energy's formula, registry round trip."""

from __future__ import annotations

import pytest
import torch

from cogenerate.models.dcgan import weights_init
from cogenerate.models.ebgan import EBGANAutoencoder
from cogenerate.models.registry import build_module, module_config


@pytest.mark.parametrize("size", [28, 32, 64])
def test_shapes(size: int) -> None:
    ae = weights_init(EBGANAutoencoder(image_size=size, channels=3, width=8, code_dim=16),
                      rng=torch.Generator().manual_seed(0))
    x = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert ae.encode(x).shape == (4, 16)
    recon = ae.reconstruct(x)
    assert recon.shape == x.shape and recon.abs().max() <= 1.0
    assert ae(x).shape == (4,) and (ae(x) >= 0).all()


def test_energy_is_the_euclidean_norm_of_the_reconstruction_error() -> None:
    ae = weights_init(EBGANAutoencoder(width=4, code_dim=8), rng=torch.Generator().manual_seed(0))
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    expected = torch.sqrt(((ae.decode(ae.encode(x)) - x) ** 2).sum(dim=(1, 2, 3)))
    assert torch.allclose(ae(x), expected)
    # one image's energy does not depend on its batch (no batch norm)
    assert torch.allclose(ae(x[:1]), ae(x)[:1])


def test_registry_round_trip_and_bad_input() -> None:
    ae = EBGANAutoencoder(image_size=32, channels=1, width=4, code_dim=8)
    config = module_config(ae)
    assert config == {"architecture": "ebgan-autoencoder",
                      "kwargs": {"image_size": 32, "channels": 1, "width": 4, "code_dim": 8}}
    assert isinstance(build_module(config["architecture"], config["kwargs"]), EBGANAutoencoder)
    with pytest.raises(ValueError, match="image_size"):
        EBGANAutoencoder(image_size=30)
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        ae(torch.zeros(2, 1, 28, 28))
