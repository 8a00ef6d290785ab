"""The VAE family: the negative ELBO, one training step, and the family's registration.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014: maximise, per image,

    ELBO(x) = E_q(z|x)[log p(x | z)] − KL(q(z | x) ‖ p(z))          (eq. 3)

with p(z) = N(0, I), the Gaussian encoder q(z | x) = N(μ(x), σ(x)²) of
:class:`~cogenerate.models.vae.GaussianEncoder`, one reparameterised draw z = μ + σ·ε
(eq. 10, "L = 1" sample per image), and the KL in closed form (Appendix B):

    KL = ½ Σ_j (μ_j² + σ_j² − 1 − 2 log σ_j).

**Decoder likelihood.** p(x | z) = N(x; G(z), s² I) on the pixels in [-1, 1] (Kingma &
Welling, Appendix C.2, a Gaussian MLP decoder; here the DCGAN generator of
:mod:`cogenerate.models.dcgan` gives the mean). The standard deviation s is not learned as a
network output: by default it is the batch's maximum-likelihood value s² = mean squared error
(the "optimal σ" calibrated decoder of Rybkin, Daniilidis & Levine, "Simple and Effective VAE
Training with Calibrated Decoders", ICML 2021, §4), which balances reconstruction and KL
without a hand-set weight; ``decoder_std > 0`` fixes it instead. The value used is reported as
the ``decoder_std`` loss column, so a trained model says what s its ELBO assumed.

**Mask-aware encoder.** With ``mask_fraction > 0`` the encoder reads a mask channel and that
share of every batch is encoded from a randomly masked image (:func:`training_masks`) while
the decoder still reconstructs the whole image. The ELBO stays a valid lower bound for any q,
and the encoder learns q(z | x_o) ≈ p(z | x_o): the proposal ``complete()`` wants.

Training: Adam (Kingma & Ba 2015) at learning rate 1e-3 with its default β = (0.9, 0.999).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from cogenerate.models.dcgan import IMAGE_SIZES, DCGANGenerator, weights_init
from cogenerate.models.vae import GaussianEncoder
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.optim import adam

__all__ = [
    "VAE", "VAELoss", "build_encoder_and_decoder", "check_image_shape", "gaussian_kl", "gaussian_nll",
    "initialise_parts", "reparameterize", "training_masks", "vae_loss", "vae_step",
]

ADAM_BETAS: tuple[float, float] = (0.9, 0.999)
"""Adam's default moment decay rates (Kingma & Ba 2015, Algorithm 1)."""


class VAELoss(NamedTuple):
    """The negative ELBO of a batch and its parts (scalars: means over the batch)."""

    loss: Tensor  # −ELBO per image, averaged
    nll: Tensor  # −log p(x | z) per image, averaged
    kl: Tensor  # KL(q ‖ p) per image, averaged
    decoder_std: Tensor  # the decoder's s


def reparameterize(mean: Tensor, log_std: Tensor, *, rng: torch.Generator) -> Tensor:
    """One draw ``z = μ + σ·ε``, ε ~ N(0, I) from ``rng`` (Kingma & Welling 2014, eq. 10): ``(N, D)``."""
    eps = torch.randn(mean.shape, generator=rng, device=rng.device, dtype=mean.dtype).to(mean.device)
    return mean + log_std.exp() * eps


