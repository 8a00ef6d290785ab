"""The EBGAN family (Zhao, Mathieu & LeCun, ICLR 2017, arXiv:1609.03126): margin losses, the
pulling-away term, one training step, and the family's registration (``cogen train --family ebgan``).

With the energy ``D(x) = ‖Dec(Enc(x)) − x‖`` of :class:`~cogenerate.models.ebgan.EBGANAutoencoder`
and ``[·]⁺ = max(0, ·)`` (seeds/lecture-merging-vae-and-gans.txt, "EB-GAN training")::

    L_D = D(x) + [m − D(G(z))]⁺          L_G = D(G(z)) + w_PT · f_PT(S)

where ``S`` are the encoder's codes of the generated batch and the pulling-away term
(the paper's eq. 6, §2.4) is

    f_PT(S) = 1 / (N(N−1)) · Σ_i Σ_{j≠i} (S_iᵀ S_j / (‖S_i‖ ‖S_j‖))²

EBGAN-PT is this family with ``pt_weight = 0.1``, the paper's weight (§2.4, and §4 "EBGAN-PT").
The generator is a DCGAN generator; both nets are initialised like DCGAN's (N(0, 0.02)).

Constants:

- margin ``m = 10``: the margin of the paper's MNIST experiments, as listed by implementations
  that follow its appendix (e.g. "margin — MNIST: 10, CelebA: 20, LSUN: 80"); Fashion-MNIST has
  MNIST's size. Our energy is the unsquared Euclidean norm over the 784 pixels, so ``m = 10``
  is a root-mean-square reconstruction error of ``10/28 ≈ 0.36`` per pixel on a [-1, 1] scale.
- Adam with lr 2e-4, betas (0.5, 0.999): DCGAN's (Radford et al. 2016, §4). The EBGAN paper
  chose its learning rates by grid search (§4.1); we did not repeat that search.
- One discriminator step, then one generator step on the same fakes, per iteration (as DCGAN).

Sign and scale of the energy in co-generation: the model's ``log_ratio(x) = −D(x) / energy_scale``
(higher = more like the data); ``energy_scale`` is 1 after training and is fitted on the
validation split for the shipped models (``cogenerate.sampling.calibration``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from cogenerate.models.dcgan import DCGANGenerator, weights_init
from cogenerate.models.ebgan import IMAGE_SIZES, EBGANAutoencoder
from cogenerate.training.dcgan import DCGAN_BETAS
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.optim import adam

__all__ = [
    "EBGAN",
    "EBGAN_MARGIN",
    "EBGAN_PT_WEIGHT",
    "build_ebgan",
    "build_generator_and_autoencoder",
    "ebgan_discriminator_loss",
    "ebgan_generator_loss",
    "ebgan_step",
    "make_ebgan_optimizers",
    "pulling_away",
]

EBGAN_MARGIN = 10.0
"""Margin ``m`` of the discriminator's hinge (the paper's MNIST setting; see the module docstring)."""

EBGAN_PT_WEIGHT = 0.1
"""Weight of the pulling-away term in EBGAN-PT (Zhao et al. 2017, §2.4)."""


def ebgan_discriminator_loss(real_energy: Tensor, fake_energy: Tensor, *, margin: float = EBGAN_MARGIN) -> Tensor:
    """``L_D = mean(D(x)) + mean([m − D(G(z))]⁺)``.

    Args:
        real_energy: energies of real images, ``(N,)``.
        fake_energy: energies of generated images, ``(M,)`` (detached from the generator).
        margin: ``m``; fakes with energy above it add nothing.

    Returns:
        Scalar tensor.
    """
    return real_energy.mean() + (margin - fake_energy).clamp(min=0).mean()


def pulling_away(codes: Tensor) -> Tensor:
    """The pulling-away term ``f_PT(S)``: the mean squared cosine similarity of distinct pairs.

    Args:
        codes: ``S``, ``(N, s)`` with ``N >= 2``, one code per row.

    Returns:
        Scalar in ``[0, 1]``: 0 for mutually orthogonal codes, 1 when all are parallel.
    """
    n = codes.shape[0]
    if n < 2:
        raise ValueError(f"the pulling-away term needs at least 2 codes, got {n}")
    unit = codes / codes.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cosine = unit @ unit.T
    return (cosine.pow(2).sum() - cosine.diagonal().pow(2).sum()) / (n * (n - 1))


def ebgan_generator_loss(fake_energy: Tensor, codes: Tensor | None = None, *, pt_weight: float = 0.0) -> Tensor:
    """``L_G = mean(D(G(z))) + pt_weight · f_PT(S)`` (``codes`` needed when ``pt_weight != 0``).

    Args:
        fake_energy: energies of generated images, ``(M,)``.
        codes: the encoder's codes ``S`` of the same images, ``(M, s)``.
        pt_weight: weight of :func:`pulling_away` (0: plain EBGAN; 0.1: EBGAN-PT).

    Returns:
        Scalar tensor.
    """
    loss = fake_energy.mean()
    if pt_weight:
        if codes is None:
            raise ValueError("pt_weight != 0 needs the codes of the generated batch")
        loss = loss + pt_weight * pulling_away(codes)
    return loss


def ebgan_step(
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    real: Tensor,
    rng: torch.Generator,
    state: Any,
    *,
    margin: float = EBGAN_MARGIN,
    pt_weight: float = 0.0,
) -> tuple[Any, dict[str, float]]:
    """One EBGAN iteration: a discriminator step on :func:`ebgan_discriminator_loss`, then a
    generator step on :func:`ebgan_generator_loss` of the same fakes through the updated
    discriminator (no gradient reaches the discriminator in the generator step).

    Args:
        modules: ``"generator"`` ``(N, latent_dim) -> (N, C, H, W)`` and ``"energy"``, an
            :class:`~cogenerate.models.ebgan.EBGANAutoencoder`.
        optimizers: ``"generator"`` and ``"energy"``.
        real: ``(N, C, H, W)`` real batch on the modules' device.
        rng: source of ``z ~ N(0, I)``, ``(N, latent_dim)``.
        state: passed through.
        margin, pt_weight: see the module docstring.

    Returns:
        ``(state, losses)`` with ``loss_d``, ``loss_g``, ``energy_real``, ``energy_fake``
        (batch means before the steps) and ``pull_away`` (``f_PT`` of the fakes' codes).
    """
    generator, energy = modules["generator"], modules["energy"]
    z = torch.randn(real.shape[0], generator.latent_dim, generator=rng, device=rng.device, dtype=real.dtype)
    fake = generator(z.to(real.device))

    real_energy, fake_energy = energy(torch.cat([real, fake.detach()])).split([real.shape[0], fake.shape[0]])
    loss_d = ebgan_discriminator_loss(real_energy, fake_energy, margin=margin)
    optimizers["energy"].zero_grad(set_to_none=True)
    loss_d.backward()
    optimizers["energy"].step()

    codes = energy.encode(fake)
    generated_energy = (energy.decode(codes) - fake).flatten(1).norm(dim=1)
    loss_g = ebgan_generator_loss(generated_energy, codes, pt_weight=pt_weight)
    optimizers["generator"].zero_grad(set_to_none=True)
    loss_g.backward(inputs=list(generator.parameters()))
    optimizers["generator"].step()
    return state, {
        "loss_d": loss_d.item(), "loss_g": loss_g.item(), "energy_real": real_energy.mean().item(),
        "energy_fake": fake_energy.mean().item(), "pull_away": pulling_away(codes.detach()).item(),
    }


def _step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
          rng: torch.Generator, state: Any) -> tuple[Any, dict[str, float]]:
    """:func:`ebgan_step` with the run's constants, which the loop hands over as the step state."""
    return ebgan_step(modules, optimizers, real, rng, state, margin=float(state["margin"]),
                      pt_weight=float(state["pt_weight"]))


def build_ebgan(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator) -> dict[str, nn.Module]:
    """A DCGAN generator and an EBGAN autoencoder, every parameter drawn from ``rng`` (generator
    first) with :func:`~cogenerate.models.dcgan.weights_init`, on the CPU.

    Args:
        settings: ``latent_dim``, ``width``, ``code_dim``.
        image_shape: ``(C, H, W)``, ``H == W`` one of :data:`~cogenerate.models.ebgan.IMAGE_SIZES`.
        rng: a CPU generator.

    Returns:
        ``{"generator": DCGANGenerator, "energy": EBGANAutoencoder}``.
    """
    return build_generator_and_autoencoder(settings, image_shape, rng, EBGANAutoencoder, family="an EBGAN")


def build_generator_and_autoencoder(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator,
                                    autoencoder: type[EBGANAutoencoder], *, family: str) -> dict[str, nn.Module]:
    """A DCGAN generator and an ``autoencoder`` (EBGAN's layers, any energy), both with
    :func:`~cogenerate.models.dcgan.weights_init` from ``rng`` (generator first), on the CPU.

    Args:
        settings: ``latent_dim``, ``width``, ``code_dim``.
        image_shape: ``(C, H, W)``, ``H == W`` one of :data:`~cogenerate.models.ebgan.IMAGE_SIZES`.
        rng: a CPU generator.
        autoencoder: :class:`~cogenerate.models.ebgan.EBGANAutoencoder` or a subclass.
        family: how the error message names the model (``"an EBGAN"``).

    Returns:
        ``{"generator": DCGANGenerator, "energy": autoencoder}``.
    """
    channels, height, width_px = (int(v) for v in image_shape)
    if height != width_px or height not in IMAGE_SIZES:
        raise ValueError(f"{family} needs square images of side {', '.join(map(str, IMAGE_SIZES))}; "
                         f"got {height}×{width_px}")
    width = int(settings["width"])
    with torch.device("meta"):  # no default initialisation: it would draw from the global RNG
        parts: dict[str, nn.Module] = {
            "generator": DCGANGenerator(int(settings["latent_dim"]), image_size=height, channels=channels, width=width),
            "energy": autoencoder(image_size=height, channels=channels, width=width, code_dim=int(settings["code_dim"])),
        }
    for module in parts.values():
        module.to_empty(device="cpu")
        weights_init(module, rng=rng)
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.reset_running_stats()
    return parts


def make_ebgan_optimizers(modules: Mapping[str, nn.Module], settings: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """Adam for the generator and the autoencoder at ``settings["lr"]`` and DCGAN's betas."""
    lr = float(settings["lr"])
    return {role: adam(modules[role].parameters(), lr=lr, betas=DCGAN_BETAS) for role in ("generator", "energy")}


EBGAN = register_family(
    Family(
        name="ebgan",
        title="EBGAN",
        description="EBGAN (Zhao et al. 2017): autoencoder energy, margin loss; --pt-weight 0.1 for EBGAN-PT",
        build=build_ebgan,
        make_optimizers=make_ebgan_optimizers,
        step=_step,
        init_state=lambda modules, settings: {"margin": float(settings["margin"]),
                                              "pt_weight": float(settings["pt_weight"])},
        losses=("loss_d", "loss_g", "energy_real", "energy_fake", "pull_away"),
        options={
            "width": Option(64, "channels of G's last / the autoencoder's first feature map", minimum=1),
            "code_dim": Option(64, "EBGAN/BEGAN: size of the autoencoder's code", minimum=1),
            "margin": Option(EBGAN_MARGIN, "EBGAN margin m of the discriminator's hinge", positive=True),
            "pt_weight": Option(0.0, "EBGAN weight of the pulling-away term (0.1: EBGAN-PT)", minimum=0.0),
            "lr": Option(2e-4, "Adam learning rate of G and D (Radford et al. 2016, §4)", positive=True),
        },
    )
)
"""The EBGAN family, registered as ``"ebgan"`` (EBGAN-PT: ``pt_weight=0.1``)."""
