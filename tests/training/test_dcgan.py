"""The DCGAN family: seeded build, a few steps reduce its losses, its checkpoint round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cogenerate.checkpoint import load_checkpoint, restore_checkpoint, save_checkpoint
from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator
from cogenerate.training import losses
from cogenerate.training.dcgan import DCGAN, build_dcgan, discriminator_loss, gan_step, generator_loss
from cogenerate.training.families import resolve_settings


def _tiny(seed: int = 0, lr: float = 1e-3):
    settings = resolve_settings("dcgan", {"width": 8, "latent_dim": 8, "batch_size": 16, "lr": lr})
    rng = torch.Generator().manual_seed(seed)
    modules = DCGAN.build(settings, (1, 28, 28), rng)
    return settings, modules, DCGAN.make_optimizers(modules, settings), rng


def _real() -> torch.Tensor:
    return torch.linspace(-1, 1, 28).expand(16, 1, 28, 28).clone()  # one fixed horizontal ramp


def test_losses_are_the_ones_of_losses_py() -> None:
    assert losses.discriminator_loss is discriminator_loss and losses.generator_loss is generator_loss


def test_build_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    settings = resolve_settings("dcgan", {"width": 8, "latent_dim": 8})
    a = build_dcgan(settings, (3, 32, 32), torch.Generator().manual_seed(1))
    b = build_dcgan(settings, (3, 32, 32), torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)
    assert isinstance(a["generator"], DCGANGenerator) and isinstance(a["discriminator"], DCGANDiscriminator)
    assert a["generator"].image_size == 32 and a["discriminator"].channels == 3
    for role in ("generator", "discriminator"):
        for key, value in a[role].state_dict().items():
            assert torch.equal(value, b[role].state_dict()[key]), key
    with pytest.raises(ValueError, match="square images of side 28, 32, 64"):
        build_dcgan(settings, (1, 28, 32), torch.Generator())


def test_a_few_steps_reduce_the_discriminator_loss_on_a_fixed_batch() -> None:
    _, modules, optimizers, rng = _tiny()
    real = _real()
    trace = [gan_step(modules, optimizers, real, rng, None)[1]["loss_d"] for _ in range(10)]
    assert trace[-1] < 0.8 * trace[0], trace


def test_a_few_steps_reduce_the_generator_loss_against_a_fixed_discriminator() -> None:
    _, modules, optimizers, rng = _tiny()
    for group in optimizers["discriminator"].param_groups:
        group["lr"] = 0.0
    before = [p.detach().clone() for p in modules["discriminator"].parameters()]
    trace = [gan_step(modules, optimizers, _real(), rng, None)[1]["loss_g"] for _ in range(10)]
    assert trace[-1] < 0.8 * trace[0], trace
    assert all(torch.equal(a, b) for a, b in zip(before, modules["discriminator"].parameters()))


def test_checkpoint_round_trips(tmp_path: Path) -> None:
    settings, modules, optimizers, rng = _tiny()
    for _ in range(2):
        gan_step(modules, optimizers, _real(), rng, None)
    save_checkpoint(tmp_path / "ck", modules, {"family": "dcgan"}, optimizers=optimizers, rng_state=rng.get_state(),
                    iteration=2)
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.config["family"] == "dcgan" and loaded.iteration == 2
    for role, module in modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(loaded.modules[role].state_dict()[key], value), (role, key)

    # resuming into fresh parts and optimizers continues exactly where the saved run went on
    _, fresh, fresh_optimizers, fresh_rng = _tiny(seed=9)
    state = restore_checkpoint(tmp_path / "ck", fresh, optimizers=fresh_optimizers)
    fresh_rng.set_state(state.rng_state)
    expected = gan_step(modules, optimizers, _real(), rng, None)[1]
    assert gan_step(fresh, fresh_optimizers, _real(), fresh_rng, None)[1] == expected
    for role in modules:
        for a, b in zip(modules[role].parameters(), fresh[role].parameters()):
            assert torch.equal(a, b)
