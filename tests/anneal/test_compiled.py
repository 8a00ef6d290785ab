"""The compiled HMC move and SMC step (``compile=True``) and the bf16 generator (``precision="bf16"``).

The tests marked ``compiled`` run ``torch.compile``: each new graph takes 5–30 s on two CPU
cores, so they share one problem shape (float64 and float32, 10 observations × 400 chains,
5 leapfrog steps) and check the known answers of the linear-Gaussian problem. Deselect them
with ``-m "not compiled"``.
"""

import copy

import pytest
import torch
import torch._dynamo.utils

import cogenerate as cg
from cogenerate.anneal.compiled import AUTO_MIN_GRAD_EVALS, make_mover, make_starter, resolve_compile, with_precision
from cogenerate.anneal.tempering import retemper
from cogenerate.api import make_posterior
from tests.conftest import assert_unbiased, make_linear_gaussian, weighted_moments

REPLICATES = 10
CHAINS = 400
LEAPFROG = 5


def replicated(problem):
    """The first observation repeated: each batch row is an independent replicate run."""
    return problem.observed[:1].expand(REPLICATES, -1)


def check_posterior_and_evidence(p, out, *, allowance: float = 0.0):
    mean, cov = weighted_moments(out.latents.double(), out.log_weights.double())
    se = assert_unbiased(mean, p.mean[0], bias_allowance=allowance)
    assert (se < 0.02).all()  # the check above is tight, not vacuous
    assert_unbiased(cov.diagonal(dim1=1, dim2=2), p.cov.diagonal(), bias_allowance=allowance)
    log_evidence = out.log_evidence.double()
    assert_unbiased(log_evidence, p.log_evidence[0], bias_allowance=log_evidence.var() + allowance)
    assert (out.diagnostics["beta"][:, -1] == 1).all()


@pytest.mark.compiled
def test_compiled_smc_recovers_linear_gaussian_posterior_and_evidence():
    p = make_linear_gaussian()
    kwargs = dict(chains=CHAINS, leapfrog=LEAPFROG, noise_std=p.sigma, seed=0)
    out = cg.complete(p.generator, replicated(p), p.mask, method=cg.SMC(final_moves=2, compile=True), **kwargs)
    check_posterior_and_evidence(p, out)
    # Same draws in the same order as the eager run: the same run up to float64 rounding.
    eager = cg.complete(p.generator, replicated(p), p.mask, method=cg.SMC(final_moves=2, compile=False), **kwargs)
    torch.testing.assert_close(out.latents, eager.latents, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.log_evidence, eager.log_evidence, atol=1e-9, rtol=0)


