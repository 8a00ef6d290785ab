"""The VAE-GAN family: a VAE whose reconstruction error is measured in a discriminator's features.

Larsen, Sønderby, Larochelle & Winther, "Autoencoding beyond pixels using a learned
similarity metric", ICML 2016 (seeds/lecture-merging-vae-and-gans.txt, "VAE+GAN"). With
``Dis_l(x)`` the l-th hidden layer of the discriminator (here the last hidden layer of the
DCGAN discriminator, :func:`discriminator_features`), x̃ = Dec(z), z ~ q(z | x), and
z_p ~ p(z):

    L_prior = KL(q(z | x) ‖ p(z))
    L_llike = −log N(Dis_l(x); Dis_l(x̃), I) = ½ ‖Dis_l(x) − Dis_l(x̃)‖² + const       (eq. 6)
    L_GAN   = log Dis(x) + log(1 − Dis(Dec(z_p))) + log(1 − Dis(x̃))                    (eq. 7)

and the updates of their Algorithm 1: the encoder on L_prior + L_llike, the decoder on
γ·L_llike and the GAN loss, the discriminator on the GAN loss. In the form used here the
discriminator minimises the binary cross-entropy of real against both kinds of fakes
(−L_GAN), and the decoder minimises ``γ·L_llike − log Dis(x̃) − log Dis(Dec(z_p))``: the
non-saturating generator loss (Goodfellow et al. 2014, §3), as the project's other GANs,
where the authors' code ascends the discriminator's loss and skips updates to balance the
players. x and x̃ pass through Dis_l in one batch (as in the authors' code), so batch norm
treats them alike.

γ = 1e-5: the weight of the reconstruction against the GAN loss in the decoder's update,
``recon_vs_gan_weight=1e-5`` of the authors' code (andersbll/autoencoding_beyond_pixels,
celeba_aegan.py; the decoder's gradient is w·∇L_llike − (1 − w)·∇L_GAN there, so γ = w/(1 − w)),
both losses summed over features and averaged over the batch here. Adam with DCGAN's
learning rate 2e-4 and β1 = 0.5 (Radford et al. 2016, §4) for the three networks; the paper
used RMSProp at 3e-4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator
from cogenerate.models.vae import GaussianEncoder
from cogenerate.training.dcgan import DCGAN_BETAS, generator_loss
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.optim import adam
from cogenerate.training.vae import check_image_shape, gaussian_kl, initialise_parts, reparameterize

__all__ = ["VAE_GAN", "VAE_GAN_GAMMA", "discriminator_features", "feature_nll", "vae_gan_step"]

VAE_GAN_GAMMA = 1e-5
"""γ of the decoder's update (the authors' ``recon_vs_gan_weight``, celeba_aegan.py)."""


def discriminator_features(discriminator: DCGANDiscriminator, x: Tensor) -> Tensor:
    """Dis_l(x): the DCGAN discriminator's last hidden layer (all but its final convolution),
    ``(N, C, H, W) -> (N, F)``."""
    return discriminator.net[:-1](x).flatten(1)


def feature_nll(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """L_llike per image, ``½ ‖Dis_l(x) − Dis_l(x̃)‖²`` (a unit-variance Gaussian, constant dropped):
    ``(N, F), (N, F) -> (N,)``."""
    return 0.5 * (real_features - fake_features).pow(2).sum(1)


def vae_gan_step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
                 rng: torch.Generator, state: Any, *, llike_weight: float = VAE_GAN_GAMMA) -> tuple[Any, dict[str, float]]:
    """One iteration of Larsen et al.'s Algorithm 1 (see the module docstring) on ``real`` ``(N, C, H, W)``.

    Draws ε (the encoder's sample) and z_p from ``rng``. Updates the discriminator first, then
    the encoder and the decoder on the features of the updated discriminator.

    Returns:
        ``(state, {"loss_d", "loss_g", "llike", "kl"})``; ``loss_g`` is the decoder's GAN part.
    """
    encoder, generator, discriminator = modules["encoder"], modules["generator"], modules["discriminator"]
    mean, log_std = encoder(real)
    z = reparameterize(mean, log_std, rng=rng)
    z_prior = torch.randn(z.shape, generator=rng, device=rng.device, dtype=z.dtype).to(z.device)
    reconstruction, sample = generator(z), generator(z_prior)

    fakes = torch.cat([reconstruction, sample]).detach()
    loss_d = F.softplus(-discriminator(real)).mean() + 2 * F.softplus(discriminator(fakes)).mean()
    optimizers["discriminator"].zero_grad(set_to_none=True)
    loss_d.backward()
    optimizers["discriminator"].step()

    features = discriminator_features(discriminator, torch.cat([real, reconstruction]))
    llike = feature_nll(features[: real.shape[0]], features[real.shape[0]:]).mean()
    kl = gaussian_kl(mean, log_std).mean()
    loss_g = generator_loss(discriminator(reconstruction)) + generator_loss(discriminator(sample))
    optimizers["encoder"].zero_grad(set_to_none=True)
    optimizers["generator"].zero_grad(set_to_none=True)
    (kl + llike).backward(inputs=list(encoder.parameters()), retain_graph=True)
    (llike_weight * llike + loss_g).backward(inputs=list(generator.parameters()))
    optimizers["encoder"].step()
    optimizers["generator"].step()
    return state, {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "llike": llike.item(), "kl": kl.item()}


def build_vae_gan(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator) -> dict[str, nn.Module]:
    """DCGAN generator (decoder), Gaussian encoder and DCGAN discriminator, every weight from
    ``rng`` in that order (:func:`~cogenerate.training.vae.initialise_parts`)."""
    channels, side = check_image_shape(image_shape)
    latent_dim, width = int(settings["latent_dim"]), int(settings["width"])
    with torch.device("meta"):
        parts: dict[str, nn.Module] = {
            "generator": DCGANGenerator(latent_dim, image_size=side, channels=channels, width=width),
            "encoder": GaussianEncoder(latent_dim, image_size=side, channels=channels, width=width),
            "discriminator": DCGANDiscriminator(image_size=side, channels=channels, width=width),
        }
    return initialise_parts(parts, rng=rng)


def make_vae_gan_optimizers(modules: Mapping[str, nn.Module], settings: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """Adam at ``settings["lr"]`` and DCGAN's betas for encoder, generator and discriminator."""
    lr = float(settings["lr"])
    return {role: adam(modules[role].parameters(), lr=lr, betas=DCGAN_BETAS)
            for role in ("encoder", "generator", "discriminator")}


VAE_GAN = register_family(
    Family(
        name="vae-gan",
        title="VAE-GAN",
        description="VAE-GAN (Larsen et al. 2016): reconstruction in discriminator features, gamma 1e-5",
        build=build_vae_gan,
        make_optimizers=make_vae_gan_optimizers,
        step=lambda modules, optimizers, real, rng, state: vae_gan_step(
            modules, optimizers, real, rng, state, llike_weight=float(state["llike_weight"])),
        init_state=lambda modules, settings: {"llike_weight": float(settings["llike_weight"])},
        losses=("loss_d", "loss_g", "llike", "kl"),
        options={
            "width": Option(32, "width of the decoder, encoder and discriminator", minimum=1),
            "lr": Option(2e-4, "Adam learning rate (Radford et al. 2016, §4)", positive=True),
            "llike_weight": Option(VAE_GAN_GAMMA, "VAE-GAN γ: weight of the feature reconstruction in the decoder's loss",
                            minimum=0.0),
        },
    )
)
"""The VAE-GAN family, registered as ``"vae-gan"``."""
