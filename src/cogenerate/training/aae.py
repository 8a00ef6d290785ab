"""The AAE family: an autoencoder whose code distribution is matched to the prior by a discriminator.

Makhzani, Shlens, Jaitly, Goodfellow & Frey, "Adversarial Autoencoders", 2016
(arXiv:1511.05644; seeds/lecture-merging-vae-and-gans.txt, "AAE structure": the KL term of
the VAE is switched to a GAN-like objective). Each mini-batch takes their two phases (§2):

1. *reconstruction*: encoder and decoder minimise the reconstruction error
   ``mean((x − G(z))²)``, z ~ q(z | x);
2. *regularisation*: the code discriminator C learns to tell prior codes z_p ~ p(z) (label 1)
   from encoded ones (label 0), then the encoder is updated to fool it (the non-saturating
   loss ``−log C(z)``, Goodfellow et al. 2014, §3).

q(z | x) is their "Gaussian posterior" choice (§2.1): the encoder's N(μ(x), σ(x)²) sampled by
reparameterisation, so it also serves ``complete()`` as a proposal. The code discriminator is
:class:`~cogenerate.models.aae.CodeDiscriminator` (two hidden layers of 1000 units, their App. A).
Adam with DCGAN's β1 = 0.5 (Radford et al. 2016, §4) at learning rate 2e-4 for every player;
the paper used SGD with momentum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from cogenerate.models.aae import CodeDiscriminator
from cogenerate.models.dcgan import DCGANGenerator
from cogenerate.models.vae import GaussianEncoder
from cogenerate.training.dcgan import DCGAN_BETAS, discriminator_loss, generator_loss
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.optim import adam
from cogenerate.training.vae import check_image_shape, initialise_parts, reparameterize

__all__ = ["AAE", "aae_step", "build_aae", "reconstruction_error"]


def reconstruction_error(x: Tensor, reconstruction: Tensor) -> Tensor:
    """Mean squared error per pixel, averaged over the batch: ``(N, ...), (N, ...) -> ()``."""
    return (x - reconstruction).pow(2).mean()


def aae_step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
             rng: torch.Generator, state: Any) -> tuple[Any, dict[str, float]]:
    """One mini-batch of both AAE phases on ``real`` ``(N, C, H, W)``; ε and z_p come from ``rng``.

    Returns:
        ``(state, {"recon", "loss_c", "loss_e"})``: reconstruction error, code discriminator's
        loss, encoder's adversarial loss.
    """
    encoder, generator, critic = modules["encoder"], modules["generator"], modules["code_discriminator"]
    mean, log_std = encoder(real)
    recon = reconstruction_error(real, generator(reparameterize(mean, log_std, rng=rng)))
    optimizers["autoencoder"].zero_grad(set_to_none=True)
    recon.backward()
    optimizers["autoencoder"].step()

    mean, log_std = encoder(real)
    z = reparameterize(mean, log_std, rng=rng)
    z_prior = torch.randn(z.shape, generator=rng, device=rng.device, dtype=z.dtype).to(z.device)
    loss_c = discriminator_loss(critic(z_prior), critic(z.detach()))
    optimizers["code_discriminator"].zero_grad(set_to_none=True)
    loss_c.backward()
    optimizers["code_discriminator"].step()

    loss_e = generator_loss(critic(z))
    optimizers["encoder"].zero_grad(set_to_none=True)
    loss_e.backward(inputs=list(encoder.parameters()))
    optimizers["encoder"].step()
    return state, {"recon": recon.item(), "loss_c": loss_c.item(), "loss_e": loss_e.item()}


def build_aae(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator) -> dict[str, nn.Module]:
    """DCGAN generator (decoder), Gaussian encoder and code discriminator, every weight from ``rng``."""
    channels, side = check_image_shape(image_shape)
    latent_dim, width = int(settings["latent_dim"]), int(settings["width"])
    with torch.device("meta"):
        parts: dict[str, nn.Module] = {
            "generator": DCGANGenerator(latent_dim, image_size=side, channels=channels, width=width),
            "encoder": GaussianEncoder(latent_dim, image_size=side, channels=channels, width=width),
            "code_discriminator": CodeDiscriminator(latent_dim, hidden=int(settings["code_hidden"])),
        }
    return initialise_parts(parts, rng=rng)


def make_aae_optimizers(modules: Mapping[str, nn.Module], settings: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """Adam at ``settings["lr"]``, DCGAN's betas: the autoencoder (reconstruction phase), the code
    discriminator, and the encoder (regularisation phase)."""
    lr = float(settings["lr"])
    return {
        "autoencoder": adam([*modules["encoder"].parameters(), *modules["generator"].parameters()], lr=lr,
                            betas=DCGAN_BETAS),
        "code_discriminator": adam(modules["code_discriminator"].parameters(), lr=lr, betas=DCGAN_BETAS),
        "encoder": adam(modules["encoder"].parameters(), lr=lr, betas=DCGAN_BETAS),
    }


AAE = register_family(
    Family(
        name="aae",
        title="AAE",
        description="Adversarial autoencoder (Makhzani et al. 2016): reconstruction + code discriminator",
        build=build_aae,
        make_optimizers=make_aae_optimizers,
        step=aae_step,
        losses=("recon", "loss_c", "loss_e"),
        options={
            "width": Option(32, "width of the decoder and encoder", minimum=1),
            "lr": Option(2e-4, "Adam learning rate (Radford et al. 2016, §4)", positive=True),
            "code_hidden": Option(1000, "AAE/alpha-GAN: hidden units of the code discriminator (Makhzani et al. App. A)",
                                  minimum=1),
        },
    )
)
"""The AAE family, registered as ``"aae"``."""
