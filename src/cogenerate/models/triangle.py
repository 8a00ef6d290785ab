"""The divergence triangle's three networks (Han, Nijkamp, Fang, Hill, Zhu & Wu, "Divergence
Triangle for Joint Training of Generator Model, Energy-based Model, and Inference Model",
CVPR 2019, arXiv:1812.10907; seeds/divergence-triangle-han-et-al.txt).

The three parts of a triangle model, by role:

``generator`` — g_θ, the generator model p_θ(x | z) = N(g_θ(z), s²I), z ~ p(z) = N(0, I):
    :class:`~cogenerate.models.dcgan.DCGANGenerator` (transposed convolutions, batch norm,
    ReLU, tanh output), the same network as the authors' ``_netG`` in ``train_cifar10.py`` of
    the official code (github.com/enijkamp/triangle) up to its last layer, laid out for 28 px.
``energy`` — E_α(x) = −f_α(x), the energy of the energy-based model π_α(x) ∝ exp(f_α(x)):
    :class:`TriangleEnergy` below. Lower = more like the data, the convention of the
    ``energy`` role (:class:`~cogenerate.models.base.GenerativeModel`), so the model's
    ``log_ratio(x) = −E_α(x) / energy_scale`` is f_α(x) at ``energy_scale = 1``, the
    unnormalised log density of π_α that the triangle learns.
``encoder`` — q_φ(z | x) = N(μ_φ(x), σ_φ(x)²), the inference model:
    :class:`~cogenerate.models.vae.GaussianEncoder` (strided convolutions, LeakyReLU(0.2), no
    batch norm), the layout of the authors' ``_netI`` (a mirror of the generator with two
    heads, μ and a log scale); theirs outputs log σ², ours log σ.

**The paper's Table VI** (its MNIST / Fashion-MNIST structures) is not in the text we have
(the seed lost its tables) and the official code ships only the CIFAR-10 script, so the 28 px
layouts here are that script's networks scaled down: the DCGAN plan of
:mod:`cogenerate.models.dcgan` for g and q (7×7 → 14×14 → 28×28), and for f the script's
``_netE`` (a stride-1 3×3 convolution, then stride-2 4×4 convolutions doubling the channels,
LeakyReLU(0.2) throughout, no batch norm, a last convolution over the whole feature map to one
number), with two stride-2 stages instead of three.

Architecture only: the losses are in :mod:`cogenerate.training.triangle`.
"""

from __future__ import annotations

from torch import Tensor, nn

from cogenerate.models.registry import register_architecture

__all__ = ["IMAGE_SIZES", "TriangleEnergy"]

IMAGE_SIZES: tuple[int, ...] = (28, 32, 64)
"""Image sides the layer plan supports (those of :mod:`cogenerate.models.dcgan`)."""

# image side -> (side of the last feature map, number of stride-2 stages), as in models/dcgan.py
_PLANS: dict[int, tuple[int, int]] = {64: (4, 4), 32: (4, 3), 28: (7, 2)}


@register_architecture("triangle-energy")
class TriangleEnergy(nn.Module):
    """The energy E_α(x) = −f_α(x) of the divergence triangle's energy-based model.

    Layer plan with ``w = width`` for 28 px (32 and 64 px add stride-2 stages to a 4×4 map)::

        x 28×28×C -> conv3 s1 28×28×w -> conv4 s2 14×14×2w -> conv4 s2 7×7×4w -> conv7 -> 1

    LeakyReLU(0.2) after every hidden convolution, no batch norm (an image's energy does not
    depend on its batch: the landscape is mapped and co-generation evaluates one image at a
    time), and a linear output (the official code's ``energy_form='identity'``).

    Args:
        image_size: side of the square input, one of :data:`IMAGE_SIZES`.
        channels: input channels.
        width: channels of the first feature map; each stride-2 stage doubles them.

    Shapes:
        ``forward(x)``: ``(N, C, H, W)`` -> energies ``(N,)`` (any real number; lower = more
        like the data).
    """

    def __init__(self, *, image_size: int = 28, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        if image_size not in _PLANS:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
        if channels < 1 or width < 1:
            raise ValueError(f"channels and width must be positive, got {channels}, {width}")
        self.image_size, self.channels, self.width = image_size, channels, width
        last_side, stages = _PLANS[image_size]
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
        features = width
        for _ in range(stages):
            layers += [nn.Conv2d(features, 2 * features, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            features *= 2
        layers.append(nn.Conv2d(features, 1, last_side, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Energies ``E_α(x) = −f_α(x)``: ``(N, C, H, W)`` -> ``(N,)``."""
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        return self.net(x).reshape(x.shape[0])
