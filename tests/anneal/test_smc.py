import math

import pytest
import torch
from torch import Tensor

import cogenerate as cg
from cogenerate.anneal.smc import conditional_ess, next_beta, systematic_resample
from tests.conftest import (
    assert_unbiased,
    linear_gaussian_posterior,
    make_linear_gaussian,
    weighted_moments,
)

REPLICATES = 10


def test_smc_recovers_linear_gaussian_posterior_and_evidence():
    p = make_linear_gaussian()
    observed = p.observed[:1].expand(REPLICATES, -1)
    out = cg.complete(p.generator, observed, p.mask, method=cg.SMC(final_moves=2), chains=400, leapfrog=5, noise_std=p.sigma)
    mean, cov = weighted_moments(out.latents, out.log_weights)
    se = assert_unbiased(mean, p.mean[0])
    assert (se < 0.02).all()
    assert_unbiased(cov.diagonal(dim1=1, dim2=2), p.cov.diagonal())
    assert_unbiased(out.log_evidence, p.log_evidence[0], bias_allowance=out.log_evidence.var())
    assert out.log_evidence.std() / REPLICATES**0.5 < 0.05
    assert (out.diagnostics["beta"][:, -1] == 1).all()


def test_smc_tempering_steps_keep_the_target_ess():
    p = make_linear_gaussian(sigma=0.05)  # a sharp likelihood needs several steps
    out = cg.complete(p.generator, p.observed, p.mask, method=cg.SMC(target_ess=0.5, resample_threshold=0.0), chains=256, noise_std=p.sigma)
    betas = out.diagnostics["beta"]
    assert betas.shape[1] >= 3
    steps = betas.diff(dim=1)
    assert ((steps > 0) | (betas[:, 1:] == 1)).all()  # strictly up until β reaches 1


def test_smc_budget_is_honoured_by_jumping_to_beta_one():
    p = make_linear_gaussian(sigma=0.01)
    out = cg.complete(p.generator, p.observed, p.mask, method="smc", chains=32, leapfrog=10,
                      noise_std=p.sigma, max_grad_evals=31)
    assert out.grad_evals <= 31
    assert (out.diagnostics["beta"][:, -1] == 1).all()
    assert torch.isfinite(out.log_evidence).all()


def test_final_moves_follow_a_budget_forced_jump():
    """Under a budget too small to temper, SMC keeps part of it for its final moves: the jump
    to β = 1 resamples copies of a few particles, and the moves after it separate them."""
    p = make_linear_gaussian(sigma=0.01)

    def run(final_moves):
        return cg.complete(p.generator, p.observed, p.mask, method=cg.SMC(final_moves=final_moves), chains=32,
                           leapfrog=5, noise_std=p.sigma, max_grad_evals=61)

    bare, moved = run(0), run(100)
    for out in (bare, moved):
        assert out.grad_evals <= 61 and (out.diagnostics["beta"][:, -1] == 1).all()
    assert moved.grad_evals == 61  # the reserve was spent on moves after the jump
    distinct = [min(len(torch.unique(out.latents[i], dim=0)) for i in range(2)) for out in (bare, moved)]
    assert distinct[0] < 8 and distinct[1] > 2 * distinct[0]


def test_final_moves_with_their_own_trajectory_length_keep_the_posterior_and_the_budget():
    """``final_leapfrog`` lengthens only the moves after tempering: the known posterior and
    evidence still come out, and each final move costs its own L in the budget."""
    p = make_linear_gaussian()
    observed = p.observed[:1].expand(REPLICATES, -1)
    out = cg.complete(p.generator, observed, p.mask, method=cg.SMC(final_moves=3, final_leapfrog=15), chains=400,
                      leapfrog=5, noise_std=p.sigma)
    mean, cov = weighted_moments(out.latents, out.log_weights)
    assert (assert_unbiased(mean, p.mean[0]) < 0.02).all()
    assert_unbiased(cov.diagonal(dim1=1, dim2=2), p.cov.diagonal())
    assert_unbiased(out.log_evidence, p.log_evidence[0], bias_allowance=out.log_evidence.var())
    assert out.grad_evals == 1 + 5 * out.diagnostics["steps"] + 3 * 15
    sharp = make_linear_gaussian(sigma=0.01)
    budgeted = cg.complete(sharp.generator, sharp.observed, sharp.mask, chains=32, leapfrog=5, noise_std=sharp.sigma,
                           method=cg.SMC(final_moves=100, final_leapfrog=12), max_grad_evals=61)
    assert (budgeted.diagnostics["beta"][:, -1] == 1).all()
    assert 61 - 12 < budgeted.grad_evals <= 61
    assert (budgeted.grad_evals - 1) % 5 != 0  # a move of 12 steps ran (tempering's moves cost 5)
    with pytest.raises(ValueError, match="final_leapfrog"):
        cg.SMC(final_leapfrog=0)


