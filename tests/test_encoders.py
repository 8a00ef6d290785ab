"""The encoder proposal: its density, its draws' weights, the evidence it keeps right, and
complete()'s use of a model's encoder."""

from __future__ import annotations

import math

import pytest
import torch

import cogenerate as cg
from cogenerate.api import make_posterior
from cogenerate.encoders import EncoderProposal, encode_observed, with_encoder_init
from cogenerate.models.base import GenerativeModel
from cogenerate.operators import Downsample
from tests.conftest import ExactEncoder, assert_unbiased, make_linear_gaussian, weighted_moments


def _posterior(problem, **kwargs):
    return make_posterior(problem.generator, problem.observed, problem.mask, noise_std=problem.sigma, **kwargs)


def test_log_q_is_the_defensive_mixture_density_and_weights_average_to_one() -> None:
    p = make_linear_gaussian()
    posterior = _posterior(p)
    proposal = EncoderProposal(ExactEncoder(p), widen=1.5, prior_weight=0.25)
    z, log_q = proposal(posterior, 20000, torch.Generator().manual_seed(0))
    mean, log_std = ExactEncoder(p)(p.observed, p.mask.expand_as(p.observed))
    gauss = torch.distributions.Independent(torch.distributions.Normal(mean.unsqueeze(1), 1.5 * log_std.exp().unsqueeze(1)), 1)
    prior = -0.5 * z.pow(2).sum(-1) - 1.5 * math.log(2 * math.pi)
    expected = torch.logaddexp(math.log(0.25) + prior, math.log(0.75) + gauss.log_prob(z))
    assert z.shape == (2, 20000, 3) and torch.allclose(log_q, expected)
    weights = (prior - log_q).exp()  # E_q[p/q] = 1 and the weights are at most 1/α
    assert torch.allclose(weights.mean(1), torch.ones(2, dtype=weights.dtype), atol=0.03)
    assert bool((weights <= 4.0 + 1e-9).all())
    # and the weighted draws have the prior's mean 0: the draws do come from q
    assert torch.allclose((weights.unsqueeze(-1) * z).mean(1), torch.zeros(2, 3, dtype=z.dtype), atol=0.05)


def test_variants_and_the_fallback_for_other_operators() -> None:
    p = make_linear_gaussian()
    encoder = ExactEncoder(p)
    posterior = _posterior(p)
    observed = p.observed.clone()
    observed[:, ~p.mask.bool()] = 99.0  # hidden values must not matter
    for variant in ("mask", "fill", "auto"):
        mean, _ = encode_observed(encoder, _posterior(p), variant=variant)
        moved, _ = encode_observed(encoder, make_posterior(p.generator, observed, p.mask, noise_std=p.sigma),
                                   variant=variant)
        assert torch.allclose(mean, moved)
    assert torch.allclose(encode_observed(encoder, posterior, variant="mask")[0], p.mean)
    calls = encoder.calls
    encode_observed(encoder, posterior, variant="fill", fill_iterations=4)
    assert encoder.calls - calls == 5  # four encode-decode rounds, then the final encoding
    images = torch.zeros(2, 1, 4, 4)
    down = make_posterior(lambda z: z.reshape(-1, 1, 4, 4), images, Downsample(2), latent_dim=16, noise_std=0.1)
    z, log_q = EncoderProposal(encoder)(down, 5, torch.Generator().manual_seed(0))
    assert torch.allclose(log_q, down.log_prior(z))
    with pytest.raises(ValueError, match="variant"):
        EncoderProposal(encoder, variant="guess")
    with pytest.raises(ValueError, match="prior_weight"):
        EncoderProposal(encoder, prior_weight=1.0)


@pytest.mark.parametrize("method", ["smc", "ais"])
@pytest.mark.parametrize(("scale", "prior_weight"), [(1.0, 0.0), (1 / 3, 0.1)])
def test_the_evidence_from_the_encoder_start_matches_the_closed_form(method: str, scale: float,
                                                                      prior_weight: float) -> None:
    """Started from the encoder (the default widened q of a calibrated encoder, or an over-confident
    one, σ/3, made defensive by the prior), the samplers still give the closed-form evidence and
    posterior mean, as does the prior-started run."""
    p = make_linear_gaussian()
    encoder = ExactEncoder(p, scale=scale)
    model = GenerativeModel.from_generator(p.generator, encoder=encoder)
    observed = p.observed[:1].expand(10, -1)
    init = EncoderProposal(encoder, prior_weight=prior_weight)
    settings = cg.SMC(leapfrog=5, init=init) if method == "smc" else cg.AIS(steps=30, leapfrog=5, step_size=0.1,
                                                                            init=init)
    out = cg.complete(model, observed, p.mask, method=settings, chains=200, noise_std=p.sigma)
    mean, _ = weighted_moments(out.latents, out.log_weights)
    assert_unbiased(mean, p.mean[0])
    assert_unbiased(out.log_evidence, p.log_evidence[0], bias_allowance=out.log_evidence.var())
    prior_started = cg.complete(p.generator, observed, p.mask, method=type(settings)(**{
        **{f: getattr(settings, f) for f in ("leapfrog",)}, "init": "prior"}), chains=200, noise_std=p.sigma)
    assert not torch.equal(out.latents, prior_started.latents)
    assert_unbiased(prior_started.log_evidence, p.log_evidence[0], bias_allowance=prior_started.log_evidence.var())


def test_complete_uses_the_models_encoder_by_default() -> None:
    p = make_linear_gaussian()
    encoder = ExactEncoder(p)
    model = GenerativeModel.from_generator(p.generator, encoder=encoder)
    cg.complete(model, p.observed, p.mask, method="smc", chains=8, noise_std=p.sigma, max_grad_evals=20)
    assert encoder.calls == 1
    cg.complete(model, p.observed, p.mask, method="gd-best", chains=8, noise_std=p.sigma, max_grad_evals=20)
    assert encoder.calls == 1  # gd-best keeps its own best-of start


def test_with_encoder_init_replaces_only_a_default_prior_start() -> None:
    p = make_linear_gaussian()
    model = GenerativeModel.from_generator(p.generator, encoder=ExactEncoder(p))
    assert isinstance(with_encoder_init(cg.SMCPolish(), model).init, EncoderProposal)
    assert isinstance(with_encoder_init(cg.AIS(), model).init, EncoderProposal)
    assert with_encoder_init(cg.GDBest(), model).init == "best-of"
    own = lambda posterior, num, rng: (posterior.sample_prior(rng, (posterior.batch, num)), None)  # noqa: E731
    assert with_encoder_init(cg.SMC(init=own), model).init is own
    plain = GenerativeModel.from_generator(p.generator)
    assert with_encoder_init(cg.SMC(), plain).init == "prior"
    chosen = with_encoder_init(cg.SMC(), model, variant="fill", widen=2.0).init
    assert chosen.variant == "fill" and chosen.widen == 2.0
    plain_encoder = ExactEncoder(p)
    plain_encoder.mask_aware = False  # complete() uses only mask-aware encoders by default
    unaware = GenerativeModel.from_generator(p.generator, encoder=plain_encoder)
    assert with_encoder_init(cg.SMC(), unaware).init == "prior"
    assert isinstance(with_encoder_init(cg.SMC(), unaware, mask_aware_only=False).init, EncoderProposal)
