"""The BEGAN family (Berthelot, Schumm & Metz 2017, arXiv:1703.10717): the losses, the ``k_t``
control, the convergence measure, one training step and the registration (``cogen train --family began``).

With ``L(v) = mean |v − D(v)|`` the autoencoder's L1 reconstruction error
(:class:`~cogenerate.models.began.BEGANAutoencoder`; seeds/lecture-merging-vae-and-gans.txt,
"BEGAN formulation"; the paper's eq. (4))::

    L_D = L(x) − k_t · L(G(z_D))
    L_G = L(G(z_G))
    k_{t+1} = clip(k_t + λ_k (γ L(x) − L(G(z_G))), 0, 1)
    M_global = L(x) + |γ L(x) − L(G(z_G))|

where each ``L(·)`` is a batch mean. ``k_t`` is the step state (saved in checkpoints), and
``k`` and ``M_global`` are logged with the losses at every iteration. Trained on several
processes, the control reads ``L(x)`` and ``L(G(z_G))`` averaged over them (the global
batch's means), so ``k_t`` stays the same everywhere.

Constants (paper, §3.4–3.5 and §4.1): ``k_0 = 0``; ``λ_k = 0.001``; diversity ratio
``γ = 0.5`` (the issue's default; the paper shows γ from 0.3 to 0.7); Adam at learning rate
1e-4 (the paper's range is [5e-5, 1e-4]; its decay by 2 when M_global stalls is not done here);
the paper does not state Adam's betas, we use DCGAN's (0.5, 0.999). The discriminator and
generator losses are computed on the same parameters and both nets step together
("simultaneously", as in the paper), ``z_D`` and ``z_G`` being independent N(0, I) draws.
Weights are drawn from ``rng`` with Kaiming-normal initialisation for the ELU layers
(He et al. 2015; the paper does not state its initialisation).

Sign and scale of the energy in co-generation: ``log_ratio(x) = −L(x) / energy_scale``;
``energy_scale`` is 1 after training and fitted on the validation split for the shipped model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from cogenerate.distributed import mean_over_ranks
from cogenerate.models.began import IMAGE_SIZES, BEGANAutoencoder, BEGANConvAutoencoder, BEGANGenerator
from cogenerate.training.dcgan import DCGAN_BETAS
from cogenerate.training.ebgan import build_generator_and_autoencoder
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.optim import adam

__all__ = [
    "ARCHITECTURES",
    "BEGAN",
    "BEGAN_GAMMA",
    "BEGAN_LAMBDA_K",
    "began_discriminator_loss",
    "began_generator_loss",
    "began_step",
    "build_began",
    "convergence_measure",
    "init_kaiming",
    "make_began_optimizers",
    "update_k",
]

BEGAN_GAMMA = 0.5
"""Diversity ratio γ = E[L(G(z))] / E[L(x)] the control aims at (Berthelot et al. 2017, §3.4)."""

BEGAN_LAMBDA_K = 0.001
"""Proportional gain λ_k of the k_t control (Berthelot et al. 2017, §3.4: "λ_k = 0.001")."""


ARCHITECTURES: tuple[str, ...] = ("dcgan", "paper")
"""``--architecture`` choices: ``"paper"``, the paper's Figure 1 (ELU convolutions, nearest up-sampling,
Kaiming initialisation); ``"dcgan"`` (the default), the DCGAN generator and EBGAN's convolutional
autoencoder scored with the L1 energy, DCGAN's initialisation. At this machine's budgets the paper's
architecture collapsed to one grey mode with ``k_t`` ≈ 0 and ``"dcgan"`` did not (docs/sampling.md)."""


def began_discriminator_loss(real_energy: Tensor, fake_energy: Tensor, k: float) -> Tensor:
    """``L_D = mean L(x) − k · mean L(G(z_D))``; ``real_energy`` ``(N,)``, ``fake_energy`` ``(M,)``."""
    return real_energy.mean() - k * fake_energy.mean()


def began_generator_loss(fake_energy: Tensor) -> Tensor:
    """``L_G = mean L(G(z_G))``, ``(M,)`` -> scalar."""
    return fake_energy.mean()


def update_k(k: float, real_loss: float, fake_loss: float, *, gamma: float = BEGAN_GAMMA,
             lambda_k: float = BEGAN_LAMBDA_K) -> float:
    """``clip(k + λ_k (γ L(x) − L(G(z_G))), 0, 1)`` from the batch means ``L(x)`` and ``L(G(z_G))``."""
    return min(1.0, max(0.0, k + lambda_k * (gamma * real_loss - fake_loss)))


def convergence_measure(real_loss: float, fake_loss: float, *, gamma: float = BEGAN_GAMMA) -> float:
    """``M_global = L(x) + |γ L(x) − L(G(z_G))|`` (Berthelot et al. 2017, §3.4.1)."""
    return real_loss + abs(gamma * real_loss - fake_loss)


def began_step(
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    real: Tensor,
    rng: torch.Generator,
    state: Mapping[str, float],
) -> tuple[dict[str, float], dict[str, float]]:
    """One BEGAN iteration: both losses at the current weights, both nets step, then ``k`` moves.

    Args:
        modules: ``"generator"`` (a :class:`~cogenerate.models.began.BEGANGenerator`) and
            ``"energy"`` (a :class:`~cogenerate.models.began.BEGANAutoencoder`).
        optimizers: ``"generator"`` and ``"energy"``.
        real: ``(N, C, H, W)``.
        rng: source of ``z_D`` and ``z_G``, each ``(N, latent_dim)``.
        state: ``{"k": k_t, "gamma": γ, "lambda_k": λ_k}``.

    Returns:
        ``(state with k_{t+1}, losses)``; losses: ``loss_d``, ``loss_g``, ``k`` (the ``k_t`` used
        in this step) and ``m_global``.
    """
    generator, energy = modules["generator"], modules["energy"]
    n = real.shape[0]
    k, gamma, lambda_k = float(state["k"]), float(state["gamma"]), float(state["lambda_k"])
    z = torch.randn(2 * n, generator.latent_dim, generator=rng, device=rng.device, dtype=real.dtype)
    fake = generator(z.to(real.device))  # z_D: the first n, z_G: the last n
    real_energy, fake_d_energy, fake_g_energy = energy(torch.cat([real, fake[:n].detach(), fake[n:]])).split(n)

    loss_d = began_discriminator_loss(real_energy, fake_d_energy, k)
    loss_g = began_generator_loss(fake_g_energy)
    for optimizer in optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    loss_d.backward(inputs=list(energy.parameters()), retain_graph=True)
    loss_g.backward(inputs=list(generator.parameters()))
    optimizers["energy"].step()
    optimizers["generator"].step()

    # on several processes (cogenerate.training.distributed) the control reads the global batch's
    # means, so k_t stays the same on every process
    real_loss, fake_loss = mean_over_ranks(torch.stack([real_energy.mean(), fake_g_energy.mean()]).detach()).tolist()
    new_state = {**state, "k": update_k(k, real_loss, fake_loss, gamma=gamma, lambda_k=lambda_k)}
    return new_state, {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "k": k,
                       "m_global": convergence_measure(real_loss, fake_loss, gamma=gamma)}


def init_kaiming(module: nn.Module, *, rng: torch.Generator) -> nn.Module:
    """Kaiming-normal weights (fan-in, gain of a linear unit) from ``rng``, zero biases, in place."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="linear", generator=rng)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return module


