"""The models shipped inside the package."""

from __future__ import annotations

import pytest
import torch

from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator
from cogenerate.models.pretrained import (
    PRETRAINED, load_pretrained, load_pretrained_model, pretrained_config, pretrained_files,
)


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_model_loads_and_generates_images(name: str) -> None:
    model = load_pretrained_model(name)
    if model.family == "dcgan":
        assert isinstance(model.generator, DCGANGenerator) and isinstance(model.discriminator, DCGANDiscriminator)
    assert all(not module.training for module in model.modules.values())
    z = torch.randn(4, model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = model.generator(z)
        critic = model.log_ratio(x) if model.has_critic else torch.zeros(4)
    assert x.shape == (4, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert x.std(0).mean() > 0.05  # different latents give different images
    assert critic.shape == (4,) and torch.isfinite(critic).all()


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_model_records_how_it_was_trained(name: str) -> None:
    config = pretrained_config(name)
    assert name == config["dataset"] or name.startswith(config["dataset"] + "-")  # e.g. fashion-mnist-ebgan
    assert config["image_size"] == 28 and config["channels"] == 1
    assert config["command"].startswith("cogen ") and " train " in config["command"]
    assert config["iteration"] >= 1000
    size = sum(f.stat().st_size if hasattr(f, "stat") else len(f.read_bytes()) for f in pretrained_files(name).values())
    assert size < 6e6  # small enough to ship


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match="unknown pretrained model 'celeba'.*fashion-mnist.*mnist"):
        load_pretrained("celeba")


def test_short_names_load_the_models_they_stand_for() -> None:
    from cogenerate.models.loading import load_model
    from cogenerate.models.pretrained import SHORT_NAMES, canonical_name, is_pretrained

    assert set(SHORT_NAMES.values()) <= set(PRETRAINED) and not set(SHORT_NAMES) & set(PRETRAINED)
    assert canonical_name("vae") == "fashion-mnist-vae" and canonical_name("mnist") == "mnist"
    assert is_pretrained("vae") and not is_pretrained("no-such-model")
    short, full = load_model("vae"), load_model("fashion-mnist-vae")
    assert short.family == full.family == "vae"
    for a, b in zip(short.generator.parameters(), full.generator.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="short names: dcgan"):
        load_pretrained("no-such-model")
