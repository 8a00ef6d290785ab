import pytest
import torch

import cogenerate as cg
from cogenerate.api import make_posterior
from tests.conftest import assert_unbiased, make_linear_gaussian, weighted_moments


def test_smc_from_many_candidates_recovers_the_posterior():
    p = make_linear_gaussian()
    observed = p.observed[:1].expand(10, -1)
    out = cg.complete(p.generator, observed, p.mask, method=cg.SMC(candidates=4000, final_moves=2), chains=400, leapfrog=5, noise_std=p.sigma)
    _assert_posterior_and_evidence(out, p)


def _assert_posterior_and_evidence(out: cg.Completion, p) -> None:
    """Replicates of observation 0: the weighted particles' mean and variances and the evidence
    estimate are unbiased for the closed form."""
    mean, cov = weighted_moments(out.latents, out.log_weights)
    assert_unbiased(mean, p.mean[0])
    assert_unbiased(cov.diagonal(dim1=1, dim2=2), p.cov.diagonal())
    assert_unbiased(out.log_evidence, p.log_evidence[0], bias_allowance=out.log_evidence.var())


def test_smc_polish_ends_at_the_posterior_mode_within_budget():
    # For a linear-Gaussian model the posterior mode is the posterior mean.
    p = make_linear_gaussian()
    out = cg.complete(p.generator, p.observed, p.mask, method=cg.SMCPolish(lr=0.02, polish_fraction=0.8), chains=4, noise_std=p.sigma,
                      max_grad_evals=600)
    assert out.grad_evals <= 600
    polished = out.diagnostics["polished_latents"]
    torch.testing.assert_close(polished, p.mean.unsqueeze(1).expand(-1, 4, -1), atol=2e-3, rtol=0)
    # The estimate is the polished best fit; the samples stay SMC's posterior particles.
    best = p.generator(p.mean).detach()
    o = p.mask.bool()
    torch.testing.assert_close(out.estimate[:, ~o], best[:, ~o], atol=5e-3, rtol=0)
    assert "polish" in out.diagnostics and torch.isfinite(out.log_evidence).all()


def test_restart_chains_polish_the_best_candidate_draws():
    """restart_fraction=1: every polished chain starts from one of the C best of SMC's candidate
    draws (gd-best's starts, no new draws), descending the same objective as the SMC starts."""
    from cogenerate.api import make_posterior
    from cogenerate.baselines.gradient import gradient_descent

    p = make_linear_gaussian()
    settings = cg.SMCPolish(smc=cg.SMC(leapfrog=2, candidates=40), restart_fraction=1.0, polish_fraction=0.5)
    out = cg.complete(p.generator, p.observed, p.mask, method=settings, chains=4, noise_std=p.sigma, max_grad_evals=40)
    info = out.info
    best = info.smc.best_candidates
    assert best.shape == (2, 4, 3)
    posterior = make_posterior(p.generator, p.observed, p.mask, noise_std=p.sigma)
    again = gradient_descent(posterior, chains=4, rng=torch.Generator().manual_seed(0), init=best,
                             steps=info.polish.steps, lr=settings.lr, prior_weight=settings.prior_weight,
                             likelihood_weight=info.smc.likelihood_weight)
    torch.testing.assert_close(info.polished_latents, again.latents)
    half = cg.complete(p.generator, p.observed, p.mask, method=settings.__class__(
        smc=settings.smc, restart_fraction=0.5), chains=4, noise_std=p.sigma, max_grad_evals=40)
    assert half.info.polished_latents.shape == (2, 4, 3)


def test_smc_polish_samples_are_the_posterior_with_rejuvenation_and_shrunk_mass():
    """The default's samples (SMC with moves to the end of its share, mass shrunk toward the
    prior's) are still the posterior's: exact mean and covariance of a linear-Gaussian model."""
    p = make_linear_gaussian()
    observed = p.observed[:1].expand(10, -1)
    out = cg.complete(p.generator, observed, p.mask, method="smc-polish", chains=400, noise_std=p.sigma, max_grad_evals=200)
    _assert_posterior_and_evidence(out, p)