def build_began(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator) -> dict[str, nn.Module]:
    """A BEGAN generator and autoencoder, every parameter drawn from ``rng`` (generator first).

    Args:
        settings: ``architecture`` (one of :data:`ARCHITECTURES`), ``latent_dim``, ``width``,
            ``code_dim`` and, for ``"paper"``, ``depth``.
        image_shape: ``(C, H, W)``, ``H == W`` one of :data:`~cogenerate.models.began.IMAGE_SIZES`.
        rng: a CPU generator.

    Returns:
        ``{"generator": ..., "energy": ...}`` on the CPU: a
        :class:`~cogenerate.models.began.BEGANGenerator` and
        :class:`~cogenerate.models.began.BEGANAutoencoder` (``"paper"``, Kaiming-normal weights), or a
        :class:`~cogenerate.models.dcgan.DCGANGenerator` and
        :class:`~cogenerate.models.began.BEGANConvAutoencoder` (``"dcgan"``, DCGAN's initialisation).
    """
    architecture = settings.get("architecture", "dcgan")  # the option's default
    if architecture not in ARCHITECTURES:
        raise ValueError(f"--architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
    if architecture == "dcgan":
        return build_generator_and_autoencoder(settings, image_shape, rng, BEGANConvAutoencoder, family="a BEGAN")
    channels, height, width_px = (int(v) for v in image_shape)
    if height != width_px or height not in IMAGE_SIZES:
        raise ValueError(f"a BEGAN needs square images of side {', '.join(map(str, IMAGE_SIZES))}; "
                         f"got {height}×{width_px}")
    width, depth = int(settings["width"]), int(settings["depth"])
    with torch.device("meta"):
        parts: dict[str, nn.Module] = {
            "generator": BEGANGenerator(int(settings["latent_dim"]), image_size=height, channels=channels,
                                        width=width, depth=depth),
            "energy": BEGANAutoencoder(image_size=height, channels=channels, width=width,
                                       code_dim=int(settings["code_dim"]), depth=depth),
        }
    for module in parts.values():
        module.to_empty(device="cpu")
        init_kaiming(module, rng=rng)
    return parts


def make_began_optimizers(modules: Mapping[str, nn.Module], settings: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """Adam for both nets at ``settings["lr"]`` and DCGAN's betas."""
    lr = float(settings["lr"])
    return {role: adam(modules[role].parameters(), lr=lr, betas=DCGAN_BETAS) for role in ("generator", "energy")}


BEGAN = register_family(
    Family(
        name="began",
        title="BEGAN",
        description="BEGAN (Berthelot et al. 2017): L1 autoencoder energy, k_t control, M_global logged",
        build=build_began,
        make_optimizers=make_began_optimizers,
        step=began_step,
        init_state=lambda modules, settings: {"k": 0.0, "gamma": float(settings["gamma"]),
                                              "lambda_k": float(settings["lambda_k"])},
        losses=("loss_d", "loss_g", "k", "m_global"),
        options={
            "architecture": Option("dcgan", "BEGAN networks: dcgan (DCGAN generator, EBGAN's conv autoencoder) "
                                   "or paper (the paper's Figure 1)", choices=ARCHITECTURES),
            "width": Option(64, "filters n of every 3×3 convolution (BEGAN)", minimum=1),
            "code_dim": Option(64, "size h of the autoencoder's code", minimum=1),
            "depth": Option(2, "BEGAN: 3×3 convolutions per scale (2 in the paper)", minimum=1),
            "gamma": Option(BEGAN_GAMMA, "BEGAN diversity ratio γ (0.5 collapsed to one mode here within "
                            "2,000 iterations; the shipped model uses 1.0)", positive=True),
            "lambda_k": Option(BEGAN_LAMBDA_K, "BEGAN gain λ_k of the k_t control", positive=True),
            "lr": Option(1e-4, "Adam learning rate of G and D", positive=True),
        },
    )
)
"""The BEGAN family, registered as ``"began"``."""
