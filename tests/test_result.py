import pytest
import torch

import cogenerate as cg
from cogenerate.result import Completion
from tests.conftest import make_linear_gaussian


def test_predictive_std_adds_the_noise_to_the_posterior_spread():
    # Hidden entries x_h = A_h z + b_h + σε: predictive variance diag(A_h Σ A_hᵀ) + σ².
    p = make_linear_gaussian(sigma=0.5)
    observed = p.observed[:1].expand(4, -1)
    out = cg.complete(p.generator, observed, p.mask, method=cg.SMC(final_moves=2), chains=2000, leapfrog=5, noise_std=p.sigma)
    a_h = p.generator.weight.detach()[~p.mask.bool()]
    expected = ((a_h @ p.cov @ a_h.T).diagonal() + p.sigma**2).sqrt()
    predictive = out.predictive_std
    torch.testing.assert_close(predictive[:, p.mask.bool()], torch.zeros(4, 3, dtype=torch.float64))
    torch.testing.assert_close(predictive[:, ~p.mask.bool()].mean(0), expected, rtol=0.03, atol=0)
    assert (predictive[:, ~p.mask.bool()] > out.std[:, ~p.mask.bool()]).all()


def test_predictive_std_uses_the_laplace_std_and_needs_the_pieces():
    p = make_linear_gaussian()
    out = cg.complete(p.generator, p.observed, p.mask, method="gd", noise="laplace", noise_std=0.3, steps=2)
    torch.testing.assert_close(out.noise_std, torch.full((2,), 0.3 * 2**0.5, dtype=torch.float64))
    bare = Completion(out.samples, out.completions, out.estimate, out.latents, out.log_weights, out.log_evidence,
                      out.grad_evals, out.method)
    with pytest.raises(ValueError, match="noise_std"):
        _ = bare.predictive_std
    assert out.to("cpu").hidden is not None
