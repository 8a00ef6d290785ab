"""Small MLPs for the paper's 2-D synthetic experiment (Fang & Schwing 2019, §3.1).

The generator maps a 2-D standard-normal latent to the plane; trained on the ring of five
Gaussians (:func:`cogenerate.data.toy.ring_of_gaussians`) it learns to fold the latent plane
onto the five modes, which is what makes the landscape of ``‖x2 − G(z)_2‖²`` ragged (the
paper's Fig. 1). Architecture only: its GAN losses and step live in ``training/dcgan.py``, the toy
training run in ``training/gan.py``.

The defaults (G: 3 hidden layers of 64, D: 3 hidden layers of 96; 8.6k and 19k parameters)
are those of :func:`cogenerate.training.gan.train_toy_gan`: a discriminator somewhat wider
than the generator kept the 5-mode fit stable over the last 5k of 15k iterations for
seeds 0, 1, 2, and one iteration at batch 256 costs ~3 ms on one CPU core.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from cogenerate.models.registry import register_architecture

__all__ = ["ToyGenerator", "ToyDiscriminator"]


def _mlp(in_dim: int, hidden: int, depth: int, out_dim: int, activation: Callable[[], nn.Module]) -> nn.Sequential:
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if hidden < 1:
        raise ValueError(f"hidden must be >= 1, got {hidden}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers.append(nn.Linear(width, hidden))
        layers.append(activation())
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


@register_architecture("toy-generator")
class ToyGenerator(nn.Module):
    """MLP generator ``G: R^latent_dim -> R^out_dim`` with ReLU hidden layers.

    ``depth`` hidden layers of width ``hidden``, then a linear output layer (no output
    nonlinearity, the data is unbounded).

    Args:
        latent_dim: dimension of the latent ``z`` (2 in the paper); read by the samplers.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        out_dim: dimension of the data (2 in the paper).

    Shapes:
        ``forward(z)``: ``(N, latent_dim)`` -> ``(N, out_dim)``.
    """

    def __init__(self, latent_dim: int = 2, *, hidden: int = 64, depth: int = 3, out_dim: int = 2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.depth = depth
        self.out_dim = out_dim
        self.net = _mlp(latent_dim, hidden, depth, out_dim, nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        """Map latents ``(N, latent_dim)`` to samples ``(N, out_dim)``."""
        return self.net(z)


@register_architecture("toy-discriminator")
class ToyDiscriminator(nn.Module):
    """MLP discriminator ``D: R^in_dim -> R`` with LeakyReLU(0.2) hidden layers.

    Returns logits (pre-sigmoid), so losses can use the numerically stable
    ``binary_cross_entropy_with_logits`` / softplus forms.

    Args:
        in_dim: dimension of the data (2 in the paper).
        hidden: width of the hidden layers.
        depth: number of hidden layers.

    Shapes:
        ``forward(x)``: ``(N, in_dim)`` -> logits ``(N,)``.
    """

    def __init__(self, in_dim: int = 2, *, hidden: int = 96, depth: int = 3) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.hidden = hidden
        self.depth = depth
        self.net = _mlp(in_dim, hidden, depth, 1, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        """Map samples ``(N, in_dim)`` to logits ``(N,)``."""
        return self.net(x).squeeze(-1)
