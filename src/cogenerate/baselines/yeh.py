"""Yeh et al. (2017), "Semantic image inpainting with deep generative models".

Gradient descent on z of the contextual plus perceptual loss
(../shared/seeds/lecture-gans-and-image-inpainting.txt):

    L(z) = ‖M ⊙ G(z) − M ⊙ x‖₁ + λ · log(1 − D(G(z))),   λ = 0.1,

with D = σ(d) for the discriminator's logit d, so ``log(1 − D) = −softplus(d)``. As a
log-density this is Laplace noise of scale 1 on the observed pixels plus
``λ · softplus(d(G(z)))``, which lets the baseline reuse :func:`gradient_descent`.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from cogenerate.baselines.gradient import gradient_descent
from cogenerate.operators import Laplace
from cogenerate.posterior import Posterior
from cogenerate.proposals import Proposal
from cogenerate.result import Callback, SamplerOutput

# The contextual loss is an L1 norm: Laplace noise of scale 1 (Yeh et al. 2017, eq. 5).
YEH_NOISE = Laplace(1.0)

__all__ = ["yeh"]


def yeh(
    posterior: Posterior,
    *,
    chains: int,
    rng: torch.Generator,
    perceptual_weight: float = 0.1,
    steps: int = 1000,
    lr: float = 0.01,
    init: str | Proposal = "prior",
    candidates: int = 5000,
    max_grad_evals: int | None = None,
    callback: Callback | None = None,
) -> SamplerOutput:
    """Minimise Yeh et al.'s loss from ``chains`` starts per observation.

    ``posterior.discriminator`` must be the discriminator's logit ``d`` (pass
    ``discriminator=`` to :func:`cogenerate.complete`, or a model with a critic); the
    posterior's own noise model and discriminator weight are replaced by the loss above, and
    the output reports the noise model it used (Laplace of scale 1). Other arguments as in
    :func:`~cogenerate.baselines.gradient.gradient_descent`.
    """
    discriminator = posterior.discriminator
    if discriminator is None:
        raise ValueError("method 'yeh' needs the GAN's discriminator: pass discriminator= (logits, shape (N,))")

    def perceptual(x: Tensor) -> Tensor:
        return F.softplus(discriminator(x))  # −log(1 − σ(d))

    loss_posterior = dataclasses.replace(
        posterior, noise=YEH_NOISE, discriminator=perceptual, discriminator_weight=perceptual_weight
    )
    output = gradient_descent(
        loss_posterior, chains=chains, rng=rng, steps=steps, lr=lr, init=init, candidates=candidates,
        max_grad_evals=max_grad_evals, callback=callback,
    )
    return output._replace(noise=YEH_NOISE)