@pytest.mark.compiled
def test_compiled_start_and_move_are_the_eager_ones_and_their_graphs_are_reused():
    p = make_linear_gaussian(seed=2)  # a new generator module and new observations: no new graph
    p.generator.requires_grad_(False)  # as complete() hands it to the sampler (graphs are specialised on this)
    posterior = make_posterior(p.generator, replicated(p) + 0.1, p.mask, noise_std=0.3)
    rng = torch.Generator().manual_seed(0)
    z = posterior.sample_prior(rng, (REPLICATES, CHAINS))
    beta = torch.linspace(0.1, 1.0, REPLICATES, dtype=torch.float64)
    state = make_starter(posterior, compile=False)(z, beta)
    started = make_starter(posterior, compile=True)(z, beta)  # the start's own graph
    for a, b in zip(torch.utils._pytree.tree_leaves(started), torch.utils._pytree.tree_leaves(state), strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    step = torch.full((REPLICATES, CHAINS), 0.3, dtype=torch.float64)
    inverse_mass = torch.rand(REPLICATES, 1, 3, generator=rng, dtype=torch.float64) + 0.5
    moved = {}
    graphs = []
    for compile in (True, False):
        move = make_mover(posterior, num_leapfrog=LEAPFROG, compile=compile)
        moved[compile] = move(torch.Generator().manual_seed(1), state, beta, step_size=step,
                              inverse_mass=inverse_mass)
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    (compiled, info_c), (eager, info_e) = moved[True], moved[False]
    assert torch.equal(info_c.is_accepted, info_e.is_accepted)
    assert 0.2 < info_e.acceptance_prob.mean() < 0.99  # both branches of the accept are exercised
    for a, b in zip(torch.utils._pytree.tree_leaves(compiled), torch.utils._pytree.tree_leaves(eager), strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(info_c.energy_change, info_e.energy_change, atol=1e-10, rtol=1e-10)
    # Different values, generator instance and noise scale, same shapes: the graphs of the test above
    # (or the two compiled here, when run alone) serve. An empirical-Bayes run adds one, its
    # reweighing with the evidence correction; a second one, on other data (another noise floor), none.
    kwargs = dict(method=cg.SMC(compile=True), chains=CHAINS, leapfrog=LEAPFROG, noise_std="auto")
    cg.complete(p.generator, replicated(p), p.mask, **kwargs)
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    cg.complete(make_linear_gaussian(seed=3).generator, replicated(p) * 2, p.mask, **kwargs)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == before
    assert retemper(state, beta).log_density.shape == (REPLICATES, CHAINS)


@pytest.mark.compiled
def test_compiled_bf16_generator_recovers_the_known_answers():
    # bf16 autocast acts on float32 generators only; the likelihood, energies and accept stay in float32.
    p = make_linear_gaussian()
    generator = copy.deepcopy(p.generator).float()
    out = cg.complete(generator, replicated(p).float(), p.mask.float(),
                      method=cg.SMC(final_moves=2, compile=True, precision="bf16"), chains=CHAINS, leapfrog=LEAPFROG,
                      noise_std=p.sigma)
    assert out.latents.dtype == torch.float32 and out.log_evidence.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: G(z) is off by ~0.4 %, a shift of the posterior well under 0.02.
    check_posterior_and_evidence(p, out, allowance=0.02)


def test_bf16_generator_runs_in_bf16_and_returns_the_inputs_dtype():
    p = make_linear_gaussian()
    generator = copy.deepcopy(p.generator).float()
    full = make_posterior(generator, p.observed.float(), p.mask.float(), noise_std=0.5)
    z = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    log_lik, grad, sample = with_precision(full, "bf16").log_likelihood_and_grad(z)
    assert log_lik.dtype == grad.dtype == sample.dtype == torch.float32
    error = (sample - full.generate(z)).abs().max()
    assert 0 < error < 0.05  # the matrix product ran in bf16 (8 bits of mantissa), not in float32
    out = cg.complete(generator, replicated(p).float(), p.mask.float(), method=cg.SMC(final_moves=2, precision="bf16"),
                      chains=CHAINS, leapfrog=LEAPFROG, noise_std=p.sigma)
    check_posterior_and_evidence(p, out, allowance=0.02)


def test_compile_auto_compiles_long_runs_only_and_settings_are_checked():
    p = make_linear_gaussian()
    posterior = make_posterior(p.generator, p.observed, p.mask, noise_std=0.5)
    assert resolve_compile("auto", posterior, planned_grad_evals=AUTO_MIN_GRAD_EVALS - 1) is False
    assert resolve_compile("auto", posterior, planned_grad_evals=AUTO_MIN_GRAD_EVALS) is True
    assert resolve_compile(True, posterior, planned_grad_evals=1) is True
    capped = make_posterior(p.generator, p.observed, p.mask, noise_std=0.5, max_batch=4)
    assert resolve_compile("auto", capped, planned_grad_evals=AUTO_MIN_GRAD_EVALS) is False
    assert cg.SMC().compile == "auto" and cg.AIS().compile == "auto"
    with pytest.raises(ValueError, match="compile"):
        cg.SMC(compile="yes")
    with pytest.raises(ValueError, match="precision"):
        cg.AIS(precision="fp8")
    with pytest.raises(ValueError, match="max_batch"):
        cg.complete(p.generator, p.observed, p.mask, method=cg.SMC(compile=True), chains=8, max_batch=4,
                    noise_std=0.5)


def _doubled(x):
    return 2 * x


@pytest.mark.compiled
def test_graphs_past_dynamos_limit_compile_up_to_ours_then_run_eagerly(monkeypatch):
    from cogenerate.anneal import compiled

    monkeypatch.setattr(compiled, "GRAPH_LIMIT", 2)
    with torch._dynamo.config.patch(recompile_limit=1):
        outs = [compiled._run_compiled(_doubled, torch.ones(n)) for n in (1, 2, 3, 3)]
    assert all(torch.equal(out, torch.full((n,), 2.0)) for out, n in zip(outs, (1, 2, 3, 3)))
    # The first shape within dynamo's limit, the second past it but within ours, the third eager.
    assert len(compiled._cache_entries(_doubled.__code__)) == 2