def gaussian_kl(mean: Tensor, log_std: Tensor) -> Tensor:
    """``KL(N(μ, σ²) ‖ N(0, I))`` per row, ``(N, D) -> (N,)`` (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mean.pow(2) + (2 * log_std).exp() - 1 - 2 * log_std).sum(-1)


def gaussian_nll(x: Tensor, mean: Tensor, std: Tensor | float) -> Tensor:
    """``−log N(x; mean, std² I)`` per image, summed over all but the first dim: ``(N, ...) -> (N,)``."""
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    count = x[0].numel()
    squares = (x - mean).pow(2).flatten(1).sum(1)
    return 0.5 * squares / std.pow(2) + count * (std.log() + 0.5 * math.log(2 * math.pi))


def vae_loss(x: Tensor, reconstruction: Tensor, mean: Tensor, log_std: Tensor, *,
             decoder_std: float | None = None) -> VAELoss:
    """The negative ELBO of a batch, one latent draw per image.

    Args:
        x: ``(N, C, H, W)`` images.
        reconstruction: ``(N, C, H, W)`` the decoder's mean G(z) at the drawn z.
        mean, log_std: ``(N, D)`` the encoder's q(z | x).
        decoder_std: the decoder's s; ``None`` uses the batch's maximum-likelihood value
            ``s² = mean((x − G(z))²)`` (Rybkin et al. 2021, §4), detached.

    Returns:
        A :class:`VAELoss`; ``loss = nll + kl``, each averaged over the batch.
    """
    if decoder_std is None:
        std = (x - reconstruction).detach().pow(2).mean().clamp_min(1e-12).sqrt()
    else:
        std = torch.as_tensor(float(decoder_std), dtype=x.dtype, device=x.device)
    nll = gaussian_nll(x, reconstruction, std).mean()
    kl = gaussian_kl(mean, log_std).mean()
    return VAELoss(nll + kl, nll, kl, std)


def training_masks(n: int, size: int, *, rng: torch.Generator, fraction: float) -> Tensor:
    """Random observation masks for training a mask-aware encoder: ``(n, 1, size, size)``, 1 = observed.

    Each image is masked with probability ``fraction``; a masked image hides, with equal
    odds, a random box (sides uniform on ``[size/4, 3·size/4]``, anywhere in the image) or
    one random half (top, bottom, left or right), which covers the protocol's boxes and halves.
    """
    u = torch.rand(n, 3, generator=rng, device=rng.device)
    rows = torch.arange(size, device=rng.device).reshape(1, size, 1)
    cols = torch.arange(size, device=rng.device).reshape(1, 1, size)
    low, high = size // 4, (3 * size) // 4
    sides = low + (torch.rand(n, 2, generator=rng, device=rng.device) * (high - low + 1)).floor().long()
    corner = (torch.rand(n, 2, generator=rng, device=rng.device) * (size - sides + 1)).floor().long()
    top, left = corner[:, 0].reshape(n, 1, 1), corner[:, 1].reshape(n, 1, 1)
    box = ((rows >= top) & (rows < top + sides[:, 0].reshape(n, 1, 1))
           & (cols >= left) & (cols < left + sides[:, 1].reshape(n, 1, 1)))
    side = (u[:, 2] * 4).floor().long().reshape(n, 1, 1)
    half = torch.where(side == 0, rows < size // 2, torch.where(side == 1, rows >= size // 2,
                       torch.where(side == 2, cols < size // 2, cols >= size // 2)))
    hidden = torch.where((u[:, 1] < 0.5).reshape(n, 1, 1), box, half) & (u[:, 0] < fraction).reshape(n, 1, 1)
    return (~hidden).float().unsqueeze(1)


def vae_step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
             rng: torch.Generator, state: Any, *, decoder_std: float | None = None,
             mask_fraction: float = 0.0) -> tuple[Any, dict[str, float]]:
    """One Adam step of encoder and decoder on the negative ELBO of ``real`` ``(N, C, H, W)``.

    Draws the masks (if ``mask_fraction > 0``) and ε from ``rng``; ``optimizers["vae"]`` holds
    both parts' parameters. Returns ``(state, {"loss", "nll", "kl", "decoder_std"})``.
    """
    encoder, generator = modules["encoder"], modules["generator"]
    mask = None
    if mask_fraction > 0:
        mask = training_masks(real.shape[0], real.shape[-1], rng=rng, fraction=mask_fraction).to(real)
    mean, log_std = encoder(real, mask)
    z = reparameterize(mean, log_std, rng=rng)
    parts = vae_loss(real, generator(z), mean, log_std, decoder_std=decoder_std)
    optimizers["vae"].zero_grad(set_to_none=True)
    parts.loss.backward()
    optimizers["vae"].step()
    return state, {name: float(value.detach()) for name, value in parts._asdict().items()}


def build_encoder_and_decoder(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator, *,
                              mask_aware: bool = False) -> dict[str, nn.Module]:
    """A DCGAN generator (the decoder) and a :class:`GaussianEncoder`, on the CPU, every weight
    from ``rng`` (N(0, 0.02), :func:`~cogenerate.models.dcgan.weights_init`), generator first."""
    channels, height = check_image_shape(image_shape)
    latent_dim, width = int(settings["latent_dim"]), int(settings["width"])
    with torch.device("meta"):  # no default initialisation: it would draw from the global RNG
        parts: dict[str, nn.Module] = {
            "generator": DCGANGenerator(latent_dim, image_size=height, channels=channels, width=width),
            "encoder": GaussianEncoder(latent_dim, image_size=height, channels=channels, width=width,
                                       mask_aware=mask_aware),
        }
    return initialise_parts(parts, rng=rng)


def initialise_parts(parts: dict[str, nn.Module], *, rng: torch.Generator) -> dict[str, nn.Module]:
    """Materialise modules built on the meta device on the CPU, in order, every weight from
    ``rng`` (N(0, 0.02), :func:`~cogenerate.models.dcgan.weights_init`), batch-norm statistics reset."""
    for module in parts.values():
        module.to_empty(device="cpu")
        weights_init(module, rng=rng)
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.reset_running_stats()
    return parts


def check_image_shape(image_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(channels, side)`` of a square image shape the DCGAN layer plans support; ValueError otherwise."""
    channels, height, width_px = (int(v) for v in image_shape)
    if height != width_px or height not in IMAGE_SIZES:
        raise ValueError(f"this family needs square images of side {', '.join(map(str, IMAGE_SIZES))}; "
                         f"got {height}×{width_px}")
    return channels, height


