"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2016) for 28, 32 and 64 px.

The conventions of the paper, as summarised in the inpainting lecture
(``seeds/lecture-gans-and-image-inpainting.txt``, "Deep convolutional generative adversarial
nets"): no pooling and no fully connected hidden layers, fractionally strided (transposed)
convolutions in G and strided convolutions in D, batch norm in both except on D's first
layer (and G's output layer), ReLU in G with a ``tanh`` output, LeakyReLU(0.2) in D, weights
drawn from N(0, 0.02) (:func:`weights_init`). Convolutions followed by batch norm carry no
bias, as in the reference PyTorch implementation.

Layer plan with ``w = width`` (``k4 s2`` = kernel 4, stride 2, padding 1, doubling the side)::

    64 px  G: z -> 4×4×8w -> 8×8×4w -> 16×16×2w -> 32×32×w -> 64×64×C
    32 px  G: z -> 4×4×4w -> 8×8×2w -> 16×16×w  -> 32×32×C
    28 px  G: z -> 7×7×2w -> 14×14×w -> 28×28×C

The first layer is a transposed convolution of the ``1×1`` latent with a kernel of the first
feature map's side (4 or 7), i.e. the paper's projection of z. D mirrors G with strided
convolutions and ends with a convolution over the whole last feature map to one logit.

Architecture only: initialise with :func:`weights_init`, train with ``cogenerate.training``.
Use ``generator.eval()`` when sampling latents, so batch norm uses its running statistics
and each image does not depend on the rest of the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cogenerate.models.registry import register_architecture

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "weights_init", "IMAGE_SIZES"]

IMAGE_SIZES: tuple[int, ...] = (28, 32, 64)
"""Image sides the DCGAN layer plans support."""

# image side -> (side of the first feature map, number of stride-2 stages after it)
_PLANS: dict[int, tuple[int, int]] = {64: (4, 4), 32: (4, 3), 28: (7, 2)}


def _check(image_size: int, channels: int, width: int) -> tuple[int, int]:
    if image_size not in _PLANS:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    if width < 1:
        raise ValueError(f"width must be positive, got {width}")
    return _PLANS[image_size]


@register_architecture("dcgan-generator")
class DCGANGenerator(nn.Module):
    """DCGAN generator ``G: R^latent_dim -> [-1, 1]^(C×H×W)``.

    Args:
        latent_dim: dimension of ``z`` (100 in the DCGAN paper); read by the samplers.
        image_size: side of the square output, one of :data:`IMAGE_SIZES`.
        channels: output channels, 1 (grey) or 3 (RGB).
        width: channels of the last hidden feature map; earlier maps double it per stage.

    Shapes:
        ``forward(z)``: ``(..., latent_dim)`` -> ``(..., channels, image_size, image_size)``,
        values in ``[-1, 1]``.
    """

    def __init__(self, latent_dim: int = 100, *, image_size: int = 64, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        first_side, stages = _check(image_size, channels, width)
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.channels = channels
        self.width = width

        features = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, features, first_side, 1, 0, bias=False),
            nn.BatchNorm2d(features),
            nn.ReLU(inplace=True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(features, features // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(features // 2),
                nn.ReLU(inplace=True),
            ]
            features //= 2
        layers += [nn.ConvTranspose2d(features, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """Map latents ``(..., latent_dim)`` to images ``(..., C, H, W)`` in ``[-1, 1]``."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (..., {self.latent_dim}), got {tuple(z.shape)}")
        lead = z.shape[:-1]
        x = self.net(z.reshape(-1, self.latent_dim, 1, 1))
        return x.reshape(*lead, *x.shape[1:])


@register_architecture("dcgan-discriminator")
class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator ``D: [-1, 1]^(C×H×W) -> R`` returning logits (pre-sigmoid).

    Args:
        image_size: side of the square input, one of :data:`IMAGE_SIZES`.
        channels: input channels, 1 (grey) or 3 (RGB).
        width: channels of the first feature map; later maps double it per stage.

    Shapes:
        ``forward(x)``: ``(N, channels, image_size, image_size)`` -> logits ``(N,)``.
    """

    def __init__(self, *, image_size: int = 64, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        last_side, stages = _check(image_size, channels, width)
        self.image_size = image_size
        self.channels = channels
        self.width = width

        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, 2, 1, bias=False),  # no batch norm on the first layer
            nn.LeakyReLU(0.2, inplace=True),
        ]
        features = width
        for _ in range(stages - 1):
            layers += [
                nn.Conv2d(features, features * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(features * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            features *= 2
        layers.append(nn.Conv2d(features, 1, last_side, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map images ``(N, C, H, W)`` to logits ``(N,)``."""
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        return self.net(x).reshape(x.shape[0])


def weights_init(module: nn.Module, *, rng: torch.Generator) -> nn.Module:
    """DCGAN initialisation of ``module`` and all its submodules, in place.

    Convolution and transposed-convolution weights ~ N(0, 0.02); batch-norm scales
    ~ N(1, 0.02) and shifts = 0; biases = 0 (Radford et al., 2016, §4: "All weights were
    initialized from a zero-centered Normal distribution with standard deviation 0.02").
    Call it once on the whole model; submodules are visited in ``module.modules()`` order, so
    the same ``rng`` state gives the same weights.

    Args:
        module: any ``nn.Module`` (typically a :class:`DCGANGenerator` or
            :class:`DCGANDiscriminator`).
        rng: the random generator to draw from; it must live on the parameters' device.

    Returns:
        ``module`` itself.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02, generator=rng)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.normal_(m.weight, 1.0, 0.02, generator=rng)
                nn.init.zeros_(m.bias)
    return module
