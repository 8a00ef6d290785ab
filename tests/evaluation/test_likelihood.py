"""AIS log-likelihood and its BDMC sandwich against known answers: the linear-Gaussian closed form,
and, for a small nonlinear decoder with an encoder, quadrature: ELBO below, AIS and IWAE-5000 on it."""

from __future__ import annotations

import math

import torch
from torch import nn

from cogenerate.evaluation.likelihood import (
    ais_log_likelihood, bdmc, elbo, fit_noise_std, iwae_bound, reverse_ais_upper_bound, simulate,
)
from cogenerate.models.base import GenerativeModel
from tests.conftest import assert_unbiased, linear_gaussian_posterior, make_linear_gaussian


def _linear_model():
    p = make_linear_gaussian(batch=1)
    return p, GenerativeModel.from_generator(p.generator)


def test_forward_ais_matches_the_linear_gaussian_closed_form() -> None:
    p, model = _linear_model()
    x = p.observed.expand(8, -1)
    exact = linear_gaussian_posterior(p.generator, p.observed, torch.ones(6, dtype=x.dtype), p.sigma)[2][0]
    estimates = ais_log_likelihood(model, x, noise_std=p.sigma, steps=50, chains=20, leapfrog=5, step_size=0.1)
    assert estimates.shape == (8,)
    assert_unbiased(estimates, exact, bias_allowance=estimates.var())


def test_the_bdmc_sandwich_holds_and_its_gap_shrinks_with_more_temperatures() -> None:
    p, model = _linear_model()
    rng = torch.Generator().manual_seed(0)
    few = bdmc(model, 6, noise_std=0.3, steps=2, chains=4, leapfrog=5, step_size=0.1, rng=rng)
    many = bdmc(model, 6, noise_std=0.3, steps=100, chains=4, leapfrog=5, step_size=0.1, rng=rng)
    for result in (few, many):
        exact = linear_gaussian_posterior(p.generator, result.images, torch.ones(6, dtype=torch.float64), 0.3)[2]
        assert float((result.lower - exact).mean()) < 0.05 and float((result.upper - exact).mean()) > -0.05
    assert float(few.gap.mean()) > 0.5 and float(many.gap.mean()) < 0.2 * float(few.gap.mean()), (few.gap, many.gap)


def test_reverse_ais_from_the_exact_latent_is_an_upper_bound_on_the_closed_form() -> None:
    p, model = _linear_model()
    rng = torch.Generator().manual_seed(1)
    images, latents = simulate(model, 20, noise_std=0.3, rng=rng)
    exact = linear_gaussian_posterior(p.generator, images, torch.ones(6, dtype=torch.float64), 0.3)[2]
    upper = reverse_ais_upper_bound(model, images, latents, noise_std=0.3, steps=3, chains=2, leapfrog=5,
                                    step_size=0.1, rng=rng)
    assert float((upper - exact).mean()) > 0.1  # a short reverse run overestimates


class TinyDecoder(nn.Module):
    latent_dim = 2

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.w1, self.w2 = nn.Parameter(torch.randn(2, 16, generator=g)), nn.Parameter(torch.randn(16, 8, generator=g) / 3)

    def forward(self, z):
        return torch.tanh(z @ self.w1) @ self.w2


_GRID = torch.linspace(-6, 6, 601)
_CELL = float(_GRID[1] - _GRID[0]) ** 2


def _grid_log_joint(decoder: nn.Module, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p(x, z)`` on a 601² grid of z, ``(N, G)``, and the grid ``(G, 2)``."""
    z = torch.stack(torch.meshgrid(_GRID, _GRID, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        residual = decoder(z).unsqueeze(0) - x.unsqueeze(1)
    log_prior = -0.5 * z.pow(2).sum(1) - math.log(2 * math.pi)
    log_lik = -0.5 * residual.pow(2).sum(-1) / sigma**2 - 8 * math.log(sigma * math.sqrt(2 * math.pi))
    return log_prior + log_lik, z


class MomentEncoder(nn.Module):
    """q(z | x): a Gaussian with the true posterior's mean and marginal stds (from the grid): a
    well-trained encoder, as a VAE's."""

    def __init__(self, decoder: nn.Module, sigma: float):
        super().__init__()
        self.decoder, self.sigma = decoder, sigma

    def forward(self, x, mask=None):
        log_joint, z = _grid_log_joint(self.decoder, x, self.sigma)
        w = torch.softmax(log_joint, dim=1)
        mean = w @ z
        std = (w @ z.pow(2) - mean.pow(2)).sqrt()
        return mean, (1.2 * std).log()


def test_ais_lies_above_the_elbo_and_near_iwae_5000_and_the_exact_value_for_a_small_decoder() -> None:
    """Known answer: log p(x) by quadrature over the 2-D latent (a 601² grid)."""
    decoder = TinyDecoder()
    model = GenerativeModel.from_generator(decoder, encoder=MomentEncoder(decoder, 0.2))
    rng = torch.Generator().manual_seed(2)
    x, _ = simulate(model, 4, noise_std=0.2, rng=rng)
    exact = torch.logsumexp(_grid_log_joint(decoder, x, 0.2)[0], dim=1) + math.log(_CELL)
    lower_bound = elbo(model, x, noise_std=0.2, samples=2000, rng=rng)
    iwae = iwae_bound(model, x, noise_std=0.2, samples=5000, rng=rng)
    ais = ais_log_likelihood(model, x.repeat(4, 1), noise_std=0.2, steps=300, chains=8, leapfrog=5,
                             step_size=0.05).reshape(4, 4)
    assert bool((ais.mean(0) > lower_bound + 0.05).all()), (ais, lower_bound)
    assert_unbiased(ais, exact, bias_allowance=0.05)
    assert torch.allclose(iwae, exact, atol=0.05), (iwae, exact)
    assert bool((lower_bound < exact).all())


def test_fit_noise_std_recovers_the_simulation_scale() -> None:
    p = make_linear_gaussian(x_dim=40)  # 37 residual dimensions per image: a precise σ per image
    model = GenerativeModel.from_generator(p.generator)
    images, _ = simulate(model, 20, noise_std=0.3, rng=torch.Generator().manual_seed(3))
    assert 0.2 < fit_noise_std(model, images, chains=32, max_grad_evals=300) < 0.4