def test_conditional_ess_of_uniform_increments_is_one():
    w = torch.log_softmax(torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), -1)
    torch.testing.assert_close(conditional_ess(w, torch.zeros(3, 50)), torch.ones(3))


def test_next_beta_hits_the_target_ess():
    g = torch.Generator().manual_seed(0)
    log_lik = -50 * torch.rand(4, 200, generator=g)
    log_w = torch.full((4, 200), -math.log(200))
    beta = torch.tensor([0.0, 0.1, 0.5, 1.0])
    new = next_beta(log_w, log_lik, beta, target_ess=0.5)
    assert new[3] == 1.0
    cess = conditional_ess(log_w, (new - beta)[:, None] * log_lik)
    reached_one = new == 1.0
    # The largest step keeping CESS ≥ 0.5, found to ~1 %: CESS is at or just above the target.
    assert (cess[~reached_one] >= 0.5).all() and (cess[~reached_one] < 0.51).all()
    assert (new > beta)[:3].all()


def test_next_beta_drops_a_nan_or_minus_inf_particle_instead_of_stalling():
    g = torch.Generator().manual_seed(0)
    log_lik = -50 * torch.rand(3, 200, generator=g)
    log_w = torch.full((3, 200), -math.log(200))
    beta = torch.zeros(3)
    clean = next_beta(log_w, log_lik, beta, target_ess=0.5)
    broken = log_lik.clone()
    broken[1, 7] = float("nan")
    broken[2, :5] = -torch.inf
    new = next_beta(log_w, broken, beta, target_ess=0.5)
    # One lost particle of 200 barely changes the step; it must not fall to the smallest grid step.
    assert (new[1:] > 0.5 * clean[1:]).all()
    torch.testing.assert_close(new[0], clean[0])
    every_particle_lost = torch.full((1, 200), -torch.inf)
    assert 0 < next_beta(log_w[:1], every_particle_lost, beta[:1], target_ess=0.5) < 1e-9


def test_systematic_resampling_copies_each_particle_about_c_w_times():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 100, generator=g)
    idx = systematic_resample(g, logits)
    counts = torch.zeros(5, 100).scatter_add_(1, idx, torch.ones(5, 100))
    expected = 100 * torch.softmax(logits, -1)
    # Systematic resampling copies particle i either ⌊C w_i⌋ or ⌈C w_i⌉ times.
    assert ((counts - expected).abs() < 1 + 1e-6).all()


def test_smc_same_seed_same_result():
    p = make_linear_gaussian()
    a = cg.complete(p.generator, p.observed, p.mask, method="smc", chains=16, noise_std=p.sigma, seed=5)
    b = cg.complete(p.generator, p.observed, p.mask, method="smc", chains=16, noise_std=p.sigma, seed=5)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.log_evidence, b.log_evidence)


def test_smc_rejects_bad_target_ess():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="target_ess"):
        cg.complete(p.generator, p.observed, p.mask, method=cg.SMC(target_ess=1.5))


