"""Tests for cogenerate.models.vae (Gaussian encoder) and models.aae (code discriminator)."""

from __future__ import annotations

import pytest
import torch

from cogenerate.models.aae import CodeDiscriminator
from cogenerate.models.dcgan import weights_init
from cogenerate.models.registry import build_module, module_config
from cogenerate.models.vae import LOG_STD_RANGE, GaussianEncoder


@pytest.mark.parametrize("size", [28, 32, 64])
def test_encoder_shapes(size: int) -> None:
    encoder = weights_init(GaussianEncoder(6, image_size=size, channels=3, width=4), rng=torch.Generator().manual_seed(0))
    mean, log_std = encoder(torch.zeros(5, 3, size, size))
    assert mean.shape == log_std.shape == (5, 6)
    assert bool((log_std >= LOG_STD_RANGE[0]).all() and (log_std <= LOG_STD_RANGE[1]).all())


def test_mask_aware_encoder_ignores_hidden_pixels_and_plain_encoder_ignores_the_mask() -> None:
    rng = torch.Generator().manual_seed(1)
    aware = weights_init(GaussianEncoder(4, width=4, mask_aware=True), rng=rng)
    x = torch.rand(3, 1, 28, 28, generator=rng) * 2 - 1
    mask = torch.ones(3, 1, 28, 28)
    mask[:, :, :14] = 0
    changed = torch.where(mask.bool(), x, torch.full_like(x, 5.0))
    for a, b in zip(aware(x, mask), aware(changed, mask)):
        assert torch.equal(a, b)
    # no mask = all observed; a (1, H, W) mask broadcasts over the batch
    for a, b in zip(aware(x), aware(x, torch.ones(1, 28, 28))):
        assert torch.equal(a, b)
    plain = weights_init(GaussianEncoder(4, width=4), rng=rng)
    for a, b in zip(plain(x), plain(x, mask)):
        assert torch.equal(a, b)
    # one image's code does not depend on its batch (no batch norm)
    assert torch.allclose(plain(x[:1])[0], plain(x)[0][:1], atol=1e-6)


def test_registry_round_trips_and_bad_input() -> None:
    encoder = GaussianEncoder(8, image_size=32, channels=1, width=4, mask_aware=True)
    config = module_config(encoder)
    assert config == {"architecture": "gaussian-encoder", "kwargs": {"latent_dim": 8, "image_size": 32, "channels": 1,
                                                                     "width": 4, "mask_aware": True}}
    assert isinstance(build_module(config["architecture"], config["kwargs"]), GaussianEncoder)
    critic = CodeDiscriminator(5, hidden=7, depth=3)
    assert module_config(critic) == {"architecture": "code-discriminator",
                                     "kwargs": {"latent_dim": 5, "hidden": 7, "depth": 3}}
    assert critic(torch.zeros(4, 5)).shape == (4,)
    with pytest.raises(ValueError, match="image_size"):
        GaussianEncoder(image_size=30)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        GaussianEncoder()(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        critic(torch.zeros(2, 4))
