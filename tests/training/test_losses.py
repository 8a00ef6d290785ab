"""GAN losses against hand-computed values."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cogenerate.training.losses import discriminator_loss, generator_loss


def test_discriminator_loss_hand_computed() -> None:
    # D = 1/2 everywhere: -log(1/2) - log(1 - 1/2) = 2 log 2
    assert math.isclose(discriminator_loss(torch.zeros(4), torch.zeros(3)).item(), 2 * math.log(2), rel_tol=1e-6)
    # real logits 0, log 3 -> D = 1/2, 3/4; fake logit -log 3 -> D = 1/4, 1 - D = 3/4
    real = torch.tensor([0.0, math.log(3.0)])
    fake = torch.tensor([-math.log(3.0)])
    expected = (math.log(2.0) + math.log(4.0 / 3.0)) / 2 + math.log(4.0 / 3.0)
    assert math.isclose(discriminator_loss(real, fake).item(), expected, rel_tol=1e-6)
    # same as binary cross-entropy with real = 1, fake = 0
    real, fake = torch.randn(5, generator=torch.Generator().manual_seed(0)), torch.randn(6, generator=torch.Generator().manual_seed(1))
    bce = F.binary_cross_entropy(torch.sigmoid(real), torch.ones(5)) + F.binary_cross_entropy(torch.sigmoid(fake), torch.zeros(6))
    torch.testing.assert_close(discriminator_loss(real, fake), bce)


def test_generator_loss_is_non_saturating() -> None:
    # D = 3/4 -> -log(3/4)
    assert math.isclose(generator_loss(torch.tensor([math.log(3.0)])).item(), math.log(4.0 / 3.0), rel_tol=1e-6)
    # a confident discriminator (D(G(z)) = sigmoid(-30) ≈ 1e-13) still gives a gradient of ≈ -1 per sample
    logits = torch.tensor([-30.0, -1000.0], requires_grad=True)
    loss = generator_loss(logits)
    assert math.isclose(loss.item(), (30.0 + 1000.0) / 2, rel_tol=1e-6)
    (gradient,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(gradient, torch.tensor([-0.5, -0.5]))
    # whereas the saturating log(1 - D) has a vanishing gradient there
    saturating = -F.softplus(logits).mean()
    (saturating_gradient,) = torch.autograd.grad(saturating, logits)
    assert saturating_gradient.abs().max().item() < 1e-12


def test_losses_are_finite_for_extreme_logits() -> None:
    big = torch.tensor([1e4, -1e4])
    assert torch.isfinite(discriminator_loss(big, big)).item()
    assert torch.isfinite(generator_loss(big)).item()
