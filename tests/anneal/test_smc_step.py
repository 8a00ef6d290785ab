"""The SMC tempering step as pure functions: what the compiled step relies on, checked eagerly."""

import math

import torch

from cogenerate.anneal.smc import systematic_resample
from cogenerate.anneal.smc_step import (
    JITTER,
    MoveSettings,
    resample_and_move,
    reweigh,
    step_draws,
    systematic_ancestors,
)
from cogenerate.anneal.tempering import evaluator, start
from cogenerate.api import make_posterior
from cogenerate.mcmc.adapt import particle_tuning_init
from tests.conftest import make_linear_gaussian

B, C, D = 3, 64, 3


def _chains(seed: int = 0):
    p = make_linear_gaussian(batch=B)
    posterior = make_posterior(p.generator, p.observed, p.mask, noise_std=p.sigma)
    rng = torch.Generator().manual_seed(seed)
    z = posterior.sample_prior(rng, (B, C))
    evaluate = evaluator(posterior.log_prior_and_grad, posterior.log_likelihood_and_grad)
    beta = torch.tensor([0.0, 0.2, 0.6], dtype=torch.float64)
    return evaluate, start(z, evaluate, beta), beta, rng


SETTINGS = MoveSettings(num_leapfrog=3, adapt_mass=True, mass_shrinkage=2.0, prior_variance=1.0,
                        target_acceptance=0.65, divergence_threshold=1000.0)


def test_reweigh_keeps_the_target_ess_and_a_forced_step_reaches_the_ceiling():
    _, state, beta, _ = _chains()
    log_lik = state.aux.log_likelihood
    log_w = torch.full((B, C), -math.log(C), dtype=torch.float64)
    ceiling = torch.ones(B, dtype=torch.float64)
    log_z = torch.zeros(B, dtype=torch.float64)
    step = reweigh(log_w, log_lik, beta, ceiling, log_z, target_ess=0.5, resample_threshold=0.9, correction=None)
    assert (step.beta > beta).all() and (step.beta <= 1).all()
    # From uniform weights the conditional ESS is the ESS: kept at (about) the target, so every row resamples.
    torch.testing.assert_close(step.ess / C, torch.full((B,), 0.5, dtype=torch.float64), atol=0.02, rtol=0)
    assert step.resample.all()
    expected = torch.logsumexp(log_w + (step.beta - beta).unsqueeze(1) * log_lik, dim=1)
    torch.testing.assert_close(step.log_z, expected)
    torch.testing.assert_close(step.log_weights.exp().sum(1), torch.ones(B, dtype=torch.float64))
    forced = reweigh(log_w, log_lik, beta, ceiling, log_z, target_ess=0.5, resample_threshold=0.0, correction=None,
                     forced=True)
    assert (forced.beta == 1).all() and not forced.resample.any()


def test_systematic_ancestors_take_the_offset_the_sampler_draws():
    logits = torch.randn(B, C, generator=torch.Generator().manual_seed(3))
    drawn = systematic_resample(torch.Generator().manual_seed(4), logits)
    offset = torch.rand((B, 1), generator=torch.Generator().manual_seed(4))
    assert torch.equal(drawn, systematic_ancestors(logits, offset))


def test_step_draws_come_in_the_eager_steps_order():
    position = torch.zeros(B, C, D, dtype=torch.float64)
    draws = step_draws(torch.Generator().manual_seed(7), position, resample=True, moves=2)
    rng = torch.Generator().manual_seed(7)
    assert torch.equal(draws.resample, torch.rand((B, 1), generator=rng, dtype=torch.float64))
    for m in range(2):
        jitter = torch.empty((B, C), dtype=torch.float64).uniform_(1 - JITTER, 1 + JITTER, generator=rng)
        assert torch.equal(draws.jitter[m], jitter)
        assert torch.equal(draws.noise[m], torch.randn((B, C, D), generator=rng, dtype=torch.float64))
        assert torch.equal(draws.uniform[m], torch.rand((B, C), generator=rng, dtype=torch.float64))
    # Nobody resamples: no offset is drawn; the compiled step gets zeros in its place.
    quiet = step_draws(torch.Generator().manual_seed(7), position, resample=False, moves=1, placeholder=True)
    assert torch.equal(quiet.resample, torch.zeros(B, 1, dtype=torch.float64))
    assert torch.equal(quiet.noise[0], step_draws(torch.Generator().manual_seed(7), position, resample=False,
                                                  moves=1).noise[0])


def _leaves(moved):
    return torch.utils._pytree.tree_leaves(moved)


def test_resampling_only_the_flagged_rows_and_the_placeholder_changes_nothing():
    evaluate, state, beta, rng = _chains()
    log_w = torch.log_softmax(torch.randn(B, C, generator=rng, dtype=torch.float64), -1)
    tuning = particle_tuning_init(B, D, like=log_w)
    draws = step_draws(torch.Generator().manual_seed(1), state.position, resample=True, moves=2)
    flagged = torch.tensor([True, False, True])
    moved = resample_and_move(evaluate, state, log_w, flagged, draws, tuning, beta, SETTINGS)
    torch.testing.assert_close(moved.log_weights[0], torch.full((C,), -math.log(C), dtype=torch.float64))
    assert torch.equal(moved.log_weights[1], log_w[1])
    assert moved.acceptance.shape == (B, C) and 0 < moved.acceptance.mean() < 1
    # An all-False flag with the placeholder offset (the compiled step's inputs) is no resampling at all.
    plain = step_draws(torch.Generator().manual_seed(1), state.position, resample=False, moves=2)
    placeholder = plain._replace(resample=torch.zeros(B, 1, dtype=torch.float64))
    none = resample_and_move(evaluate, state, log_w, None, plain, tuning, beta, SETTINGS)
    kept = resample_and_move(evaluate, state, log_w, torch.zeros(B, dtype=torch.bool), placeholder, tuning, beta,
                             SETTINGS)
    for a, b in zip(_leaves(none), _leaves(kept), strict=True):
        assert torch.equal(a, b)


def test_zero_moves_resample_and_retune_but_keep_the_step_size():
    evaluate, state, beta, _ = _chains()
    log_w = torch.full((B, C), -math.log(C), dtype=torch.float64)
    tuning = particle_tuning_init(B, D, like=log_w)
    draws = step_draws(torch.Generator().manual_seed(2), state.position, resample=True, moves=0)
    moved = resample_and_move(evaluate, state, log_w, torch.ones(B, dtype=torch.bool), draws, tuning, beta, SETTINGS)
    assert torch.equal(moved.tuning.step_size, tuning.step_size)
    assert not torch.equal(moved.tuning.inverse_mass, tuning.inverse_mass)  # the mass follows the particles
    assert int(moved.divergences) == 0
