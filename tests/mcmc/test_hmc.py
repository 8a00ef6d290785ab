import math

import torch

from cogenerate.anneal.tempering import evaluator, tempered_density
from cogenerate.mcmc.hmc import hmc_init, hmc_step, kinetic_energy, leapfrog
from cogenerate.operators import Gaussian, Mask
from cogenerate.posterior import Posterior


def posterior_density(post: Posterior, beta: float = 1.0):
    """The HMC target p(z)·L(z)^β of a posterior, with its evaluation as aux."""
    return tempered_density(evaluator(post.log_prior_and_grad, post.log_likelihood_and_grad),
                            torch.full((post.batch,), beta, dtype=post.observed.dtype))


def gaussian_density(precision: torch.Tensor):
    """log N(z; 0, P⁻¹) up to a constant, and its gradient."""

    def fn(z):
        log_density = -0.5 * torch.einsum("bci,ij,bcj->bc", z, precision, z)
        return log_density, -z @ precision, None

    return fn


def test_leapfrog_energy_error_is_second_order():
    precision = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    fn = gaussian_density(precision)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 64, 2, generator=g, dtype=torch.float64)
    v = torch.randn(1, 64, 2, generator=g, dtype=torch.float64)
    lp0, grad0, _ = fn(z)
    h0 = -lp0 + kinetic_energy(v, 1.0)
    errors = []
    for eps in (0.1, 0.05):
        # Same trajectory length: halving ε doubles the steps.
        n = int(round(1.0 / eps))
        _, v1, lp1, _, _ = leapfrog(z, v, fn, grad0, step_size=torch.full((1, 64), eps, dtype=torch.float64), num_steps=n)
        errors.append((-lp1 + kinetic_energy(v1, 1.0) - h0).abs().max().item())
    assert errors[0] < 0.05
    # Global energy error of a second-order integrator scales as ε²: ratio ≈ 4.
    assert 3.0 < errors[0] / errors[1] < 5.0


def test_leapfrog_is_exactly_reversible():
    precision = torch.tensor([[1.5, -0.4], [-0.4, 0.8]], dtype=torch.float64)
    fn = gaussian_density(precision)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 8, 2, generator=g, dtype=torch.float64)
    v = torch.randn(2, 8, 2, generator=g, dtype=torch.float64)
    eps = torch.rand(2, 8, generator=g, dtype=torch.float64) * 0.3 + 0.05
    _, grad0, _ = fn(z)
    z1, v1, _, grad1, _ = leapfrog(z, v, fn, grad0, step_size=eps, num_steps=17)
    z2, v2, _, _, _ = leapfrog(z1, -v1, fn, grad1, step_size=eps, num_steps=17)
    torch.testing.assert_close(z2, z, atol=1e-12, rtol=0)
    torch.testing.assert_close(-v2, v, atol=1e-12, rtol=0)


def test_hmc_samples_the_linear_gaussian_posterior(linear_gaussian):
    p = linear_gaussian
    post = Posterior(p.generator, p.observed, Mask(p.mask), Gaussian(p.sigma), latent_dim=3)
    rng = torch.Generator().manual_seed(0)
    chains = 500
    target = posterior_density(post)
    state = hmc_init(torch.randn(2, chains, 3, generator=rng, dtype=torch.float64), target)
    step = torch.full((2, chains), 0.1, dtype=torch.float64)
    for _ in range(60):
        state, info = hmc_step(rng, state, target, step_size=step, num_leapfrog=5)
    z = state.position
    mean = z.mean(1)
    std = p.cov.diagonal().sqrt()
    # 500 nearly independent draws: standard error std/√500; allow 5 of them.
    assert ((mean - p.mean).abs() < 5 * std / math.sqrt(chains)).all()
    var = z.var(1)
    assert ((var / p.cov.diagonal() - 1).abs() < 5 * math.sqrt(2 / chains)).all()
    assert info.acceptance_prob.mean() > 0.6


class NanAbove(torch.nn.Module):
    """G(z) = z, but NaN above ``threshold``."""

    latent_dim = 1

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def forward(self, z):
        return torch.where(z > self.threshold, torch.full_like(z, torch.nan), z)


def test_nan_proposals_are_rejected_and_counted_divergent():
    post = Posterior(NanAbove(0.5), torch.zeros(1, 1), Mask(torch.ones(1)), Gaussian(1.0), latent_dim=1)
    rng = torch.Generator().manual_seed(0)
    target = posterior_density(post)
    state = hmc_init(torch.full((1, 200, 1), -0.5), target)
    divergent = 0
    for _ in range(20):
        state, info = hmc_step(rng, state, target, step_size=torch.full((1, 200), 0.5), num_leapfrog=3)
        divergent += int(info.is_divergent.sum())
    assert divergent > 0
    assert torch.isfinite(state.aux.log_likelihood).all()
    assert (state.position <= 0.5).all()


def test_chain_stuck_in_nan_region_escapes():
    post = Posterior(NanAbove(0.0), torch.zeros(1, 1), Mask(torch.ones(1)), Gaussian(1.0), latent_dim=1)
    rng = torch.Generator().manual_seed(0)
    target = posterior_density(post)
    state = hmc_init(torch.full((1, 50, 1), 0.3), target)  # every chain starts where G is NaN
    assert torch.isinf(state.aux.log_likelihood).all()
    for _ in range(30):
        state, _ = hmc_step(rng, state, target, step_size=torch.full((1, 50), 0.5), num_leapfrog=3)
    assert torch.isfinite(state.aux.log_likelihood).float().mean() > 0.9