def _step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
          rng: torch.Generator, state: Any) -> tuple[Any, dict[str, float]]:
    """:func:`vae_step` with the run's constants, which the loop hands over as the step state."""
    std = float(state["decoder_std"])
    return vae_step(modules, optimizers, real, rng, state, decoder_std=std if std > 0 else None,
                    mask_fraction=float(state["mask_fraction"]))


def make_vae_optimizers(modules: Mapping[str, nn.Module], settings: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """One Adam over encoder and decoder at ``settings["lr"]`` and :data:`ADAM_BETAS`."""
    parameters = [*modules["encoder"].parameters(), *modules["generator"].parameters()]
    return {"vae": adam(parameters, lr=float(settings["lr"]), betas=ADAM_BETAS)}


VAE = register_family(
    Family(
        name="vae",
        title="VAE",
        description="VAE (Kingma & Welling 2014): Gaussian encoder, DCGAN decoder, Gaussian likelihood, Adam 1e-3",
        build=lambda settings, shape, rng: build_encoder_and_decoder(
            settings, shape, rng, mask_aware=float(settings["mask_fraction"]) > 0),
        make_optimizers=make_vae_optimizers,
        step=_step,
        init_state=lambda modules, settings: {"decoder_std": float(settings["decoder_std"]),
                                              "mask_fraction": float(settings["mask_fraction"])},
        losses=("loss", "nll", "kl", "decoder_std"),
        options={
            "width": Option(32, "width of the DCGAN decoder and of the encoder", minimum=1),
            "lr": Option(1e-3, "Adam learning rate (Kingma & Ba 2015)", positive=True),
            "decoder_std": Option(0.0, "std s of the Gaussian decoder; 0 = the batch's ML value (Rybkin et al. 2021)",
                                  minimum=0.0),
            "mask_fraction": Option(0.0, "share of each batch encoded from a randomly masked image "
                                         "(> 0: a mask-aware encoder)", minimum=0.0),
        },
    )
)
"""The VAE family, registered as ``"vae"``."""
