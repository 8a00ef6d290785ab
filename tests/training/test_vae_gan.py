"""The VAE-GAN family: the feature likelihood by hand, the players' losses fall, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cogenerate.training.vae_gan import VAE_GAN_GAMMA, discriminator_features, feature_nll, vae_gan_step
from tests.training.family_helpers import check_resume_and_load, ramp, tiny


def test_feature_nll_and_features_by_hand() -> None:
    real, fake = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[0.0, 0.0, 3.0]])
    assert feature_nll(real, fake).item() == pytest.approx(0.5 * (1 + 4 + 9))
    _, modules, _, _ = tiny("vae-gan")
    discriminator = modules["discriminator"].eval()
    x = ramp(2)
    # the features are the input of the discriminator's last layer: applying it gives the logits
    features = discriminator_features(discriminator, x)
    assert features.shape == (2, 8 * 7 * 7)
    assert torch.allclose(discriminator.net[-1](features.reshape(2, 8, 7, 7)).flatten(), discriminator(x), atol=1e-6)
    assert VAE_GAN_GAMMA == 1e-5


def test_a_few_steps_reduce_the_feature_reconstruction_against_a_fixed_discriminator() -> None:
    _, modules, optimizers, rng = tiny("vae-gan", lr=3e-3)
    for group in optimizers["discriminator"].param_groups:
        group["lr"] = 0.0
    # γ = 1 so that the decoder reconstructs too (at the paper's 1e-5 only the encoder does)
    trace = [vae_gan_step(modules, optimizers, ramp(), rng, None, llike_weight=1.0)[1] for _ in range(15)]
    assert trace[-1]["llike"] < 0.5 * trace[0]["llike"], [t["llike"] for t in trace]


def test_a_few_steps_reduce_the_discriminator_loss_against_a_fixed_decoder() -> None:
    _, modules, optimizers, rng = tiny("vae-gan", lr=3e-3)
    for group in optimizers["generator"].param_groups:
        group["lr"] = 0.0
    trace = [vae_gan_step(modules, optimizers, ramp(), rng, None)[1]["loss_d"] for _ in range(15)]
    assert trace[-1] < 0.8 * trace[0], trace


def test_resume_and_load(tmp_path: Path) -> None:
    model = check_resume_and_load("vae-gan", tmp_path)
    assert set(model.parts) == {"generator", "encoder", "discriminator"}
