"""The VAE family: the ELBO's parts by hand, a few steps reduce the loss, checkpoints resume exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cogenerate.models.loading import load_model
from cogenerate.training.families import resolve_settings
from cogenerate.training.loop import train
from cogenerate.training.vae import VAE, gaussian_kl, gaussian_nll, training_masks, vae_loss, vae_step


def _tiny(seed: int = 0, **given):
    settings = resolve_settings("vae", {"width": 4, "latent_dim": 4, "batch_size": 8, **given})
    rng = torch.Generator().manual_seed(seed)
    modules = VAE.build(settings, (1, 28, 28), rng)
    return settings, modules, VAE.make_optimizers(modules, settings), rng


def test_kl_and_nll_by_hand() -> None:
    # KL(N((1, 0), diag(1, 4)) ‖ N(0, I)) = ½(1 + 1 − 1 − 0) + ½(0 + 4 − 1 − 2 log 2)
    kl = gaussian_kl(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]]))
    assert kl.item() == pytest.approx(2.0 - math.log(2.0))
    # −log N(0; 1, 2²) over 4 pixels = 4·(½·¼ + log 2 + ½ log 2π)
    nll = gaussian_nll(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2), 2.0)
    assert nll.item() == pytest.approx(4 * (0.125 + math.log(2.0) + 0.5 * math.log(2 * math.pi)))


def test_vae_loss_with_the_fitted_decoder_std() -> None:
    x = torch.zeros(2, 1, 2, 2)
    reconstruction = torch.tensor([0.5, -0.5, 0.5, -0.5, 1.0, 1.0, -1.0, -1.0]).reshape(2, 1, 2, 2)
    mean, log_std = torch.zeros(2, 3), torch.zeros(2, 3)
    parts = vae_loss(x, reconstruction, mean, log_std)
    s2 = (4 * 0.25 + 4 * 1.0) / 8  # the batch's mean squared error
    assert parts.decoder_std.item() == pytest.approx(math.sqrt(s2))
    # per image: ½ Σ r² / s² + 4 (log s + ½ log 2π); averaged, Σ r² / s² averages to 4
    assert parts.nll.item() == pytest.approx(2 + 4 * (0.5 * math.log(s2) + 0.5 * math.log(2 * math.pi)))
    assert parts.kl.item() == 0.0 and parts.loss.item() == pytest.approx(parts.nll.item())
    fixed = vae_loss(x, reconstruction, mean + 1, log_std, decoder_std=1.0)
    assert fixed.nll.item() == pytest.approx(0.5 * 5 / 2 + 4 * 0.5 * math.log(2 * math.pi))
    assert fixed.kl.item() == pytest.approx(1.5)


def test_training_masks() -> None:
    rng = torch.Generator().manual_seed(0)
    assert torch.equal(training_masks(6, 28, rng=rng, fraction=0.0), torch.ones(6, 1, 28, 28))
    masks = training_masks(200, 28, rng=rng, fraction=1.0)
    hidden = (1 - masks).flatten(1).sum(1)
    assert masks.shape == (200, 1, 28, 28) and bool((hidden >= 49).all()) and bool((hidden <= 21 * 21).all())
    assert torch.equal(training_masks(5, 28, rng=torch.Generator().manual_seed(3), fraction=0.5),
                       training_masks(5, 28, rng=torch.Generator().manual_seed(3), fraction=0.5))


@pytest.mark.parametrize("mask_fraction", [0.0, 0.5])
def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(mask_fraction: float) -> None:
    _, modules, optimizers, rng = _tiny(mask_fraction=mask_fraction, lr=3e-3)
    real = torch.linspace(-1, 1, 28).expand(8, 1, 28, 28).clone()
    trace = [vae_step(modules, optimizers, real, rng, None, decoder_std=0.3, mask_fraction=mask_fraction)[1]["loss"]
             for _ in range(15)]
    assert trace[-1] < 0.7 * trace[0], trace


def test_resumed_run_equals_uninterrupted_run_and_loads_with_an_encoder(tmp_path: Path) -> None:
    def data(n: int, rng: torch.Generator) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=rng) * 2 - 1

    settings, whole, _, rng = _tiny(mask_fraction=0.5)
    train(VAE, whole, data, iterations=4, settings=settings, rng=rng)
    settings, part, _, rng = _tiny(mask_fraction=0.5)
    train(VAE, part, data, iterations=2, settings=settings, rng=rng, checkpoint_dir=tmp_path)
    settings, resumed, _, rng = _tiny(seed=9, mask_fraction=0.5)
    result = train(VAE, resumed, data, iterations=4, settings=settings, rng=rng, checkpoint_dir=tmp_path)
    assert result.start_iteration == 2
    for role in whole:
        for a, b in zip(whole[role].parameters(), resumed[role].parameters()):
            assert torch.equal(a, b), role

    model = load_model(tmp_path)
    assert model.family == "vae" and set(model.parts) == {"generator", "encoder"} and model.x_shape == (1, 28, 28)
    assert model.encoder.mask_aware and model.latent_dim == 4
    mean, log_std = model.encoder(torch.zeros(2, 1, 28, 28))
    assert mean.shape == (2, 4) and model.generator(mean).shape == (2, 1, 28, 28)
