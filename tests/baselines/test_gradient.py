import torch

import cogenerate as cg
from cogenerate.api import make_posterior
from cogenerate.baselines.gradient import best_of_prior, gradient_descent, misfit_scale
from tests.conftest import linear_gaussian_posterior, make_linear_gaussian


def test_gd_finds_the_least_squares_latent():
    # With as many observed entries as latent dims, Eq. (1) has the exact minimiser A_O⁻¹(x_O − b_O).
    p = make_linear_gaussian(latent_dim=3, x_dim=6)
    out = cg.complete(p.generator, p.observed, p.mask, method=cg.GD(lr=0.05), chains=4, steps=3000, noise_std=p.sigma)
    o = p.mask.bool()
    a_o, b_o = p.generator.weight.detach()[o], p.generator.bias.detach()[o]
    expected = torch.linalg.solve(a_o, (p.observed[:, o] - b_o).T).T
    torch.testing.assert_close(out.latents, expected.unsqueeze(1).expand(-1, 4, -1), atol=1e-3, rtol=0)
    assert out.grad_evals == 3000
    assert torch.isnan(out.log_evidence).all()
    torch.testing.assert_close(out.weights, torch.full((2, 4), 0.25, dtype=torch.float64))


def test_gd_with_prior_weight_finds_the_posterior_mode():
    p = make_linear_gaussian()
    out = cg.complete(p.generator, p.observed, p.mask, method=cg.GD(lr=0.05, prior_weight=1.0), chains=2, steps=3000, noise_std=p.sigma)
    torch.testing.assert_close(out.latents, p.mean.unsqueeze(1).expand(-1, 2, -1), atol=1e-3, rtol=0)


def test_best_of_prior_keeps_the_best_candidates():
    p = make_linear_gaussian()
    post = make_posterior(p.generator, p.observed, p.mask, noise_std=p.sigma)
    rng = torch.Generator().manual_seed(0)
    z = best_of_prior(post, keep=5, candidates=1000, rng=rng, chunk=64)
    assert z.shape == (2, 5, 3)
    kept = post.log_likelihood_no_grad(z)[0]
    random = post.log_likelihood_no_grad(torch.randn(2, 1000, 3, generator=rng, dtype=torch.float64))[0]
    # The 5 kept of 1000 beat the 99th percentile of fresh draws.
    assert (kept.min(1).values > random.quantile(0.99, dim=1)).all()


def test_gd_best_honours_the_budget_and_reports_forward_evals():
    p = make_linear_gaussian()
    out = cg.complete(p.generator, p.observed, p.mask, method=cg.GDBest(candidates=200), chains=3, max_grad_evals=40,
                      noise_std=p.sigma)
    assert out.grad_evals == 40
    assert out.diagnostics["forward_evals"] == 200


def test_a_likelihood_weight_finds_the_mode_at_the_widened_noise_std():
    # Weighting the likelihood by w is the posterior at σ / √w, one weight per observation.
    p = make_linear_gaussian()
    weight = torch.tensor([0.25, 4.0], dtype=torch.float64)
    post = make_posterior(p.generator, p.observed, p.mask, noise_std=p.sigma)
    out = gradient_descent(post, chains=2, rng=torch.Generator().manual_seed(0), steps=3000, lr=0.05,
                           prior_weight=1.0, likelihood_weight=weight)
    mean = linear_gaussian_posterior(p.generator, p.observed, p.mask, p.sigma / weight.sqrt())[0]
    torch.testing.assert_close(out.latents, mean.unsqueeze(1).expand(-1, 2, -1), atol=1e-3, rtol=0)
    assert not torch.allclose(mean[0], p.mean[0], atol=0.01)  # the weight did change the answer


def test_refit_below_descends_an_exact_target_to_the_exact_fit():
    # An observation the generator reproduces exactly (4 observed entries, 3 latent dims): at a
    # fixed σ the prior term stops the descent at the posterior mode, off z*; once the residual
    # implies a scale below r·σ the prior term fades and the descent reaches z*.
    p = make_linear_gaussian(x_dim=8)
    z_true = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = p.generator(z_true).detach()
    post = make_posterior(p.generator, exact, p.mask, noise_std=0.5)
    runs = {r: gradient_descent(post, chains=2, rng=torch.Generator().manual_seed(0), steps=3000, lr=0.05,
                                prior_weight=1.0, refit_below=r) for r in (0.0, 1.0)}
    mode = linear_gaussian_posterior(p.generator, exact, p.mask, 0.5)[0]
    torch.testing.assert_close(runs[0.0].latents, mode.unsqueeze(1).expand(-1, 2, -1), atol=1e-3, rtol=0)
    assert (mode - z_true).abs().max() > 0.05  # the prior did pull the mode off z*
    torch.testing.assert_close(runs[1.0].latents, z_true.unsqueeze(1).expand(-1, 2, -1), atol=1e-3, rtol=0)


def test_refit_below_leaves_a_noisy_fit_at_the_posterior_mode():
    # 6 noisy observed entries, 2 latent dims: the residual at the mode implies a scale near σ,
    # above 0.3·σ, so the join is never reached and the answer is the mode at σ.
    p = make_linear_gaussian(latent_dim=2, x_dim=12, seed=3)
    post = make_posterior(p.generator, p.observed, p.mask, noise_std=p.sigma)
    out = gradient_descent(post, chains=2, rng=torch.Generator().manual_seed(0), steps=3000, lr=0.05,
                           prior_weight=1.0, refit_below=0.3)
    torch.testing.assert_close(out.latents, p.mean.unsqueeze(1).expand(-1, 2, -1), atol=1e-3, rtol=0)
    residual = (p.generator(p.mean).detach() - p.observed)[:, p.mask.bool()]
    assert (residual.pow(2).mean(1).sqrt() > 0.3 * p.sigma).all()  # the join was out of reach


def test_refit_below_is_off_where_every_observation_has_an_exact_fit():
    # 3 observed values, 3 latent dims: a noisy observation is fitted exactly by some z, so the
    # refit would chase the noise; it is off and the answer stays the posterior mode.
    p = make_linear_gaussian()
    post = make_posterior(p.generator, p.observed, p.mask, noise_std=p.sigma)
    out = gradient_descent(post, chains=2, rng=torch.Generator().manual_seed(0), steps=3000, lr=0.05,
                           prior_weight=1.0, refit_below=1.0)
    torch.testing.assert_close(out.latents, p.mean.unsqueeze(1).expand(-1, 2, -1), atol=1e-3, rtol=0)


def test_misfit_scale_is_the_rms_residual_over_sigma_for_gaussian_noise():
    p = make_linear_gaussian(x_dim=8)
    posterior = make_posterior(p.generator, p.observed, p.mask, noise_std=0.5)
    x = p.observed.unsqueeze(1) + torch.tensor([0.0, 0.1], dtype=torch.float64).reshape(1, 2, 1)
    ratio = misfit_scale(posterior, posterior.log_likelihood_of_samples(x))
    torch.testing.assert_close(ratio, torch.tensor([[0.0, 0.2], [0.0, 0.2]], dtype=torch.float64))
    # tempered by β = 0.25 the scale doubles, so the same residual is half as large a share of it
    torch.testing.assert_close(misfit_scale(posterior, posterior.log_likelihood_of_samples(x), torch.full((2,), 0.25, dtype=torch.float64)),
                               torch.tensor([[0.0, 0.1], [0.0, 0.1]], dtype=torch.float64))
