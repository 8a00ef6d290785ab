"""complete()'s options beyond the method: models with critics, priors, conditions, callbacks,
batch caps, warnings, and bad input that must fail early with one line (or just work)."""

import dataclasses
import math

import pytest
import torch
from torch import distributions, nn

import cogenerate as cg
from cogenerate.api import model_noise_std
from cogenerate.methods import method_from_options
from cogenerate.models.base import GenerativeModel
from cogenerate.operators import Downsample, Mask
from tests.conftest import assert_unbiased, make_linear_gaussian, weighted_moments


class Exploding(nn.Module):
    """A generator that must never be called."""

    latent_dim = 3

    def forward(self, z):
        raise AssertionError("the generator was called")


def test_bad_settings_fail_on_construction_before_any_generator_call():
    with pytest.raises(ValueError, match="target_ess must lie in"):
        cg.SMC(target_ess=1.5)
    with pytest.raises(ValueError, match="unknown schedule"):
        cg.AIS(schedule="cosine")
    with pytest.raises(ValueError, match="lr must be a positive"):
        cg.GDBest(lr=0)
    with pytest.raises(TypeError, match="temperature"):
        cg.SMC(temperature=2)
    for bad in (dict(chains=0), dict(max_grad_evals=0), dict(max_batch=0), dict(method="magic"),
                dict(noise_std=-1.0), dict(steps=0)):
        with pytest.raises(ValueError):
            cg.complete(Exploding(), torch.zeros(1, 3), torch.ones(3), **bad)


def test_steps_and_leapfrog_override_the_settings_and_options_map_to_them():
    s = cg.SMCPolish().with_overrides(steps=7, leapfrog=3)
    assert s.polish_steps == 7 and s.smc.leapfrog == 3 and s.smc.candidates == 1000
    assert cg.AIS().with_overrides(steps=9).steps == 9
    polish = method_from_options("smc-polish", {"candidates": 10, "lr": 0.1})
    assert polish.smc.candidates == 10 and polish.lr == 0.1
    with pytest.raises(ValueError, match="no setting"):
        method_from_options("gd", {"target_ess": 0.3})


def test_callback_sees_every_step_and_false_cancels_with_a_partial_result():
    p = make_linear_gaussian()
    seen = []
    full = cg.complete(p.generator, p.observed, p.mask, method="ais", steps=20, leapfrog=2, chains=4,
                       callback=lambda step: seen.append(step.fraction))
    assert len(seen) == 20 and seen[-1] == 1.0 and not full.diagnostics["cancelled"]

    def stop_after_three(step):
        assert step.latents.shape == (2, 4, 3) and step.log_weights.shape == (2, 4)
        stop_after_three.calls += 1
        return stop_after_three.calls < 3

    stop_after_three.calls = 0
    for method in ("ais", "smc", "gd", "smc-polish"):
        stop_after_three.calls = 0
        out = cg.complete(p.generator, p.observed, p.mask, method=method, steps=20, leapfrog=2, chains=4,
                          max_grad_evals=60, noise_std=p.sigma, callback=stop_after_three)
        assert stop_after_three.calls == 3
        assert out.diagnostics["cancelled"] and out.samples.shape == (2, 4, 6)
        assert "stopped by the callback" in " ".join(out.diagnostics["warnings"])


