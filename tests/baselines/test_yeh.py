import pytest
import torch

import cogenerate as cg
from tests.conftest import make_linear_gaussian


def test_yeh_without_perceptual_term_solves_the_l1_fit():
    # λ = 0 leaves the contextual L1 loss, minimised exactly by A_O⁻¹(x_O − b_O) when O has D rows.
    p = make_linear_gaussian(latent_dim=3, x_dim=6)
    out = cg.complete(p.generator, p.observed, p.mask, method=cg.Yeh(perceptual_weight=0.0, lr=0.02), chains=2, steps=4000,
                      discriminator=lambda x: x.sum(1))
    o = p.mask.bool()
    a_o, b_o = p.generator.weight.detach()[o], p.generator.bias.detach()[o]
    expected = torch.linalg.solve(a_o, (p.observed[:, o] - b_o).T).T
    torch.testing.assert_close(out.latents, expected.unsqueeze(1).expand(-1, 2, -1), atol=2e-2, rtol=0)


def test_yeh_perceptual_term_pulls_toward_what_the_discriminator_likes():
    # A discriminator that prefers large hidden entries moves the completion upward.
    p = make_linear_gaussian(latent_dim=3, x_dim=6)
    likes_hidden = lambda x: 5.0 * x[:, 3:].sum(1)  # noqa: E731
    plain = cg.complete(p.generator, p.observed, p.mask, method=cg.Yeh(perceptual_weight=0.0, lr=0.02), chains=2, steps=500,
                        discriminator=likes_hidden)
    pulled = cg.complete(p.generator, p.observed, p.mask, method=cg.Yeh(perceptual_weight=0.5, lr=0.02), chains=2, steps=500,
                         discriminator=likes_hidden)
    assert (pulled.estimate[:, 3:].sum(1) > plain.estimate[:, 3:].sum(1)).all()


def test_yeh_needs_a_discriminator():
    p = make_linear_gaussian()
    with pytest.raises(ValueError, match="discriminator"):
        cg.complete(p.generator, p.observed, p.mask, method="yeh")
