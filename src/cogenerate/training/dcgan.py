"""The DCGAN family: GAN losses, one training step, and the family's registration.

Losses (Goodfellow et al., "Generative Adversarial Networks", NeurIPS 2014, arXiv:1406.2661):
the discriminator maximises ``E[log D(x)] + E[log(1 − D(G(z)))]``; for the generator the paper
recommends maximising ``log D(G(z))`` instead of minimising ``log(1 − D(G(z)))``, which
saturates early in training ("non-saturating" loss; see also
seeds/lecture-gans-and-image-inpainting.txt). With ``D = sigmoid(logit)``:

    −log D        = softplus(−logit)
    −log(1 − D)   = softplus(logit)

which is what ``binary_cross_entropy_with_logits`` computes, stably for any logit.

Training (Radford et al., "Unsupervised Representation Learning with Deep Convolutional
GANs", ICLR 2016, §4): weights from N(0, 0.02) (:func:`cogenerate.models.dcgan.weights_init`),
Adam with learning rate 2e-4 and β1 = 0.5, one discriminator step and one generator step per
iteration on the same fakes. The architecture is :mod:`cogenerate.models.dcgan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cogenerate.models.dcgan import IMAGE_SIZES, DCGANDiscriminator, DCGANGenerator, weights_init
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.optim import adam

__all__ = [
    "DCGAN",
    "DCGAN_BETAS",
    "build_dcgan",
    "discriminator_loss",
    "gan_step",
    "generator_loss",
    "make_dcgan_optimizers",
]

DCGAN_BETAS: tuple[float, float] = (0.5, 0.999)
"""Adam betas of DCGAN training: β1 = 0.5 "helped stabilize training" (Radford et al. 2016, §4)."""


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


def gan_step(
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    real: Tensor,
    rng: torch.Generator,
    state: Any,
) -> tuple[Any, dict[str, float]]:
    """One GAN iteration: a discriminator step, then a non-saturating generator step.

    Draws ``z ~ N(0, I)`` of shape ``(N, latent_dim)`` from ``rng`` (on ``rng.device``, then
    moved to ``real``'s device), makes ``fake = G(z)``, takes one step of
    ``optimizers["discriminator"]`` on :func:`discriminator_loss` and one of
    ``optimizers["generator"]`` on :func:`generator_loss` of the same fakes (no gradient
    reaches the discriminator in the generator step).

    Args:
        modules: ``"generator"`` ``(N, latent_dim) -> (N, *x_shape)`` with a ``latent_dim``
            attribute, and ``"discriminator"`` ``(N, *x_shape) -> (N,)`` logits.
        optimizers: ``"generator"`` and ``"discriminator"``.
        real: ``(N, *x_shape)`` real batch on the modules' device and dtype.
        rng: source of the latents.
        state: passed through (the GAN step keeps no state).

    Returns:
        ``(state, {"loss_d": float, "loss_g": float})``.
    """
    generator, discriminator = modules["generator"], modules["discriminator"]
    z = torch.randn(real.shape[0], generator.latent_dim, generator=rng, device=rng.device, dtype=real.dtype)
    fake = generator(z.to(real.device))

    loss_d = discriminator_loss(discriminator(real), discriminator(fake.detach()))
    optimizers["discriminator"].zero_grad(set_to_none=True)
    loss_d.backward()
    optimizers["discriminator"].step()

    loss_g = generator_loss(discriminator(fake))
    optimizers["generator"].zero_grad(set_to_none=True)
    loss_g.backward(inputs=list(generator.parameters()))  # no gradients into the discriminator
    optimizers["generator"].step()
    return state, {"loss_d": loss_d.item(), "loss_g": loss_g.item()}


def build_dcgan(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator) -> dict[str, nn.Module]:
    """A freshly initialised DCGAN generator and discriminator on the CPU.

    Builds both on the meta device (no draw from the global RNG), then initialises every
    parameter with :func:`~cogenerate.models.dcgan.weights_init` from ``rng`` — generator first —
    and resets the batch-norm running statistics.

    Args:
        settings: ``latent_dim`` and ``width``.
        image_shape: ``(C, H, W)`` with ``H == W`` one of :data:`~cogenerate.models.dcgan.IMAGE_SIZES`.
        rng: a CPU generator.

    Returns:
        ``{"generator": DCGANGenerator, "discriminator": DCGANDiscriminator}`` in train mode.
    """
    channels, height, width_px = (int(v) for v in image_shape)
    if height != width_px or height not in IMAGE_SIZES:
        raise ValueError(f"a DCGAN needs square images of side {', '.join(map(str, IMAGE_SIZES))}; "
                         f"got {height}×{width_px}")
    width = int(settings["width"])
    with torch.device("meta"):  # no default initialisation: it would draw from the global RNG
        generator = DCGANGenerator(int(settings["latent_dim"]), image_size=height, channels=channels, width=width)
        discriminator = DCGANDiscriminator(image_size=height, channels=channels, width=width)
    parts: dict[str, nn.Module] = {}
    for role, module in (("generator", generator), ("discriminator", discriminator)):
        module.to_empty(device="cpu")
        weights_init(module, rng=rng)  # every parameter; batch-norm statistics reset below
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.reset_running_stats()
        parts[role] = module
    return parts


def make_dcgan_optimizers(modules: Mapping[str, nn.Module], settings: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """Adam for the generator and the discriminator, both at ``settings["lr"]`` and :data:`DCGAN_BETAS`."""
    lr = float(settings["lr"])
    return {role: adam(modules[role].parameters(), lr=lr, betas=DCGAN_BETAS) for role in ("generator", "discriminator")}


DCGAN = register_family(
    Family(
        name="dcgan",
        title="DCGAN",
        description="DCGAN (Radford et al. 2016): non-saturating GAN loss, Adam lr 2e-4, betas (0.5, 0.999)",
        build=build_dcgan,
        make_optimizers=make_dcgan_optimizers,
        step=gan_step,
        losses=("loss_d", "loss_g"),
        options={
            "width": Option(64, "DCGAN width: channels of G's last / D's first feature map", minimum=1),
            "lr": Option(2e-4, "Adam learning rate of G and D (Radford et al. 2016, §4)", positive=True),
        },
    )
)
"""The DCGAN family, registered as ``"dcgan"``."""
