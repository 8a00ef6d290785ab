"""GAN losses as pure functions of discriminator logits (kept importable from here).

They live with the DCGAN family in :mod:`cogenerate.training.dcgan`, which documents them
(Goodfellow et al. 2014: the standard discriminator loss and the non-saturating generator loss).
"""

from __future__ import annotations

from cogenerate.training.dcgan import discriminator_loss, generator_loss

__all__ = ["discriminator_loss", "generator_loss"]
