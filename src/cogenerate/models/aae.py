"""A discriminator on latent codes: the AAE's and the α-GAN's code discriminator.

Makhzani et al., "Adversarial Autoencoders", ICLR 2016 workshop (arXiv:1511.05644), §2 and
Appendix A: the adversarial network that tells codes of the prior p(z) from codes of the
encoder q(z | x) is a multilayer perceptron with two hidden layers of 1000 ReLU units (MNIST).
Rosca et al., "Variational Approaches for Auto-Encoding GANs", 2017 (arXiv:1706.04987), use the
same kind of network as the α-GAN's code discriminator C_ω(z). LeakyReLU(0.2) rather than ReLU
and no batch norm: batch norm in the code discriminator hurts α-GAN training (reported by the
unofficial PyTorch implementation victor-shepardson/alpha-GAN, README).

Architecture only; the losses live in ``training/aae.py`` and ``training/alpha_gan.py``.
"""

from __future__ import annotations

from torch import Tensor, nn

from cogenerate.models.registry import register_architecture

__all__ = ["CodeDiscriminator"]


@register_architecture("code-discriminator")
class CodeDiscriminator(nn.Module):
    """MLP ``z -> logit``: positive for codes that look drawn from the prior.

    Args:
        latent_dim: size of z.
        hidden: units of each hidden layer (1000 in Makhzani et al., App. A).
        depth: number of hidden layers (2 in Makhzani et al.).

    Shapes:
        ``forward(z)``: ``(N, latent_dim)`` -> ``(N,)`` logits.
    """

    def __init__(self, latent_dim: int = 32, *, hidden: int = 1000, depth: int = 2) -> None:
        super().__init__()
        if min(latent_dim, hidden, depth) < 1:
            raise ValueError(f"latent_dim, hidden and depth must be positive, got {latent_dim}, {hidden}, {depth}")
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.depth = depth
        layers: list[nn.Module] = []
        size = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(size, hidden), nn.LeakyReLU(0.2, inplace=True)]
            size = hidden
        layers.append(nn.Linear(size, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """Logits ``(N,)`` for codes ``(N, latent_dim)``."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected codes of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return self.net(z).reshape(z.shape[0])
