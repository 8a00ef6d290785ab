"""BEGAN's generator and autoencoder discriminator (Berthelot, Schumm & Metz, "BEGAN: Boundary
Equilibrium Generative Adversarial Networks", 2017, arXiv:1703.10717, §3.5 and Figure 1).

The discriminator is an autoencoder and its energy is the L1 reconstruction error
(seeds/lecture-merging-vae-and-gans.txt, "Boundary equilibrium GAN"; the paper's
``L(v) = |v − D(v)|^η`` with ``η = 1``)::

    L(v) = mean over pixels of |v − Dec(Enc(v))|        (one number per image)

Architecture, as in the paper's Figure 1, with ``n = width`` filters and ``h = code_dim``:
3×3 convolutions with exponential linear units (ELU) everywhere, ``depth`` convolutions per
scale (two in the paper), down-sampling by stride-2 convolutions with the number of filters
increased linearly (n, 2n, 3n, ...), up-sampling by nearest neighbour, and a fully connected
layer to and from the embedding ``h`` (no batch norm). The generator has the decoder's
architecture (its own weights). For 28 px::

    Enc: x -> 28×28×n -> 14×14×2n -> 7×7×3n -> h
    Dec / G: h (or z) -> 7×7×n -> 14×14×n -> 28×28×n -> C

and from 8×8 for 32 and 64 px. Two departures from the paper: the generator ends with a
``tanh`` so that samples lie in ``[-1, 1]`` like every other family's (the paper's has no output
activation), and the latent prior is N(0, I) rather than the paper's uniform on ``[-1, 1]``, so
that DDLS and co-generation treat every family alike.

:class:`BEGANConvAutoencoder` is the alternative the family trains by default
(``--architecture dcgan``): EBGAN's strided-convolution autoencoder (:class:`~cogenerate.models.ebgan.
EBGANAutoencoder`) scored with BEGAN's L1 energy, paired with the DCGAN generator (batch norm). At the
budgets of this machine the paper's architecture collapsed to one mode and this one did not
(docs/sampling.md, "The BEGAN").

Architecture only: the losses and the ``k_t`` control are in :mod:`cogenerate.training.began`.
"""

from __future__ import annotations

from torch import Tensor, nn

from cogenerate.models.ebgan import EBGANAutoencoder
from cogenerate.models.registry import register_architecture

__all__ = ["BEGANAutoencoder", "BEGANConvAutoencoder", "BEGANGenerator", "IMAGE_SIZES", "began_plan", "l1_energy"]

IMAGE_SIZES: tuple[int, ...] = (28, 32, 64)
"""Image sides the layer plans support."""

# image side -> (side of the smallest feature map, number of ×2 scales): 7·2² = 28, 8·2² = 32, 8·2³ = 64
_PLANS: dict[int, tuple[int, int]] = {28: (7, 2), 32: (8, 2), 64: (8, 3)}


def began_plan(image_size: int) -> tuple[int, int]:
    """``(smallest side, ×2 scales)`` of an image side in :data:`IMAGE_SIZES`."""
    if image_size not in _PLANS:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
    return _PLANS[image_size]


def _check(channels: int, width: int, code_dim: int, depth: int) -> None:
    if min(channels, width, code_dim, depth) < 1:
        raise ValueError(f"channels, width, code_dim and depth must be positive, got {channels}, {width}, "
                         f"{code_dim}, {depth}")