def test_discriminator_term_shifts_the_posterior_as_in_closed_form():
    # log p(z) + log L(z) + λ·aᵀG(z) with G(z) = Az + b: still Gaussian, with covariance Σ and
    # mean Σ (A_Oᵀ (x_O − b_O) / σ² + λ Aᵀ a) — discriminator-driven latent sampling, exactly.
    p = make_linear_gaussian()
    weight = p.generator.weight.detach()
    a = torch.tensor([0.5, -1.0, 0.3, 0.8, -0.4, 0.2], dtype=torch.float64)
    lam = 0.7
    shifted = p.mean[:1] + (p.cov @ (lam * weight.T @ a)).unsqueeze(0)
    observed = p.observed[:1].expand(REPLICATES, -1)
    out = cg.complete(p.generator, observed, p.mask, method=cg.SMC(final_moves=2), chains=400, leapfrog=5, noise_std=p.sigma,
                      discriminator=lambda x: x @ a, discriminator_weight=lam)
    mean, _ = weighted_moments(out.latents, out.log_weights)
    se = assert_unbiased(mean, shifted[0])
    assert ((shifted[0] - p.mean[0]).abs() > 10 * se).any()  # the shift is resolved, not noise


def closed_form_best_noise_std(p, observed) -> Tensor:
    """The noise std maximising the closed-form evidence of each observation (to 0.05 %)."""
    grid = torch.logspace(-2, 1, 6001, dtype=torch.float64)
    evidence = torch.stack([linear_gaussian_posterior(p.generator, observed, p.mask, s)[2] for s in grid], 1)
    return grid[evidence.argmax(1)]


def test_empirical_bayes_finds_the_evidence_maximising_noise_std():
    # 20 observed entries: the evidence has a clear interior maximum in σ (near the true 0.3).
    p = make_linear_gaussian(latent_dim=3, x_dim=40, batch=1, sigma=0.3, seed=2)
    observed = p.observed.expand(REPLICATES, -1)
    best = closed_form_best_noise_std(p, p.observed)[0]
    out = cg.complete(p.generator, observed, p.mask, method=cg.SMC(final_moves=2), chains=400, leapfrog=5, noise_std="auto")
    fitted = out.diagnostics["noise_scale"]
    assert fitted.shape == (REPLICATES,)
    # The peak is located on a grid of ~1/64 of a tempering step: allow 1 % for it.
    se = assert_unbiased(fitted, best, bias_allowance=0.01 * best)
    assert se < 0.01 * best
    # At the fitted scale: the closed-form posterior and evidence of that scale.
    mean, cov, log_evidence = linear_gaussian_posterior(p.generator, observed, p.mask, fitted)
    got_mean, got_cov = weighted_moments(out.latents, out.log_weights)
    assert_unbiased(got_mean - mean, torch.zeros(3))
    assert_unbiased(got_cov.diagonal(dim1=1, dim2=2), cov.diagonal(dim1=1, dim2=2).mean(0),
                    bias_allowance=0.05 * cov.diagonal(dim1=1, dim2=2).mean(0))
    assert_unbiased(out.log_evidence - log_evidence, torch.zeros(()), bias_allowance=out.log_evidence.var())
    # The fitted scales give up less than 0.01 nats of the best scale's evidence.
    top = linear_gaussian_posterior(p.generator, p.observed, p.mask, best)[2]
    assert (top - log_evidence).abs().max() < 0.01


def test_empirical_bayes_stops_early_and_keeps_the_budget():
    p = make_linear_gaussian(latent_dim=3, x_dim=40, batch=2, sigma=0.3, seed=2)
    out = cg.complete(p.generator, p.observed, p.mask, method=cg.SMC(final_moves=100), chains=64, leapfrog=5, noise_std="auto",
                      max_grad_evals=41)
    assert out.grad_evals <= 41
    beta = out.diagnostics["likelihood_weight"]
    assert ((beta > 0) & (beta < 1)).all()  # stopped at the evidence peak, far above the floor
    torch.testing.assert_close(out.diagnostics["noise_scale"], cg.api.make_posterior(
        p.generator, p.observed, p.mask, noise_std="auto").noise.scale * beta.pow(-0.5))


def test_empirical_bayes_refuses_a_discriminator_term():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="discriminator"):
        cg.complete(p.generator, p.observed, p.mask, method="smc", noise_std="auto", chains=4,
                    discriminator=lambda x: x.sum(1))
