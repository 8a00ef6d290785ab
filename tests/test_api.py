import pytest
import torch
from torch import nn

import cogenerate as cg
from cogenerate.methods import METHODS
from tests.conftest import make_linear_gaussian

ALL_METHODS = sorted(METHODS)
FAST = {"ais": {"steps": 5, "leapfrog": 2}, "smc": {"leapfrog": 2}, "gd": {"steps": 5}, "gd-best": {"steps": 5},
        "yeh": {"steps": 5}, "smc-polish": {"leapfrog": 2, "steps": 5}}
FEW_CANDIDATES = {"gd-best": cg.GDBest(candidates=50), "smc-polish": cg.SMCPolish(smc=cg.SMC(leapfrog=5, candidates=50))}


def toy_discriminator(x):
    """Logits of a stand-in discriminator: any (N, *x_shape) -> (N,) function will do."""
    return 0.1 * x.flatten(1).sum(1)


def fast_options(method):
    extra = {"discriminator": toy_discriminator} if method == "yeh" else {}
    return {**FAST.get(method, {"max_grad_evals": 20}), **extra}


def call(method, *args, **kwargs):
    """``cg.complete`` with the method's fast settings object."""
    return cg.complete(*args, method=FEW_CANDIDATES.get(method, method), **{**fast_options(method), **kwargs})


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_returns_the_documented_shapes(method):
    p = make_linear_gaussian(batch=3)
    out = call(method, p.generator, p.observed, p.mask, chains=5, noise_std=p.sigma)
    assert out.samples.shape == out.completions.shape == (3, 5, 6)
    assert out.estimate.shape == (3, 6)
    assert out.latents.shape == (3, 5, 3)
    assert out.log_weights.shape == (3, 5) and out.log_evidence.shape == (3,)
    torch.testing.assert_close(out.log_weights.logsumexp(1), torch.zeros(3, dtype=torch.float64))
    observed = p.mask.bool()
    # The observed part is pasted into completions and estimate, and has no uncertainty.
    assert torch.equal(out.completions[:, :, observed], p.observed[:, None, observed].expand(-1, 5, -1))
    assert torch.equal(out.estimate[:, observed], p.observed[:, observed])
    assert (out.std[:, observed] == 0).all()
    assert out.method == method and out.grad_evals >= 1


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_honours_max_grad_evals(method):
    p = make_linear_gaussian()
    kwargs = fast_options(method)
    kwargs.pop("steps", None)
    out = cg.complete(p.generator, p.observed, p.mask, method=FEW_CANDIDATES.get(method, method), chains=4,
                      max_grad_evals=25, noise_std=p.sigma, **{**kwargs, "leapfrog": 3})
    assert 1 <= out.grad_evals <= 25


@pytest.mark.parametrize("method", ALL_METHODS)
def test_same_seed_same_result(method):
    p = make_linear_gaussian()
    a = call(method, p.generator, p.observed, p.mask, chains=4, seed=11)
    b = call(method, p.generator, p.observed, p.mask, chains=4, seed=11)
    assert torch.equal(a.samples, b.samples) and torch.equal(a.log_weights, b.log_weights)


class SometimesNan(nn.Module):
    """Returns NaN wherever z₀ > 0.3: half the prior mass."""

    latent_dim = 2

    def forward(self, z):
        x = torch.stack([z[:, 0] + z[:, 1], z[:, 0] - z[:, 1], z[:, 1]], dim=1)
        return torch.where(z[:, :1] > 0.3, torch.full_like(x, torch.nan), x)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_a_generator_that_returns_nan_does_not_crash(method):
    observed = torch.tensor([[-1.0, 0.0, 0.0]])
    out = call(method, SometimesNan(), observed, torch.tensor([1.0, 1.0, 0.0]), chains=16)
    assert out.samples.shape == (1, 16, 3)
    if method in ("ais", "smc"):
        assert torch.isfinite(out.estimate).all()  # NaN particles carry zero weight
        assert torch.isfinite(out.log_evidence).all()


