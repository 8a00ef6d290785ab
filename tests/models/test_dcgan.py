"""Tests for cogenerate.models.dcgan."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator, weights_init
from cogenerate.models.registry import ARCHITECTURES, build_module, module_config


def _rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_range(size: int, channels: int) -> None:
    g = weights_init(DCGANGenerator(16, image_size=size, channels=channels, width=8), rng=_rng())
    d = weights_init(DCGANDiscriminator(image_size=size, channels=channels, width=8), rng=_rng(1))
    z = torch.randn(5, 16, generator=_rng(2))
    x = g(z)
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1.0 and x.max() <= 1.0
    logits = d(x)
    assert logits.shape == (5,) and torch.isfinite(logits).all()
    # latents with extra leading dimensions (observations x chains)
    g.eval()
    assert g(z.reshape(5, 1, 16)).shape == (5, 1, channels, size, size)


def test_dcgan_conventions() -> None:
    g = DCGANGenerator(image_size=64, channels=3, width=64)
    d = DCGANDiscriminator(image_size=64, channels=3, width=64)
    g_layers = list(g.net)
    d_layers = list(d.net)
    assert all(not isinstance(m, nn.Conv2d) for m in g_layers)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g_layers) == 5
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    assert all(isinstance(m, (nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.Tanh)) for m in g_layers)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)  # no BN first
    assert all(m.negative_slope == 0.2 for m in d_layers if isinstance(m, nn.LeakyReLU))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d_layers) == 3
    assert [m.out_channels for m in g_layers if isinstance(m, nn.ConvTranspose2d)] == [512, 256, 128, 64, 3]
    assert [m.out_channels for m in d_layers if isinstance(m, nn.Conv2d)] == [64, 128, 256, 512, 1]


def test_weights_init_is_normal_002_and_deterministic() -> None:
    a = weights_init(DCGANGenerator(image_size=32, channels=1, width=32), rng=_rng(5))
    b = weights_init(DCGANGenerator(image_size=32, channels=1, width=32), rng=_rng(5))
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    convs = torch.cat([m.weight.flatten() for m in a.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(convs.mean().item()) < 1e-3 and abs(convs.std().item() - 0.02) < 1e-3
    scales = torch.cat([m.weight for m in a.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(scales.mean().item() - 1.0) < 0.01
    assert all(torch.all(m.bias == 0) for m in a.modules() if isinstance(m, nn.BatchNorm2d))


def test_registry_round_trip() -> None:
    assert ARCHITECTURES["dcgan-generator"] is DCGANGenerator
    assert ARCHITECTURES["dcgan-discriminator"] is DCGANDiscriminator
    g = weights_init(DCGANGenerator(20, image_size=28, channels=1, width=16), rng=_rng())
    config = module_config(g)
    assert config == {
        "architecture": "dcgan-generator",
        "kwargs": {"latent_dim": 20, "image_size": 28, "channels": 1, "width": 16},
    }
    rebuilt = build_module(config["architecture"], config["kwargs"])
    rebuilt.load_state_dict(g.state_dict())
    g.eval()
    rebuilt.eval()
    z = torch.randn(3, 20, generator=_rng(1))
    assert torch.equal(rebuilt(z), g(z))
    d = DCGANDiscriminator(image_size=32, channels=3, width=8)
    d_config = module_config(d)
    assert d_config["kwargs"] == {"image_size": 32, "channels": 3, "width": 8}
    assert isinstance(build_module("dcgan-discriminator", d_config["kwargs"]), DCGANDiscriminator)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="image_size"):
        DCGANGenerator(image_size=48)
    with pytest.raises(ValueError, match="image_size"):
        DCGANDiscriminator(image_size=16)
    g = DCGANGenerator(10, image_size=28, channels=1, width=4)
    with pytest.raises(ValueError, match="latents"):
        g(torch.zeros(2, 11))
    d = DCGANDiscriminator(image_size=28, channels=1, width=4)
    with pytest.raises(ValueError, match="images"):
        d(torch.zeros(2, 3, 28, 28))
