import math

import torch

from cogenerate.operators import Gaussian, Mask
from cogenerate.posterior import Posterior, frozen_generator


def test_evaluate_matches_closed_form(linear_gaussian):
    p = linear_gaussian
    post = Posterior(p.generator, p.observed, Mask(p.mask), Gaussian(p.sigma), latent_dim=3)
    z = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e = post.evaluate(z)
    o = p.mask.bool()
    a_o, b_o = p.generator.weight.detach()[o], p.generator.bias.detach()[o]
    residual = z @ a_o.T + b_o - p.observed[:, None, o]
    n = int(o.sum())
    expected = -0.5 * residual.pow(2).sum(-1) / p.sigma**2 - 0.5 * n * math.log(2 * math.pi * p.sigma**2)
    torch.testing.assert_close(e.log_likelihood, expected)
    torch.testing.assert_close(e.grad_log_likelihood, -residual @ a_o / p.sigma**2)
    torch.testing.assert_close(e.grad_log_prior, -z)
    torch.testing.assert_close(e.log_prior, -0.5 * z.pow(2).sum(-1) - 1.5 * math.log(2 * math.pi))
    assert e.sample.shape == (2, 5, 6)


def test_frozen_generator_restores_mode_and_flags(linear_gaussian):
    g = linear_gaussian.generator
    g.train()
    with frozen_generator(g):
        assert not g.training
        assert not any(q.requires_grad for q in g.parameters())
    assert g.training
    assert all(q.requires_grad for q in g.parameters())


def test_frozen_generator_restores_mixed_modes_and_partly_frozen_parameters():
    g = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    g.train()
    g[1].eval()  # a user's frozen batch norm inside a training model
    g[2].weight.requires_grad_(False)
    with frozen_generator(g):
        assert not any(m.training for m in g.modules())
        assert not any(q.requires_grad for q in g.parameters())
    assert [m.training for m in g.modules()] == [True, True, False, True]
    assert [q.requires_grad for q in g.parameters()] == [True, True, True, True, False, True]
