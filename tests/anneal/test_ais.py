import pytest
import torch

import cogenerate as cg
from cogenerate.anneal.ais import ais, effective_sample_size, weight_increment
from tests.conftest import assert_unbiased, make_linear_gaussian, weighted_moments

REPLICATES = 10


def replicated(problem, replicates=REPLICATES):
    """The first observation repeated: each batch row is an independent replicate run."""
    return problem.observed[:1].expand(replicates, -1)


@pytest.mark.parametrize("schedule", ["sigmoid", "linear", "geometric"])
def test_ais_recovers_linear_gaussian_posterior_and_evidence(schedule):
    p = make_linear_gaussian()
    out = cg.complete(p.generator, replicated(p), p.mask, method=cg.AIS(schedule=schedule, step_size=0.1), chains=400, steps=100, leapfrog=5,
                      noise_std=p.sigma)
    mean, cov = weighted_moments(out.latents, out.log_weights)
    se = assert_unbiased(mean, p.mean[0])
    assert (se < 0.02).all()  # the check above is tight, not vacuous
    assert_unbiased(cov.diagonal(dim1=1, dim2=2), p.cov.diagonal())
    se_z = out.log_evidence.std() / REPLICATES**0.5
    assert_unbiased(out.log_evidence, p.log_evidence[0], bias_allowance=out.log_evidence.var())
    assert se_z < 0.05
    assert out.grad_evals == 1 + 100 * 5


def test_ais_same_seed_same_result_and_budget_is_honoured():
    p = make_linear_gaussian()
    kwargs = dict(method="ais", chains=8, leapfrog=5, noise_std=p.sigma, max_grad_evals=53, seed=3)
    a = cg.complete(p.generator, p.observed, p.mask, **kwargs)
    b = cg.complete(p.generator, p.observed, p.mask, **kwargs)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.log_weights, b.log_weights)
    assert a.grad_evals == 51 and a.diagnostics["steps"] == 10
    c = cg.complete(p.generator, p.observed, p.mask, **{**kwargs, "seed": 4})
    assert not torch.equal(a.latents, c.latents)


def test_ais_budget_too_small_is_a_clear_error():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="too small for one AIS step"):
        cg.complete(p.generator, p.observed, p.mask, method="ais", leapfrog=10, max_grad_evals=5)


def test_ais_dual_averaging_runs_and_targets_acceptance():
    p = make_linear_gaussian()
    out = cg.complete(p.generator, p.observed, p.mask, method=cg.AIS(adapt="dual-averaging"), chains=64, steps=200, leapfrog=5,
                      noise_std=p.sigma)
    assert abs(out.diagnostics["acceptance_rate"][-50:].mean().item() - 0.65) < 0.1


def test_weight_increment_ignores_dead_particles_at_zero_step():
    inc = weight_increment(torch.tensor([0.0, 0.5]), torch.tensor([[-torch.inf, 1.0], [-torch.inf, 2.0]]))
    assert inc[0].tolist() == [0.0, 0.0]
    assert inc[1].tolist() == [-torch.inf, 1.0]


def test_effective_sample_size_extremes():
    ess = effective_sample_size(torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, -torch.inf, -torch.inf, -torch.inf]]))
    torch.testing.assert_close(ess, torch.tensor([4.0, 1.0]))


def test_ais_function_direct_call_reports_diagnostics(linear_gaussian):
    from cogenerate.api import make_posterior

    p = linear_gaussian
    post = make_posterior(p.generator, p.observed, p.mask, noise_std=p.sigma)
    out = ais(post, chains=4, rng=torch.Generator().manual_seed(0), steps=7, leapfrog=2)
    d = out.info.diagnostics()
    assert d["beta"].shape == (8,) and d["acceptance_rate"].shape == (7,) and d["ess"].shape == (7,)
