"""Completion with several generators: the posterior over generators and the mixture's evidence
against the closed form of linear-Gaussian generators."""

from __future__ import annotations

import math

import torch

import cogenerate as cg
from cogenerate.mixture import complete_mixture, generator_weights, single_generator_models
from cogenerate.models.base import GenerativeModel
from tests.conftest import LinearGenerator, linear_gaussian_posterior, make_linear_gaussian


def _two_generators():
    p = make_linear_gaussian()
    shifted = LinearGenerator(p.generator.weight.detach(), p.generator.bias.detach() + 0.8)
    model = GenerativeModel(family="bayesian-gan", parts={"generator": p.generator, "generator_1": shifted},
                            latent_dim=3)
    evidence = torch.stack([linear_gaussian_posterior(g, p.observed, p.mask, p.sigma)[2]
                            for g in (p.generator, shifted)], dim=1)
    return p, model, evidence


def test_generator_weights() -> None:
    log_evidence = torch.tensor([[0.0, math.log(3.0)], [1.0, float("nan")]])
    assert torch.allclose(generator_weights(log_evidence).exp(), torch.tensor([[0.25, 0.75], [0.5, 0.5]]))


def test_single_generator_models_share_the_other_parts() -> None:
    _, model, _ = _two_generators()
    critic = torch.nn.Identity()
    singles = single_generator_models(model.with_parts(discriminator=critic))
    assert [set(m.parts) for m in singles] == [{"generator", "discriminator"}] * 2
    assert singles[1].generator is model.parts["generator_1"] and singles[0].discriminator is critic


def test_the_weights_over_generators_and_the_mixture_evidence_match_the_closed_form() -> None:
    p, model, evidence = _two_generators()
    ais = cg.AIS(steps=50, leapfrog=5, step_size=0.1)
    out = cg.complete(model, p.observed, p.mask, method=ais, chains=300, noise_std=p.sigma, seed=3)
    expected = torch.softmax(evidence, dim=1)
    assert out.latents.shape == (2, 600, 3) and out.completions.shape == (2, 600, 6)
    assert torch.allclose(out.log_weights.logsumexp(1), torch.zeros(2, dtype=out.log_weights.dtype), atol=1e-9)
    assert torch.allclose(out.diagnostics["generator_weights"], expected, atol=0.05), (out.diagnostics, expected)
    mixture = torch.logsumexp(evidence, dim=1) - math.log(2)
    assert torch.allclose(out.log_evidence, mixture, atol=0.1)
    # the particles' total weight on each generator is its posterior probability
    per_generator = out.log_weights.exp().reshape(2, 2, 300).sum(2)
    assert torch.allclose(per_generator, out.diagnostics["generator_weights"], atol=1e-9)
    assert torch.allclose(out.noise_std, torch.full((2,), p.sigma, dtype=out.noise_std.dtype))


def test_identical_generators_weigh_equally_and_chains_per_generator() -> None:
    p = make_linear_gaussian()
    model = GenerativeModel(family="ensemble", parts={"generator": p.generator, "generator_1": p.generator,
                                                      "generator_2": p.generator}, latent_dim=3)
    out = complete_mixture(model, p.observed, p.mask, method=cg.AIS(steps=50, leapfrog=5, step_size=0.1),
                           chains_per_generator=100, noise_std=p.sigma)
    assert out.latents.shape == (2, 300, 3)
    assert torch.allclose(out.diagnostics["generator_weights"], torch.full((2, 3), 1 / 3, dtype=torch.float64),
                          atol=0.1)  # the evidence estimates of 100 chains err by about 0.15
    descent = complete_mixture(model, p.observed, p.mask, method="gd", chains=4, steps=20, noise_std=p.sigma)
    assert torch.equal(descent.diagnostics["generator_weights"], torch.full((2, 3), 1 / 3, dtype=torch.float64))
    assert descent.estimate.shape == (2, 6) and torch.isnan(descent.log_evidence).all()
