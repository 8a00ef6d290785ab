"""The α-GAN family: encoder, generator, image discriminator, code discriminator, L1 reconstruction.

Rosca, Lakshminarayanan, Warde-Farley & Mohamed, "Variational Approaches for Auto-Encoding
Generative Adversarial Networks", 2017 (arXiv:1706.04987), Algorithm 1; the hybrid loss of
seeds/lecture-bayesian-methods-in-gans.txt ("Full hybrid loss"):

    E_q(z|x)[ −λ‖x − G(z)‖₁ + log (1 − D(G(z))) / D(G(z)) + log C(z) / (1 − C(z)) ]

a Laplace likelihood (the L1 term) plus the density-ratio estimates of the likelihood
(discriminator D on images) and of the KL (code discriminator C on codes). With logits
``d = log D/(1 − D)`` and ``c = log C/(1 − C)``, x̂ = G(ẑ), ẑ ~ q(z | x), x_p = G(z_p), z_p ~ p(z):

- encoder:   ``λ·L1(x, x̂) − c(ẑ)``
- generator: ``λ·L1(x, x̂) − d(x̂) − d(x_p)``
- D:  ``−log D(x) − log(1 − D(x̂)) − log(1 − D(x_p))``
- C:  ``−log C(z_p) − log(1 − C(ẑ))``

each network updated by its own optimizer on its own loss (Algorithm 1; the authors confirmed
separate updates, as reported by the unofficial implementation victor-shepardson/alpha-GAN).
The paper gives no value of λ in the text; λ = 10 on the per-pixel mean L1 is the example of
that implementation (README: ``AlphaGAN(..., lambd=10)``, ``rec_loss = lambd·mean|x̂ − x|``).
The encoder is Gaussian (reparameterised), so it also serves ``complete()`` as a proposal.
Adam with DCGAN's learning rate 2e-4 and β1 = 0.5 (Radford et al. 2016, §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cogenerate.models.aae import CodeDiscriminator
from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator
from cogenerate.models.vae import GaussianEncoder
from cogenerate.training.dcgan import DCGAN_BETAS, discriminator_loss
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.optim import adam
from cogenerate.training.vae import check_image_shape, initialise_parts, reparameterize

__all__ = ["ALPHA_GAN", "ALPHA_GAN_LAMBDA", "alpha_gan_step", "l1_reconstruction"]

ALPHA_GAN_LAMBDA = 10.0
"""λ on the per-pixel mean L1 (victor-shepardson/alpha-GAN README's example; see the module docstring)."""

ROLES = ("encoder", "generator", "discriminator", "code_discriminator")


def l1_reconstruction(x: Tensor, reconstruction: Tensor) -> Tensor:
    """Mean absolute error per pixel, averaged over the batch: ``(N, ...), (N, ...) -> ()``."""
    return (x - reconstruction).abs().mean()


def alpha_gan_step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
                   rng: torch.Generator, state: Any, *, weight: float = ALPHA_GAN_LAMBDA) -> tuple[Any, dict[str, float]]:
    """One iteration of Rosca et al.'s Algorithm 1 on ``real`` ``(N, C, H, W)``; ε and z_p from ``rng``.

    Every loss is computed on the same draws before any update; then each network takes one
    step on its own loss (gradients restricted to its parameters).

    Returns:
        ``(state, {"loss_d", "loss_c", "loss_g", "loss_e", "l1"})``.
    """
    encoder, generator = modules["encoder"], modules["generator"]
    discriminator, critic = modules["discriminator"], modules["code_discriminator"]
    mean, log_std = encoder(real)
    z = reparameterize(mean, log_std, rng=rng)
    z_prior = torch.randn(z.shape, generator=rng, device=rng.device, dtype=z.dtype).to(z.device)
    reconstruction, sample = generator(z), generator(z_prior)
    l1 = l1_reconstruction(real, reconstruction)

    fake_logits = discriminator(torch.cat([reconstruction, sample])).reshape(2, -1)  # (x̂, x_p) × N
    loss_d = F.softplus(-discriminator(real)).mean() + F.softplus(fake_logits).mean(1).sum()
    loss_g = weight * l1 - fake_logits.mean(1).sum()
    loss_c = discriminator_loss(critic(z_prior), critic(z.detach()))
    loss_e = weight * l1 - critic(z).mean()

    for role in ROLES:
        optimizers[role].zero_grad(set_to_none=True)
    loss_e.backward(inputs=list(encoder.parameters()), retain_graph=True)
    loss_g.backward(inputs=list(generator.parameters()), retain_graph=True)
    loss_d.backward(inputs=list(discriminator.parameters()))
    loss_c.backward(inputs=list(critic.parameters()))
    for role in ROLES:
        optimizers[role].step()
    return state, {"loss_d": loss_d.item(), "loss_c": loss_c.item(), "loss_g": loss_g.item(), "loss_e": loss_e.item(),
                   "l1": l1.item()}


def build_alpha_gan(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator) -> dict[str, nn.Module]:
    """DCGAN generator, Gaussian encoder, DCGAN discriminator, code discriminator; weights from ``rng``."""
    channels, side = check_image_shape(image_shape)
    latent_dim, width = int(settings["latent_dim"]), int(settings["width"])
    with torch.device("meta"):
        parts: dict[str, nn.Module] = {
            "generator": DCGANGenerator(latent_dim, image_size=side, channels=channels, width=width),
            "encoder": GaussianEncoder(latent_dim, image_size=side, channels=channels, width=width),
            "discriminator": DCGANDiscriminator(image_size=side, channels=channels, width=width),
            "code_discriminator": CodeDiscriminator(latent_dim, hidden=int(settings["code_hidden"])),
        }
    return initialise_parts(parts, rng=rng)


ALPHA_GAN = register_family(
    Family(
        name="alpha-gan",
        title="α-GAN",
        description="alpha-GAN (Rosca et al. 2017): L1 reconstruction + image and code discriminators",
        build=build_alpha_gan,
        make_optimizers=lambda modules, settings: {
            role: adam(modules[role].parameters(), lr=float(settings["lr"]), betas=DCGAN_BETAS) for role in ROLES},
        step=lambda modules, optimizers, real, rng, state: alpha_gan_step(
            modules, optimizers, real, rng, state, weight=float(state["l1_weight"])),
        init_state=lambda modules, settings: {"l1_weight": float(settings["l1_weight"])},
        losses=("loss_d", "loss_c", "loss_g", "loss_e", "l1"),
        options={
            "width": Option(32, "width of the generator, encoder and discriminator", minimum=1),
            "lr": Option(2e-4, "Adam learning rate (Radford et al. 2016, §4)", positive=True),
            "code_hidden": Option(1000, "AAE/alpha-GAN: hidden units of the code discriminator (Makhzani et al. App. A)",
                                  minimum=1),
            "l1_weight": Option(ALPHA_GAN_LAMBDA, "alpha-GAN λ: weight of the mean L1 reconstruction", minimum=0.0),
        },
    )
)
"""The α-GAN family, registered as ``"alpha-gan"``."""
