"""EBGAN's autoencoder discriminator (Zhao, Mathieu & LeCun, "Energy-based Generative
Adversarial Networks", ICLR 2017, arXiv:1609.03126), as the ``energy`` part of a model.

The discriminator is an autoencoder whose reconstruction error is the energy
(seeds/lecture-merging-vae-and-gans.txt, "Autoencoder Discriminator")::

    D(x) = ‖Dec(Enc(x)) − x‖

the Euclidean norm over all pixels of one image (not squared, not averaged): low on the data,
high elsewhere. The generator of an EBGAN is a DCGAN generator
(:class:`cogenerate.models.dcgan.DCGANGenerator`).

Layer plan with ``w = width`` and ``k4 s2`` convolutions (the DCGAN discriminator's, without
its last layer), for 28 px::

    Enc: x 28×28×C -> 14×14×w -> 7×7×2w -> code (code_dim)     (LeakyReLU(0.2), linear code)
    Dec: code -> 7×7×2w -> 14×14×w -> 28×28×C                   (ReLU, tanh output)

and likewise from 4×4 for 32 and 64 px. Unlike the paper's networks the autoencoder has no
batch norm, so the energy of an image does not depend on the other images of its batch (it is
evaluated one image at a time in co-generation and by the samplers).

Architecture only: the losses are in :mod:`cogenerate.training.ebgan`.
"""

from __future__ import annotations

from torch import Tensor, nn

from cogenerate.models.registry import register_architecture

__all__ = ["EBGANAutoencoder", "IMAGE_SIZES", "encoder_plan"]

IMAGE_SIZES: tuple[int, ...] = (28, 32, 64)
"""Image sides the layer plans support (those of :mod:`cogenerate.models.dcgan`)."""

# image side -> (side of the smallest feature map, number of stride-2 stages), as in models/dcgan.py
_PLANS: dict[int, tuple[int, int]] = {64: (4, 4), 32: (4, 3), 28: (7, 2)}


def encoder_plan(image_size: int) -> tuple[int, int]:
    """``(smallest side, stride-2 stages)`` of an image side in :data:`IMAGE_SIZES`."""
    if image_size not in _PLANS:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
    return _PLANS[image_size]


@register_architecture("ebgan-autoencoder")
class EBGANAutoencoder(nn.Module):
    """Autoencoder discriminator whose ``forward`` is the energy ``‖Dec(Enc(x)) − x‖``.

    Args:
        image_size: side of the square input, one of :data:`IMAGE_SIZES`.
        channels: input channels.
        width: channels of the first feature map; they double per stage.
        code_dim: size of the code ``Enc(x)`` (the representation the pulling-away term
            decorrelates).

    Shapes:
        ``forward(x)``: ``(N, C, H, W)`` -> energies ``(N,)``, ``>= 0``.
        ``encode(x)``: ``(N, C, H, W)`` -> codes ``(N, code_dim)``.
        ``reconstruct(x)``: ``(N, C, H, W)`` -> ``(N, C, H, W)`` in ``[-1, 1]``.
    """

    def __init__(self, *, image_size: int = 28, channels: int = 1, width: int = 32, code_dim: int = 64) -> None:
        super().__init__()
        side, stages = encoder_plan(image_size)
        if channels < 1 or width < 1 or code_dim < 1:
            raise ValueError(f"channels, width and code_dim must be positive, got {channels}, {width}, {code_dim}")
        self.image_size, self.channels, self.width, self.code_dim = image_size, channels, width, code_dim

        down: list[nn.Module] = []
        features, previous = width, channels
        for _ in range(stages):
            down += [nn.Conv2d(previous, features, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            previous, features = features, features * 2
        self._bottom = (previous, side)
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(previous * side * side, code_dim))

        up: list[nn.Module] = []
        features = previous
        for stage in range(stages):
            last = stage == stages - 1
            out = channels if last else features // 2
            up += [nn.ConvTranspose2d(features, out, 4, 2, 1), nn.Tanh() if last else nn.ReLU(inplace=True)]
            features = out
        self.project = nn.Sequential(nn.Linear(code_dim, previous * side * side), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(*up)

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(N, code_dim)`` of images ``(N, C, H, W)``."""
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        return self.encoder(x)

    def decode(self, code: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` of codes ``(N, code_dim)``."""
        features, side = self._bottom
        return self.decoder(self.project(code).reshape(-1, features, side, side))

    def reconstruct(self, x: Tensor) -> Tensor:
        """``Dec(Enc(x))``, ``(N, C, H, W)``."""
        return self.decode(self.encode(x))

    def forward(self, x: Tensor) -> Tensor:
        """Energies ``‖Dec(Enc(x)) − x‖₂`` per image, ``(N, C, H, W)`` -> ``(N,)``."""
        return (self.reconstruct(x) - x).flatten(1).norm(dim=1)
