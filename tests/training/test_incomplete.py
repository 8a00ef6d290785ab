"""Learning from incomplete images: refilling, the recovery error by hand, hidden pixels never read."""

from __future__ import annotations

import pytest
import torch

from cogenerate.training.families import resolve_settings
from cogenerate.training.incomplete import recover, recovery_error, refill, train_on_incomplete


def test_refill_and_recovery_error_by_hand() -> None:
    observed = torch.tensor([1.0, 0.0, 0.0, -1.0]).reshape(1, 1, 2, 2)
    mask = torch.tensor([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    filled = refill(observed, mask, torch.full((1, 1, 2, 2), 0.5))
    assert torch.equal(filled.flatten(), torch.tensor([1.0, 0.5, 0.5, -1.0]))
    truth = torch.tensor([1.0, -0.5, 1.0, -1.0]).reshape(1, 1, 2, 2)
    # hidden errors |0.5 + 0.5| = 1 and |0.5 − 1| = 0.5: mean 0.75, over the range 2
    assert recovery_error(filled, truth, mask).item() == pytest.approx(0.375)
    assert recovery_error(truth, truth, torch.ones_like(mask)).item() == 0.0


@pytest.mark.parametrize("family", ["triangle", "vae"])
def test_training_never_reads_hidden_pixels_and_refills_them(family: str) -> None:
    rng = torch.Generator().manual_seed(0)
    truth = torch.linspace(-1, 1, 28).expand(16, 1, 28, 28).clone()
    mask = torch.ones(16, 1, 28, 28)
    mask[:, :, 10:18, 10:18] = 0
    settings = resolve_settings(family, {"width": 4, "latent_dim": 4, "batch_size": 8})
    runs = []
    for hidden_value in (0.0, 5.0):  # what lies under the mask must not matter
        images = torch.where(mask.bool(), truth, torch.full_like(truth, hidden_value))
        runs.append(train_on_incomplete(family, images, mask, settings=settings, iterations=4,
                                        rng=torch.Generator().manual_seed(1)))
    assert torch.equal(runs[0].filled, runs[1].filled)
    run = runs[0]
    assert len(run.losses) == 4
    assert torch.equal(run.filled * mask, truth * mask)
    assert bool((run.filled * (1 - mask)).abs().sum() > 0)  # refilled where drawn
    recovered = recover(run.modules, run.filled, truth * mask, mask)
    assert torch.equal(recovered * mask, truth * mask)
    assert recovery_error(recovered, truth, mask).shape == (16,)


def test_langevin_samples_the_gaussian_posterior_of_a_linear_generator() -> None:
    """g(z) = W z, x_o observed through a mask: the posterior is N(P⁻¹ WᵀMx/σ², P⁻¹) with
    P = I + WᵀMW/σ²; 4,000 chains, once relaxed, match its mean and covariance."""
    from cogenerate.training.incomplete import langevin_latents

    w = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    generator = lambda z: (z @ w.T).reshape(-1, 1, 2, 2)  # noqa: E731
    n = 4000
    x = torch.tensor([1.0, -0.5, 0.3, 0.8]).reshape(1, 1, 2, 2).expand(n, 1, 2, 2)
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    sigma = 0.5
    m = torch.diag(mask.flatten())
    precision = torch.eye(2) + w.T @ m @ w / sigma ** 2
    covariance = torch.linalg.inv(precision)
    mean = covariance @ w.T @ m @ x[0].flatten() / sigma ** 2
    low, high = (float(v) for v in torch.linalg.eigvalsh(precision))
    step = 0.5 / high ** 0.5  # ULA's variance bias 1/(1 − s²λ/4) stays under 7 %
    steps = int(10 / (0.5 * step ** 2 * low)) + 1  # e^-10 of the start left in the slowest direction
    z = langevin_latents(generator, torch.zeros(n, 2), x, mask, steps=steps, step_size=step, noise_std=sigma,
                         rng=torch.Generator().manual_seed(1))
    assert torch.allclose(z.mean(0), mean, atol=0.03), (z.mean(0), mean)
    assert torch.allclose(torch.cov(z.T), covariance, rtol=0.1, atol=0.01), (torch.cov(z.T), covariance)


def test_abp_keeps_observed_pixels_and_reduces_its_loss() -> None:
    from cogenerate.training.incomplete import train_abp_on_incomplete

    truth = torch.linspace(-1, 1, 28).expand(16, 1, 28, 28).clone()
    mask = torch.ones(16, 1, 28, 28)
    mask[:, :, 10:18, 10:18] = 0
    run = train_abp_on_incomplete(truth * mask, mask, latent_dim=4, width=4, batch_size=8, iterations=15,
                                  rng=torch.Generator().manual_seed(0), langevin_steps=3, lr=3e-3)
    assert run.latents.shape == (16, 4) and len(run.losses) == 15
    assert torch.equal(run.recovered * mask, truth * mask)
    assert run.losses[-1]["loss"] < run.losses[0]["loss"]
