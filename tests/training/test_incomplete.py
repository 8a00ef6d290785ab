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


def test_hmc_latents_sample_the_gaussian_posterior_of_a_linear_generator() -> None:
    """The same closed form as above, reached by ABP's HMC inference step: 4,000 chains, each
    with its own adapted step size, match the posterior mean and covariance (HMC is exact up to
    Monte Carlo error: no step-size bias to allow for)."""
    from cogenerate.training.incomplete import hmc_latents

    w = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    generator = lambda z: (z @ w.T).reshape(-1, 1, 2, 2)  # noqa: E731
    n = 4000
    x = torch.tensor([1.0, -0.5, 0.3, 0.8]).reshape(1, 1, 2, 2).expand(n, 1, 2, 2)
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    sigma = 0.5
    m = torch.diag(mask.flatten())
    covariance = torch.linalg.inv(torch.eye(2) + w.T @ m @ w / sigma ** 2)
    mean = covariance @ w.T @ m @ x[0].flatten() / sigma ** 2
    z, step = hmc_latents(generator, torch.zeros(n, 2), x, mask, step_size=torch.full((n,), 0.1), moves=60,
                          num_leapfrog=5, noise_std=sigma, rng=torch.Generator().manual_seed(1))
    assert step.shape == (n,) and not torch.allclose(step, torch.full((n,), 0.1))  # adapted
    assert torch.allclose(z.mean(0), mean, atol=0.03), (z.mean(0), mean)
    assert torch.allclose(torch.cov(z.T), covariance, rtol=0.1, atol=0.01), (torch.cov(z.T), covariance)


@pytest.mark.parametrize("inference", ["langevin", "hmc"])
def test_abp_keeps_observed_pixels_and_reduces_its_loss(inference: str) -> None:
    from cogenerate.training.incomplete import train_abp_on_incomplete

    truth = torch.linspace(-1, 1, 28).expand(16, 1, 28, 28).clone()
    mask = torch.ones(16, 1, 28, 28)
    mask[:, :, 10:18, 10:18] = 0
    run = train_abp_on_incomplete(truth * mask, mask, latent_dim=4, width=4, batch_size=8, iterations=15,
                                  rng=torch.Generator().manual_seed(0), langevin_steps=4, lr=3e-3,
                                  inference=inference)
    assert run.latents.shape == (16, 4) and len(run.losses) == 15
    assert torch.equal(run.recovered * mask, truth * mask)
    assert run.losses[-1]["loss"] < run.losses[0]["loss"]


def test_abp_rejects_an_unknown_inference_step_and_too_few_gradients_for_hmc() -> None:
    from cogenerate.training.incomplete import train_abp_on_incomplete

    images, mask = torch.zeros(4, 1, 28, 28), torch.ones(4, 1, 28, 28)
    for kwargs, message in (({"inference": "nuts"}, "unknown inference step"),
                            ({"inference": "hmc", "langevin_steps": 3}, "needs langevin_steps >= 4")):
        with pytest.raises(ValueError, match=message):
            train_abp_on_incomplete(images, mask, latent_dim=2, width=4, batch_size=2, iterations=1,
                                    rng=torch.Generator().manual_seed(0), **kwargs)


def test_occlusion_masks_hide_table_iii_fractions() -> None:
    from cogenerate.training.incomplete import OCCLUSIONS, occlusion_masks

    hidden = {name: float(1 - occlusion_masks(name, 200).mean()) for name in OCCLUSIONS}
    assert hidden["p.5"] == pytest.approx(0.5, abs=0.02) and hidden["p.7"] == pytest.approx(0.7, abs=0.02)
    assert hidden["b20"] == pytest.approx(81 / 784) and hidden["b30"] == pytest.approx(169 / 784)  # 9×9, 13×13
    assert 0.1 < hidden["mb10"] < 10 * 16 / 784  # ten 4×4 blocks, overlapping
    assert torch.equal(occlusion_masks("b30", 5), occlusion_masks("b30", 5))  # seeded
    with pytest.raises(ValueError, match="unknown occlusion"):
        occlusion_masks("p.9", 2)


def test_refill_recover_iterates_from_the_zero_fill() -> None:
    from cogenerate.training.incomplete import refill_recover

    observed = torch.full((2, 1, 2, 2), 0.8)
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0]).reshape(1, 1, 2, 2)
    # encoder: the image's mean; generator: that mean everywhere. From the zero fill the hidden
    # pixel becomes 0.6, then (2.4 + 0.6) / 4 = 0.75, ... toward 0.8.
    modules = {"encoder": lambda x: (x.flatten(1).mean(1, keepdim=True), None),
               "generator": lambda z: z.reshape(-1, 1, 1, 1).expand(-1, 1, 2, 2)}
    one = refill_recover(modules, observed, mask, passes=1)
    assert one[0, 0, 0, 1].item() == pytest.approx(0.6)
    assert refill_recover(modules, observed, mask, passes=2)[0, 0, 0, 1].item() == pytest.approx(0.75)
    assert torch.equal(one * mask, observed * mask)