def test_rejuvenate_spends_the_smc_share_on_moves_and_the_rest_on_the_polish():
    p = make_linear_gaussian()
    smc = cg.SMC(leapfrog=5, candidates=100)

    def polish_steps(rejuvenate):
        settings = cg.SMCPolish(smc=smc, rejuvenate=rejuvenate)
        out = cg.complete(p.generator, p.observed, p.mask, method=settings, chains=8, noise_std=p.sigma, max_grad_evals=200)
        assert out.grad_evals <= 200
        return out.info.polish.steps

    assert 100 <= polish_steps(True) < 100 + 5  # SMC spent its share, to within one move
    assert polish_steps(False) > 100 + 5  # β = 1 came early; the rest went to the polish


def test_without_a_budget_rejuvenate_steps_go_to_moves_and_the_samples_stay_the_posterior():
    """No budget: SMC tempers to its end, then ``rejuvenate_steps`` gradients of moves of
    ``rejuvenate_leapfrog`` steps (rounded up to whole moves), then ``polish_steps``; the moved
    particles are still the posterior's."""
    p = make_linear_gaussian()
    smc = cg.SMC(leapfrog=5, candidates=100)

    def run(**settings):
        return cg.complete(p.generator, p.observed, p.mask, method=cg.SMCPolish(smc=smc, polish_steps=7, **settings),
                           chains=8, noise_std=p.sigma)

    plain, moved = run(rejuvenate=False), run(rejuvenate_steps=23, rejuvenate_leapfrog=5)
    assert plain.info.polish.steps == moved.info.polish.steps == 7
    assert moved.grad_evals - plain.grad_evals == 25  # 23 gradients: five moves of 5 leapfrog steps
    assert run(rejuvenate_steps=23).grad_evals - plain.grad_evals == 40  # one move of the default's 40
    assert run(rejuvenate_steps=0).grad_evals == plain.grad_evals
    with pytest.raises(ValueError, match="rejuvenate_leapfrog"):
        cg.SMCPolish(rejuvenate_leapfrog=0)
    observed = p.observed[:1].expand(20, -1)  # 20 replicates: the test's standard errors are themselves estimates
    out = cg.complete(p.generator, observed, p.mask, method="smc-polish", chains=400, noise_std=p.sigma)
    assert out.grad_evals > cg.SMCPolish().rejuvenate_steps + cg.SMCPolish().polish_steps
    _assert_posterior_and_evidence(out, p)


def test_smc_polish_refit_reaches_the_exact_fit_of_an_in_range_target():
    """An observation the generator reproduces exactly (4 observed values, 3 latent dims), at a
    given σ = 0.5: the polish with ``refit_below`` ends on the exact fit, the polish at σ at the
    posterior mode, short of it."""
    p = make_linear_gaussian(x_dim=8)
    z_true = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = p.generator(z_true).detach()

    def polished(refit_below):
        settings = cg.SMCPolish(smc=cg.SMC(leapfrog=5, candidates=100), lr=0.05, refit_below=refit_below)
        out = cg.complete(p.generator, exact, p.mask, method=settings, chains=4, noise_std=0.5,
                          max_grad_evals=1000)
        assert out.grad_evals <= 1000
        return out.info.polished_latents

    assert (polished(0.0) - z_true.unsqueeze(1)).abs().amax(dim=(1, 2)).min() > 0.01
    torch.testing.assert_close(polished(1.0), z_true.unsqueeze(1).expand(-1, 4, -1), atol=2e-3, rtol=0)


