"""GAN losses as pure functions of discriminator logits.

Goodfellow et al., "Generative Adversarial Networks", NeurIPS 2014 (arXiv:1406.2661): the
discriminator maximises ``E[log D(x)] + E[log(1 − D(G(z)))]``; for the generator the paper
recommends maximising ``log D(G(z))`` instead of minimising ``log(1 − D(G(z)))``, which
saturates early in training ("non-saturating" loss; see also
seeds/lecture-gans-and-image-inpainting.txt). With ``D = sigmoid(logit)``:

    −log D        = softplus(−logit)
    −log(1 − D)   = softplus(logit)

which is what ``binary_cross_entropy_with_logits`` computes, stably for any logit.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["discriminator_loss", "generator_loss"]


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Standard GAN discriminator loss (Goodfellow et al. 2014), binary cross-entropy on logits.

    ``mean(softplus(−real_logits)) + mean(softplus(fake_logits))``, i.e.
    ``−E[log D(x)] − E[log(1 − D(G(z)))]`` with real labelled 1 and fake labelled 0.
    Each term is averaged over its own batch, so the two batches may differ in size.
    At ``D ≡ 1/2`` (all logits 0) the loss is ``2 log 2``.

    Args:
        real_logits: discriminator logits on real data, any shape, e.g. ``(N,)``.
        fake_logits: discriminator logits on generated data, any shape, e.g. ``(M,)``.

    Returns:
        Scalar tensor.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss ``−E[log D(G(z))] = mean(softplus(−fake_logits))``.

    The heuristic of Goodfellow et al. 2014 (§3): same fixed point as minimising
    ``log(1 − D(G(z)))`` but strong gradients while the discriminator rejects the fakes.

    Args:
        fake_logits: discriminator logits on generated data, any shape, e.g. ``(M,)``.

    Returns:
        Scalar tensor.
    """
    return F.softplus(-fake_logits).mean()