class CountingGenerator(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.latent_dim, self.largest = inner, inner.latent_dim, 0

    def forward(self, z):
        self.largest = max(self.largest, z.shape[0])
        return self.inner(z)


@pytest.mark.parametrize("method", ["smc-polish", "ais", "gd-best"])
def test_max_batch_caps_generator_calls_and_keeps_the_result(method):
    p = make_linear_gaussian()
    settings = {"smc-polish": cg.SMCPolish(smc=cg.SMC(leapfrog=5, candidates=60)), "ais": "ais",
                "gd-best": cg.GDBest(candidates=60)}[method]
    kwargs = dict(method=settings, chains=8, max_grad_evals=20, steps=5, noise_std=p.sigma, seed=2)
    whole = cg.complete(p.generator, p.observed, p.mask, **kwargs)
    counting = CountingGenerator(p.generator)
    chunked = cg.complete(counting, p.observed, p.mask, max_batch=6, **kwargs)
    assert counting.largest <= 6
    torch.testing.assert_close(chunked.samples, whole.samples)
    torch.testing.assert_close(chunked.log_weights, whole.log_weights)


def test_uniform_prior_gives_the_truncated_normal_posterior_and_its_evidence():
    """G(z) = z in 1-D, z ~ U(-1, 1), x = 0.8 observed with σ = 0.5: the posterior is N(0.8, σ²)
    truncated to [-1, 1], and p(x) = ½ (Φ((1 − x)/σ) − Φ((−1 − x)/σ))."""
    x, sigma, replicates = 0.8, 0.5, 8
    prior = distributions.Independent(
        distributions.Uniform(torch.full((1,), -1.0, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
                              validate_args=False), 1)
    observed = torch.full((replicates, 1), x, dtype=torch.float64)
    out = cg.complete(lambda z: z, observed, torch.ones(1), latent_dim=1, prior=prior, method=cg.SMC(final_moves=3),
                      chains=1000, noise_std=sigma)
    assert (out.latents.abs() <= 1).all()
    normal = distributions.Normal(torch.tensor(x, dtype=torch.float64), sigma)
    grid = torch.linspace(-1, 1, 20001, dtype=torch.float64)
    density = normal.log_prob(grid).exp()
    true_mean = (grid * density).sum() / density.sum()
    mean, _ = weighted_moments(out.latents, out.log_weights)
    assert_unbiased(mean[:, 0], true_mean)
    phi = distributions.Normal(0.0, 1.0).cdf
    true_log_z = math.log(0.5 * float(phi(torch.tensor((1 - x) / sigma)) - phi(torch.tensor((-1 - x) / sigma))))
    assert_unbiased(out.log_evidence, torch.tensor(true_log_z, dtype=torch.float64),
                    bias_allowance=out.log_evidence.var())


def test_a_proposal_init_keeps_the_posterior_and_evidence_right():
    """AIS started from a proposal N(0, 1.5² I) (weighted by p/q) still recovers the closed form."""
    p = make_linear_gaussian()

    def wide(posterior, num, rng):
        q = distributions.Independent(distributions.Normal(torch.zeros(3, dtype=torch.float64),
                                                           torch.full((3,), 1.5, dtype=torch.float64)), 1)
        z = 1.5 * torch.randn(posterior.batch, num, 3, generator=rng, dtype=torch.float64)
        return z, q.log_prob(z)

    observed = p.observed[:1].expand(10, -1)
    out = cg.complete(p.generator, observed, p.mask, method=cg.AIS(init=wide, step_size=0.1), chains=400, steps=100,
                      leapfrog=5, noise_std=p.sigma)
    mean, _ = weighted_moments(out.latents, out.log_weights)
    assert_unbiased(mean, p.mean[0])
    assert_unbiased(out.log_evidence, p.log_evidence[0], bias_allowance=out.log_evidence.var())
    with pytest.raises(ValueError, match="log density"):
        cg.complete(p.generator, p.observed, p.mask, method=cg.SMC(init=lambda post, n, rng: (wide(post, n, rng)[0], None)))


def test_condition_reaches_the_generator():
    class Shifted(nn.Module):
        latent_dim = 2

        def forward(self, z, shift):
            return z + shift

    shift = torch.tensor([[3.0, -2.0], [0.0, 1.0]])
    observed = shift + torch.tensor([0.5, -0.5])
    kwargs = dict(method=cg.GD(lr=0.05), steps=300, chains=2, noise_std=0.1)
    out = cg.complete(Shifted(), observed, torch.ones(2), condition=shift, **kwargs)
    best = out.latents[torch.arange(2), (out.samples - observed[:, None]).pow(2).sum(-1).argmin(1)]
    torch.testing.assert_close(best, torch.tensor([[0.5, -0.5], [0.5, -0.5]]), atol=1e-2, rtol=0)
    with pytest.raises(ValueError, match="one condition per observation"):
        cg.complete(Shifted(), observed, torch.ones(2), condition=shift[:1], **kwargs)


def test_a_model_critic_enters_as_its_log_ratio():
    p = make_linear_gaussian()

    def logit(x):
        return 0.3 * x.sum(1)

    kwargs = dict(method="smc", chains=6, leapfrog=2, max_grad_evals=20, noise_std=p.sigma, discriminator_weight=0.5)
    explicit = cg.complete(p.generator, p.observed, p.mask, discriminator=logit, **kwargs)
    model = cg.GenerativeModel.from_generator(p.generator, discriminator=logit)
    implicit = cg.complete(model, p.observed, p.mask, **kwargs)
    assert torch.equal(explicit.samples, implicit.samples)
    energy_model = cg.GenerativeModel("ebgan", {"generator": p.generator, "energy": lambda x: x.pow(2).sum(1)},
                                      latent_dim=3, energy_scale=4.0)
    from_energy = cg.complete(energy_model, p.observed, p.mask, **kwargs)
    by_hand = cg.complete(p.generator, p.observed, p.mask, discriminator=lambda x: -x.pow(2).sum(1) / 4.0, **kwargs)
    assert torch.equal(from_energy.samples, by_hand.samples)
    no_critic = cg.complete(model.with_parts(discriminator=None), p.observed, p.mask, **{**kwargs, "discriminator_weight": 0})
    assert no_critic.samples.shape == explicit.samples.shape
    with pytest.raises(ValueError, match="needs the GAN's discriminator"):
        cg.complete(p.generator, p.observed, p.mask, method="yeh", steps=2)


def test_inputs_that_used_to_fail_obscurely():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="no observations"):
        cg.complete(p.generator, p.observed[:0], p.mask, method="gd", steps=2)
    with pytest.raises(ValueError, match="max_grad_evals must be a positive integer"):
        cg.complete(p.generator, p.observed, p.mask, max_grad_evals=0)
    single = nn.Linear(3, 6)  # float32 parameters, latent_dim from the argument
    out = cg.complete(single, p.observed, p.mask, latent_dim=3, method="gd", steps=2)  # float64 observations
    assert out.samples.dtype == torch.float32
    out = cg.complete(p.generator, p.observed, p.mask.long(), method="gd", steps=2)  # an integer mask
    assert torch.equal(out.estimate[:, :3], p.observed[:, :3])
    elsewhere = nn.Linear(3, 6, device="meta")
    with pytest.raises(ValueError, match="move both to one device"):
        cg.complete(elsewhere, p.observed, p.mask, latent_dim=3, method="gd", steps=2)


def test_a_collapse_of_the_weights_is_warned_about():
    p = make_linear_gaussian(sigma=0.02)  # a sharp posterior: one annealing step cannot reach it
    out = cg.complete(p.generator, p.observed, p.mask, method="ais", steps=1, leapfrog=1, chains=32, noise_std=0.02)
    assert any("effective sample size" in w for w in out.diagnostics["warnings"])
    calm = cg.complete(p.generator, p.observed, p.mask, method="gd", steps=2)
    assert calm.diagnostics["warnings"] == []


def test_a_models_own_noise_std_is_the_default_for_pixel_masks_and_gaussian_noise():
    p = make_linear_gaussian()
    plain = GenerativeModel.from_generator(p.generator)
    model = dataclasses.replace(plain, config={"noise_std": {"value": 0.37, "fitted_on": "a test"}})
    assert model_noise_std(model, p.mask) == 0.37 and model_noise_std(plain, p.mask) is None
    assert model_noise_std(model, p.mask, "laplace") is None
    assert model_noise_std(model, Mask(p.mask)) == 0.37
    assert model_noise_std(model, Downsample(2)) is None  # block means, not pixels: fitted per observation

    def scale(m, **kwargs):
        out = cg.complete(m, p.observed, p.mask, chains=8, max_grad_evals=40, **kwargs)
        return out.noise_std

    assert torch.allclose(scale(model, method="smc"), torch.full((2,), 0.37, dtype=torch.float64))
    fitted = scale(model, method="smc", noise_std="auto")  # asked for explicitly: fitted per observation
    assert not torch.allclose(fitted, torch.full((2,), 0.37, dtype=torch.float64))
    assert torch.equal(fitted, scale(plain, method="smc"))  # a model without one fits it, as before
    assert torch.allclose(scale(model, method="smc", noise_std=0.2), torch.full((2,), 0.2, dtype=torch.float64))
    assert torch.allclose(scale(model, method="gd-best"), torch.full((2,), 0.1, dtype=torch.float64))