def test_bad_mask_shape_is_a_value_error():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="does not broadcast"):
        cg.complete(p.generator, p.observed, torch.ones(5), method="gd", steps=1)


def test_nan_in_observed_entries_is_a_value_error_but_fine_in_hidden_ones():
    p = make_linear_gaussian()
    x = p.observed.clone()
    x[0, 0] = torch.nan  # observed entry
    with pytest.raises(ValueError, match="NaN"):
        cg.complete(p.generator, x, p.mask, method="gd", steps=1)
    x = p.observed.clone()
    x[0, -1] = torch.nan  # hidden entry
    out = cg.complete(p.generator, x, p.mask, method="gd", steps=1)
    assert torch.isfinite(out.estimate).all()


def test_wrong_latent_size_is_a_value_error():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="latent_dim=4"):
        cg.complete(p.generator, p.observed, p.mask, latent_dim=4)


def test_missing_latent_dim_and_wrong_observation_shape():
    with pytest.raises(ValueError, match="latent_dim"):
        cg.complete(lambda z: z, torch.zeros(2), torch.ones(2))
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="observed has shape"):
        cg.complete(p.generator, torch.zeros(2, 7, dtype=torch.float64), torch.ones(7))


def test_unknown_method_and_option():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="unknown method"):
        cg.complete(p.generator, p.observed, p.mask, method="magic")
    with pytest.raises(TypeError, match="temperature"):
        cg.complete(p.generator, p.observed, p.mask, method=cg.GD(temperature=2))


def test_a_single_unbatched_observation_and_a_plain_function():
    out = cg.complete(lambda z: 2 * z, torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]), latent_dim=2,
                      method="smc", chains=8)
    assert out.samples.shape == (1, 8, 2)


def test_downsample_operator_super_resolution():
    class Up(nn.Module):
        latent_dim = 4

        def forward(self, z):
            return z.reshape(-1, 1, 2, 2).repeat_interleave(2, -1).repeat_interleave(2, -2)

    truth = Up()(torch.tensor([[1.0, -1.0, 0.5, 0.0]]))
    out = cg.complete(Up(), truth, cg.Downsample(2), method="smc", chains=64, noise_std=0.05)
    torch.testing.assert_close(out.estimate, truth, atol=0.1, rtol=0)
    assert torch.equal(out.completions, out.samples)


def test_generator_mode_is_restored():
    p = make_linear_gaussian()
    p.generator.train()
    cg.complete(p.generator, p.observed, p.mask, method="gd", steps=2)
    assert p.generator.training
    assert all(q.requires_grad and q.grad is None for q in p.generator.parameters())


def test_laplace_noise_runs():
    p = make_linear_gaussian()
    out = cg.complete(p.generator, p.observed, p.mask, method="smc", noise="laplace", noise_std=0.3, chains=8)
    assert torch.isfinite(out.log_evidence).all()


@pytest.mark.parametrize("method", ["smc", "smc-polish"])
def test_auto_noise_std_is_fitted_and_reported(method):
    p = make_linear_gaussian(x_dim=40, sigma=0.3, seed=2)
    out = call(method, p.generator, p.observed, p.mask, noise_std="auto", chains=32)
    scale = out.diagnostics["noise_scale"]
    assert scale.shape == (2,)
    assert ((scale > 0.1) & (scale < 1.0)).all()  # near the data's 0.3, far from the floor


def test_a_fixed_noise_std_is_reported_too():
    p = make_linear_gaussian()
    out = cg.complete(p.generator, p.observed, p.mask, method="gd", noise_std=0.2, steps=2)
    torch.testing.assert_close(out.diagnostics["noise_scale"], torch.full((2,), 0.2))


def test_auto_noise_std_needs_a_method_that_fits_it():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="smc, smc-polish"):
        cg.complete(p.generator, p.observed, p.mask, method="gd-best", noise_std="auto")
    with pytest.raises(ValueError, match="positive number or 'auto'"):
        cg.complete(p.generator, p.observed, p.mask, method="smc", noise_std="fit")