def _convs(channels_in: int, channels_out: int, depth: int) -> list[nn.Module]:
    """``depth`` 3×3 convolutions with ELUs, the first from ``channels_in``."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(channels_in if i == 0 else channels_out, channels_out, 3, 1, 1), nn.ELU(inplace=True)]
    return layers


class _Decoder(nn.Module):
    """``h -> 8×8×n`` (or 7×7×n) by a linear layer, then [convs, ×2 nearest] per scale, convs, 3×3 conv to C."""

    def __init__(self, *, image_size: int, channels: int, width: int, code_dim: int, depth: int, tanh: bool) -> None:
        super().__init__()
        side, scales = began_plan(image_size)
        self.side, self.width = side, width
        self.project = nn.Linear(code_dim, width * side * side)
        layers: list[nn.Module] = []
        for _ in range(scales):
            layers += [*_convs(width, width, depth), nn.Upsample(scale_factor=2, mode="nearest")]
        layers += [*_convs(width, width, depth), nn.Conv2d(width, channels, 3, 1, 1)]
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, code: Tensor) -> Tensor:
        return self.net(self.project(code).reshape(-1, self.width, self.side, self.side))


@register_architecture("began-generator")
class BEGANGenerator(nn.Module):
    """BEGAN generator ``G: R^latent_dim -> [-1, 1]^(C×H×W)`` (the decoder's architecture + tanh).

    Args:
        latent_dim: size of ``z`` (``N_z``; the paper uses ``N_z = h``).
        image_size: one of :data:`IMAGE_SIZES`.
        channels: output channels.
        width: filters ``n`` of every convolution.
        depth: 3×3 convolutions per scale.

    Shapes:
        ``forward(z)``: ``(..., latent_dim)`` -> ``(..., C, H, W)`` in ``[-1, 1]``.
    """

    def __init__(self, latent_dim: int = 64, *, image_size: int = 28, channels: int = 1, width: int = 32,
                 depth: int = 2) -> None:
        super().__init__()
        _check(channels, width, latent_dim, depth)
        self.latent_dim, self.image_size, self.channels, self.width, self.depth = (
            latent_dim, image_size, channels, width, depth)
        self.decoder = _Decoder(image_size=image_size, channels=channels, width=width, code_dim=latent_dim,
                                depth=depth, tanh=True)

    def forward(self, z: Tensor) -> Tensor:
        """Map latents ``(..., latent_dim)`` to images ``(..., C, H, W)`` in ``[-1, 1]``."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (..., {self.latent_dim}), got {tuple(z.shape)}")
        x = self.decoder(z.reshape(-1, self.latent_dim))
        return x.reshape(*z.shape[:-1], *x.shape[1:])


@register_architecture("began-autoencoder")
class BEGANAutoencoder(nn.Module):
    """BEGAN discriminator: an autoencoder whose ``forward`` is the energy ``L(x) = mean |x − D(x)|``.

    Args:
        image_size: one of :data:`IMAGE_SIZES`.
        channels: input channels.
        width: filters ``n``; the encoder's scales have n, 2n, 3n, ... filters.
        code_dim: size ``h`` of the embedding.
        depth: 3×3 convolutions per scale.

    Shapes:
        ``forward(x)``: ``(N, C, H, W)`` -> energies ``(N,)``, ``>= 0``.
        ``reconstruct(x)``: ``(N, C, H, W)`` -> ``(N, C, H, W)`` (no output activation).
    """

    def __init__(self, *, image_size: int = 28, channels: int = 1, width: int = 32, code_dim: int = 64,
                 depth: int = 2) -> None:
        super().__init__()
        side, scales = began_plan(image_size)
        _check(channels, width, code_dim, depth)
        self.image_size, self.channels, self.width, self.code_dim, self.depth = (
            image_size, channels, width, code_dim, depth)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.ELU(inplace=True)]
        for scale in range(scales):
            features = width * (scale + 1)
            layers += [*_convs(features, features, depth), nn.Conv2d(features, features + width, 3, 2, 1),
                       nn.ELU(inplace=True)]
        features = width * (scales + 1)
        layers += [*_convs(features, features, depth), nn.Flatten(), nn.Linear(features * side * side, code_dim)]
        self.encoder = nn.Sequential(*layers)
        self.decoder = _Decoder(image_size=image_size, channels=channels, width=width, code_dim=code_dim,
                                depth=depth, tanh=False)

    def reconstruct(self, x: Tensor) -> Tensor:
        """``Dec(Enc(x))``, ``(N, C, H, W)``."""
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        return self.decoder(self.encoder(x))

    def forward(self, x: Tensor) -> Tensor:
        """Energies ``L(x) = mean |x − Dec(Enc(x))|`` per image, ``(N, C, H, W)`` -> ``(N,)``."""
        return l1_energy(self.reconstruct(x), x)


@register_architecture("began-conv-autoencoder")
class BEGANConvAutoencoder(EBGANAutoencoder):
    """EBGAN's convolutional autoencoder (stride-2 convolutions, a linear code of ``code_dim``,
    transposed convolutions, ``tanh`` output) whose ``forward`` is BEGAN's energy
    ``L(x) = mean |x − Dec(Enc(x))|`` instead of EBGAN's ``‖x − Dec(Enc(x))‖₂``.

    Args and shapes: as :class:`~cogenerate.models.ebgan.EBGANAutoencoder`; ``forward(x)``:
    ``(N, C, H, W)`` -> energies ``(N,)`` in ``[0, 2]``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Energies ``L(x) = mean |x − Dec(Enc(x))|`` per image, ``(N, C, H, W)`` -> ``(N,)``."""
        return l1_energy(self.reconstruct(x), x)


def l1_energy(reconstruction: Tensor, x: Tensor) -> Tensor:
    """BEGAN's ``L(v) = mean over entries |v − D(v)|`` (η = 1), ``(N, ...)`` twice -> ``(N,)``."""
    return (reconstruction - x).abs().flatten(1).mean(dim=1)
