"""Toy MLP generator and discriminator of the synthetic experiment."""

from __future__ import annotations

import json

import torch
from torch import nn

from cogenerate.models.registry import ARCHITECTURES, build_module, module_config
from cogenerate.models.toy import ToyDiscriminator, ToyGenerator


def test_shapes_and_attributes() -> None:
    generator = ToyGenerator(3, hidden=16, depth=2, out_dim=4)
    discriminator = ToyDiscriminator(4, hidden=8, depth=1)
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    x = generator(z)
    assert x.shape == (7, 4)
    assert discriminator(x).shape == (7,)
    assert generator.latent_dim == 3
    assert (generator.hidden, generator.depth, generator.out_dim) == (16, 2, 4)
    assert (discriminator.in_dim, discriminator.hidden, discriminator.depth) == (4, 8, 1)
    # depth hidden layers + the output layer
    assert sum(isinstance(m, nn.Linear) for m in generator.modules()) == 3
    assert sum(isinstance(m, nn.Linear) for m in discriminator.modules()) == 2


def test_defaults_match_the_paper_setting() -> None:
    generator, discriminator = ToyGenerator(), ToyDiscriminator()
    assert generator.latent_dim == 2 and generator.out_dim == 2 and discriminator.in_dim == 2


def test_registered_and_rebuilt_from_json_config() -> None:
    assert ARCHITECTURES["toy-generator"] is ToyGenerator
    assert ARCHITECTURES["toy-discriminator"] is ToyDiscriminator
    for module in (ToyGenerator(2, hidden=12, depth=2), ToyDiscriminator(2, hidden=10, depth=3)):
        config = json.loads(json.dumps(module_config(module)))
        rebuilt = build_module(config["architecture"], config["kwargs"])
        assert type(rebuilt) is type(module)
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in module.state_dict().items()}
    assert module_config(ToyGenerator(2, hidden=12, depth=2)) == {
        "architecture": "toy-generator",
        "kwargs": {"latent_dim": 2, "hidden": 12, "depth": 2, "out_dim": 2},
    }