def test_smc_polish_estimate_is_the_polished_mean_unless_a_fit_is_exact():
    """``estimate="mean"``: the equal-weight mean of the polished chains' completions, except
    where the best of them reproduces the observed part exactly, which is then the estimate."""
    p = make_linear_gaussian(x_dim=8)
    z_true = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = p.generator(z_true).detach()
    observed = torch.cat([exact[:1], p.observed[1:2]])  # row 0 in range, row 1 noisy
    hidden = ~p.mask.bool()

    def run(estimate, budget):
        settings = cg.SMCPolish(smc=cg.SMC(leapfrog=5, candidates=100), lr=0.05, refit_below=1.0, estimate=estimate)
        return cg.complete(p.generator, observed, p.mask, method=settings, chains=4, noise_std=0.5, max_grad_evals=budget)

    out, best = run("mean", 1000), run("best", 1000)
    assert out.diagnostics["exact_fit"].tolist() == [True, False]
    torch.testing.assert_close(out.estimate[0], best.estimate[0])  # the exact fit
    torch.testing.assert_close(out.estimate[0, hidden], exact[0, hidden], atol=2e-3, rtol=0)
    # A short polish, so that the chains still differ: the mean, not the best of them.
    out, best = run("mean", 40), run("best", 40)
    assert not out.diagnostics["exact_fit"][1]
    assert out.diagnostics["best_misfit"][1] > 0.1  # the noisy row: residual ≈ σ
    polished = p.generator(out.info.polished_latents).detach()  # (B, C, x)
    assert (polished[1] - polished[1, :1]).abs().amax() > 0.05
    torch.testing.assert_close(out.estimate[1, hidden], polished[1].mean(0)[hidden])
    assert (out.estimate[1] - best.estimate[1]).abs().amax() > 0.01
    with pytest.raises(ValueError, match="estimate must be"):
        cg.SMCPolish(estimate="median")


def test_no_fit_is_exact_where_z_has_as_many_dimensions_as_observed_values():
    """3 observed values, 3 latent dimensions: every observation has an exact fit, so reaching
    one says nothing, and the estimate stays the polished chains' mean."""
    p = make_linear_gaussian()  # x_dim 6, half observed
    z_true = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    settings = cg.SMCPolish(smc=cg.SMC(leapfrog=5, candidates=100), lr=0.05, prior_weight=0.0)
    out = cg.complete(p.generator, p.generator(z_true).detach(), p.mask, method=settings, chains=4, noise_std=0.5,
                      max_grad_evals=1000)
    assert (out.diagnostics["best_misfit"] < settings.exact_below).all()
    assert not out.diagnostics["exact_fit"].any()


@pytest.mark.parametrize("x_dim", [8, 6])
def test_the_mean_leaves_out_chains_that_fit_much_worse_than_the_best(x_dim):
    """The estimate averages the polished chains whose misfit is within ``mean_within`` times the
    best's (x_dim 8: 4 observed values, 3 latent dimensions), and every chain where z has as
    many dimensions as values are observed (x_dim 6), since there any chain may fit exactly."""
    p = make_linear_gaussian(x_dim=x_dim, batch=1)
    post = make_posterior(p.generator, p.observed, p.mask, noise_std=0.5)
    observed, hidden = p.mask.bool(), ~p.mask.bool()
    points = p.observed.unsqueeze(1).repeat(1, 3, 1)  # (1, 3, x_dim)
    for chain, (residual, fill) in enumerate([(0.1, 1.0), (0.15, 2.0), (0.5, 10.0)]):  # misfits 0.2, 0.3, 1.0 of σ
        points[0, chain, observed] += residual
        points[0, chain, hidden] = fill
    estimate, misfit, exact = cg.SMCPolish()._mean_or_exact(post, points, torch.ones(1, dtype=points.dtype))
    torch.testing.assert_close(misfit, torch.tensor([0.2], dtype=points.dtype))
    assert not exact.any()
    expected = 1.5 if x_dim == 8 else 13 / 3  # chains 0 and 1 (chain 2: 5 × the best's misfit); or all three
    torch.testing.assert_close(estimate[0, 0, hidden], torch.full((int(hidden.sum()),), expected, dtype=points.dtype))
    everything = cg.SMCPolish(mean_within=float("inf"))._mean_or_exact(post, points, torch.ones(1, dtype=points.dtype))[0]
    torch.testing.assert_close(everything[0, 0, hidden], torch.full_like(everything[0, 0, hidden], 13 / 3))
    with pytest.raises(ValueError, match="mean_within"):
        cg.SMCPolish(mean_within=0.5)
