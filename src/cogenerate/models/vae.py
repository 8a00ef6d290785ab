"""A Gaussian encoder q(z | x): the inference network of the VAE, VAE-GAN, AAE and α-GAN families.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, §3 and Appendix C.2: the
encoder outputs the mean and the log standard deviation of a diagonal Gaussian,

    q(z | x) = N(z; μ(x), diag(σ(x)²)),

and the decoder is a generator ``G(z)`` (here the DCGAN generator of
:mod:`cogenerate.models.dcgan`, whose output is the mean of a Gaussian p(x | z); see
``training/vae.py`` for its standard deviation). Architecture only: the losses live in
``cogenerate.training``.

The encoder mirrors the DCGAN discriminator (strided 4×4 convolutions, LeakyReLU(0.2),
Radford et al. 2016, §3) and ends with a convolution over the last feature map to
``2 · latent_dim`` numbers, (μ, log σ). It has no batch norm, so one image's code never
depends on the rest of its batch (the co-generation proposals encode one observation at a time).

With ``mask_aware=True`` it also reads a mask (1 = observed): its input is the two channels
``(x · mask, mask)``, so it learns q(z | x_o) for any observed part when trained with random
masks ("mask-aware encoder"); ``mask=None`` means everything is observed. A plain encoder
ignores ``mask``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cogenerate.models.dcgan import IMAGE_SIZES
from cogenerate.models.registry import register_architecture

__all__ = ["GaussianEncoder", "LOG_STD_RANGE"]

LOG_STD_RANGE: tuple[float, float] = (-7.0, 2.0)
"""log σ(x) is clamped to this range: σ from 1e-3 to 7.4 covers every code of an N(0, I) prior
while keeping ``exp(-2 log σ)`` finite in float16 weights and float32 arithmetic."""

# image side -> (side of the last feature map, number of stride-2 convolutions)
_PLANS: dict[int, tuple[int, int]] = {64: (4, 4), 32: (4, 3), 28: (7, 2)}


@register_architecture("gaussian-encoder")
class GaussianEncoder(nn.Module):
    """Convolutional encoder ``x -> (μ, log σ)`` of a diagonal Gaussian q(z | x).

    Args:
        latent_dim: size of z.
        image_size: side of the square input, one of 28, 32, 64.
        channels: input image channels.
        width: channels of the first feature map; later maps double it per stage.
        mask_aware: read a mask channel too (see the module docstring).

    Shapes:
        ``forward(x, mask=None)``: ``x`` ``(N, C, H, W)``, ``mask`` broadcastable to
        ``(N, 1, H, W)`` or ``(N, C, H, W)`` (1 = observed) -> ``(μ, log σ)``, each ``(N, latent_dim)``.
    """

    def __init__(self, latent_dim: int = 32, *, image_size: int = 28, channels: int = 1, width: int = 32,
                 mask_aware: bool = False) -> None:
        super().__init__()
        if image_size not in _PLANS:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
        if min(latent_dim, channels, width) < 1:
            raise ValueError(f"latent_dim, channels and width must be positive, got {latent_dim}, {channels}, {width}")
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.channels = channels
        self.width = width
        self.mask_aware = bool(mask_aware)
        last_side, stages = _PLANS[image_size]
        layers: list[nn.Module] = []
        features_in, features = channels + (1 if self.mask_aware else 0), width
        for _ in range(stages):
            layers += [nn.Conv2d(features_in, features, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            features_in, features = features, features * 2
        layers.append(nn.Conv2d(features_in, 2 * latent_dim, last_side, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(μ, log σ)`` of q(z | x), each ``(N, latent_dim)``; ``mask`` is read if mask-aware."""
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        if self.mask_aware:
            if mask is None:
                mask = torch.ones_like(x[:, :1])
            mask = mask.to(x)
            mask = mask.unsqueeze(0) if mask.dim() == 3 else mask
            mask = mask[:, :1].expand(x.shape[0], 1, *x.shape[2:])
            x = torch.cat([x * mask, mask], dim=1)
        out = self.net(x).reshape(x.shape[0], 2 * self.latent_dim)
        mean, log_std = out.chunk(2, dim=1)
        return mean, log_std.clamp(*LOG_STD_RANGE)
