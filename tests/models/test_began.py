"""Tests for cogenerate.models.began: shapes, the L1 energy, the paper's layer conventions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cogenerate.models.began import BEGANAutoencoder, BEGANConvAutoencoder, BEGANGenerator
from cogenerate.models.registry import build_module, module_config
from cogenerate.training.began import init_kaiming


@pytest.mark.parametrize("size", [28, 32, 64])
def test_shapes_and_range(size: int) -> None:
    rng = torch.Generator().manual_seed(0)
    g = init_kaiming(BEGANGenerator(8, image_size=size, channels=3, width=4, depth=1), rng=rng)
    ae = init_kaiming(BEGANAutoencoder(image_size=size, channels=3, width=4, code_dim=8, depth=1), rng=rng)
    x = g(torch.randn(2, 5, 8, generator=rng))
    assert x.shape == (2, 5, 3, size, size) and x.abs().max() <= 1.0
    flat = x.reshape(10, 3, size, size)
    assert ae.reconstruct(flat).shape == flat.shape
    assert torch.allclose(ae(flat), (ae.reconstruct(flat) - flat).abs().mean(dim=(1, 2, 3)))


def test_paper_conventions() -> None:
    ae = BEGANAutoencoder(image_size=28, width=4, code_dim=8, depth=2)
    convs = [m for m in ae.encoder if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) for c in convs)
    # down-sampling by stride 2 with filters increased linearly: n -> 2n -> 3n
    assert [c.out_channels for c in convs if c.stride == (2, 2)] == [8, 12]
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in ae.modules())
    assert any(isinstance(m, nn.Upsample) and m.mode == "nearest" for m in ae.decoder.modules())
    assert sum(isinstance(m, nn.ELU) for m in ae.modules()) > 0


def test_registry_round_trip() -> None:
    for module in (BEGANGenerator(8, image_size=32, width=4, depth=1), BEGANAutoencoder(width=4, code_dim=8)):
        config = module_config(module)
        rebuilt = build_module(config["architecture"], config["kwargs"])
        assert type(rebuilt) is type(module) and module_config(rebuilt) == config
    with pytest.raises(ValueError, match="latents of shape"):
        BEGANGenerator(8, width=4)(torch.zeros(1, 9))


@pytest.mark.parametrize("size", [28, 32, 64])
def test_conv_autoencoder_scores_the_l1_energy_and_round_trips_its_config(size: int) -> None:
    ae = BEGANConvAutoencoder(image_size=size, channels=3, width=4, code_dim=8)
    x = torch.rand(2, 3, size, size) * 2 - 1
    assert torch.allclose(ae(x), (ae.reconstruct(x) - x).abs().mean(dim=(1, 2, 3)))
    config = module_config(ae)
    rebuilt = build_module(config["architecture"], config["kwargs"])
    rebuilt.load_state_dict(ae.state_dict())
    assert isinstance(rebuilt, BEGANConvAutoencoder) and torch.equal(rebuilt(x), ae(x))
