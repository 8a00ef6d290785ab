"""The divergence triangle family: its loss terms, one training step, and the registration
(``cogen train --family triangle``).

Han, Nijkamp, Fang, Hill, Zhu & Wu, "Divergence Triangle for Joint Training of Generator
Model, Energy-based Model, and Inference Model", CVPR 2019 (arXiv:1812.10907;
seeds/divergence-triangle-han-et-al.txt). Three joint distributions on (z, x)::

    Q(z, x) = q_data(x) q_φ(z | x)       P(z, x) = p(z) p_θ(x | z)       Π(z, x) = π_α(x) q_φ(z | x)

with p(z) = N(0, I), p_θ(x | z) = N(g_θ(z), s²I), π_α(x) = exp(f_α(x)) / Z(α) and the
Gaussian inference model q_φ(z | x) = N(μ_φ(x), σ_φ(x)²) (the parts of
:mod:`cogenerate.models.triangle`; the ``energy`` part is E_α = −f_α). The triangle is

    max_α min_θ min_φ  D = KL(Q ‖ P) + KL(P ‖ Π) − KL(Q ‖ Π).

**Sample-based gradients.** Expanding each KL and dropping what does not depend on the
parameters (the data entropy, the entropy of p_θ(x | z) at fixed s):

- KL(Q ‖ P) = E_data[ E_q(z|x) ‖x − g_θ(z)‖² / (2s²) + KL(q_φ(z | x) ‖ p(z)) ] + const: the
  VAE's negative ELBO, in θ and φ (:func:`reconstruction_term`, :func:`prior_kl_term`).
- KL(P ‖ Π) = E_P[ −f_α(x) − log q_φ(z | x) ] + log Z(α) + const: in θ, the energy of the
  generated images (:func:`generated_energy_term`, "the generator chases π_α") and the
  inference model's negative log-density of the z that made them (:func:`sleep_term`); in φ
  the same :func:`sleep_term` (the sleep phase of wake-sleep, learning from dreams).
- −KL(Q ‖ Π) = E_data[ f_α(x) ] − log Z(α) + const (q_φ cancels): only α.

In α the two log Z(α) cancel, so α descends E_data[E_α(x)] − E_P[E_α(x)]
(:func:`energy_term`): the adversarial contrastive divergence, with no MCMC. The expectations
under P use x = g_θ(z) itself (the s → 0 draw), as the official code does.

**One step** (the order of the official code, github.com/enijkamp/triangle,
``train_cifar10.py``; its CIFAR-10 script is the only one published):

1. α: ``loss_e = mean E_α(x) − mean E_α(g(z))`` on the batch and on fresh fakes (detached);
2. φ: ``loss_i = v·(reconstruction + KL) + λ·sleep`` (the fakes of 1, detached);
3. θ: ``loss_g = v·reconstruction + mean E_α(g(z)) + λ·sleep`` with the updated E_α and q_φ,
   a fresh z ~ q_φ(z | x) for the reconstruction, the fakes of 1 with gradient.

Constants of the official script, cited as its argument names: Adam with ``e_lr`` 1e-4,
``g_lr`` 3e-4, ``i_lr`` 3e-4 and ``beta1`` 0.5; gradient norms clipped at 100
(``max_normE/G/I``); weight decay 5e-4 on the generator only (``g_decay``; the paper's
"weights are decayed with rate 0.0005"); batch 100, ``vfactor`` v = 1; the sleep term weighted
λ = 0.1 (``errLatent = 0.1 * mean(diag_normal_NLL(...))``); the reconstruction a plain sum of
squares per image (``MSELoss(reduction='sum') / batch_size``), i.e. s² = ½ here; and the KL to
the prior averaged over the latent dimensions (``-0.5 * torch.mean(...)``, i.e. the KL divided
by the latent size: ``kl_reduction="mean"``; ``"sum"`` gives the proper KL). Its per-epoch
learning-rate decay (``gamma`` 0.998) is left out: our runs last a few epochs, where it
changes the rates by under 1%. Weights are drawn from N(0, 0.02) (``weights_init``, the
paper's "zero-mean Gaussian with standard deviation 0.02"). Their NLL drops the constant
½ log 2π per dimension; ours keeps it (same gradients).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from cogenerate.models.dcgan import DCGANGenerator
from cogenerate.models.triangle import TriangleEnergy
from cogenerate.models.vae import GaussianEncoder
from cogenerate.training.dcgan import DCGAN_BETAS
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.vae import check_image_shape, gaussian_kl, initialise_parts, reparameterize

__all__ = [
    "CLIP_NORM",
    "DECODER_STD",
    "ENERGY_LR",
    "ENCODER_LR",
    "GENERATOR_DECAY",
    "GENERATOR_LR",
    "SLEEP_WEIGHT",
    "TRIANGLE",
    "TriangleLosses",
    "build_triangle",
    "energy_term",
    "generated_energy_term",
    "make_triangle_optimizers",
    "prior_kl_term",
    "reconstruction_term",
    "sleep_term",
    "triangle_losses",
    "triangle_step",
]

ENERGY_LR, GENERATOR_LR, ENCODER_LR = 1e-4, 3e-4, 3e-4
"""Adam learning rates of E_α, g_θ, q_φ (official ``train_cifar10.py``: ``e_lr``, ``g_lr``, ``i_lr``)."""

GENERATOR_DECAY = 5e-4
"""Weight decay of the generator's Adam (official ``g_decay``; the paper: "decayed with rate 0.0005")."""

CLIP_NORM = 100.0
"""Gradient norm clip of every network (official ``max_normE``, ``max_normG``, ``max_normI``)."""

SLEEP_WEIGHT = 0.1
"""Weight λ of the sleep term (official ``errLatent = 0.1 * ...``)."""

DECODER_STD = math.sqrt(0.5)
"""s of p_θ(x | z): ‖x − g(z)‖² / (2s²) is the official plain sum of squares per image."""


def energy_term(real_energy: Tensor, fake_energy: Tensor) -> Tensor:
    """α's loss, the part of KL(P ‖ Π) − KL(Q ‖ Π) that depends on α (log Z(α) cancels):

        E_data[E_α(x)] − E_P[E_α(x)] = −E_data[f_α(x)] + E_P[f_α(x)]

    Descending it lowers the energy of the data and raises that of the generator's samples
    (the paper's adversarial contrastive divergence, its eq. 18).

    Args:
        real_energy: E_α of data images, ``(N,)``.
        fake_energy: E_α of generated images g_θ(z), ``(M,)``.

    Returns:
        Scalar ``mean(real_energy) − mean(fake_energy)``.
    """
    return real_energy.mean() - fake_energy.mean()


def reconstruction_term(x: Tensor, reconstruction: Tensor, *, decoder_std: float = DECODER_STD) -> Tensor:
    """The likelihood part of KL(Q ‖ P): E_Q[−log p_θ(x | z)] up to its constant,

        mean over the batch of ‖x − g_θ(z)‖² / (2s²),   z ~ q_φ(z | x)

    (in θ and φ; with s² = ½ the official plain sum of squares per image).

    Args:
        x: data images ``(N, C, H, W)``.
        reconstruction: g_θ(z) at one draw z ~ q_φ(z | x) per image, ``(N, C, H, W)``.
        decoder_std: s.

    Returns:
        Scalar.
    """
    return (x - reconstruction).pow(2).flatten(1).sum(1).mean() / (2.0 * decoder_std ** 2)


def prior_kl_term(mean: Tensor, log_std: Tensor, *, reduction: str = "mean") -> Tensor:
    """The prior part of KL(Q ‖ P): E_data[KL(q_φ(z | x) ‖ p(z))] in closed form (φ only).

    Args:
        mean, log_std: q_φ(z | x) of the batch, ``(N, D)`` each.
        reduction: ``"sum"`` over the D latent dimensions (the KL itself) or ``"mean"`` over
            them (the KL / D, the official code's ``torch.mean``).

    Returns:
        Scalar: averaged over the batch.
    """
    kl = gaussian_kl(mean, log_std).mean()
    if reduction == "mean":
        return kl / mean.shape[-1]
    if reduction == "sum":
        return kl
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def sleep_term(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """The inference part of KL(P ‖ Π): E_P[−log q_φ(z | x)] at x = g_θ(z) (θ and φ).

    In φ it is the sleep phase of wake-sleep (q_φ learns to recover the z that generated a
    dream); in θ it asks the generator for images whose z the inference model can recover.

        −log N(z; μ, σ²) = Σ_j [ log σ_j + (z_j − μ_j)² / (2σ_j²) + ½ log 2π ]

    Args:
        z: the latents that made the generated images, ``(N, D)``.
        mean, log_std: q_φ(z | g_θ(z)), ``(N, D)`` each.

    Returns:
        Scalar: averaged over the batch.
    """
    nll = log_std + 0.5 * ((z - mean) * torch.exp(-log_std)).pow(2) + 0.5 * math.log(2 * math.pi)
    return nll.sum(-1).mean()


def generated_energy_term(fake_energy: Tensor) -> Tensor:
    """The generator's part of KL(P ‖ Π) through π_α: E_P[−f_α(x)] = mean E_α(g_θ(z)) (θ only).

    The generator chases the energy-based model (the paper's min_θ KL(p_θ ‖ π_α)).

    Args:
        fake_energy: E_α of generated images, ``(M,)``.

    Returns:
        Scalar.
    """
    return fake_energy.mean()


class TriangleLosses(NamedTuple):
    """The three players' losses of one batch and their parts (scalars)."""

    loss_e: Tensor  # energy_term
    loss_i: Tensor  # v·(reconstruction + kl) + λ·sleep
    loss_g: Tensor  # v·reconstruction + generated energy + λ·sleep
    reconstruction: Tensor
    kl: Tensor
    sleep: Tensor
    energy_real: Tensor
    energy_fake: Tensor


def triangle_losses(x: Tensor, reconstruction: Tensor, mean: Tensor, log_std: Tensor, z: Tensor,
                    fake_mean: Tensor, fake_log_std: Tensor, real_energy: Tensor, fake_energy: Tensor, *,
                    decoder_std: float = DECODER_STD, kl_reduction: str = "mean", sleep_weight: float = SLEEP_WEIGHT,
                    vae_weight: float = 1.0) -> TriangleLosses:
    """Every player's loss from one set of forward passes (what :func:`triangle_step` descends,
    each loss in its own player's parameters; the hand-checkable form of the module docstring).

    Args:
        x: data ``(N, C, H, W)``; reconstruction: g_θ(z̃), z̃ ~ q_φ(z | x), ``(N, C, H, W)``.
        mean, log_std: q_φ(z | x), ``(N, D)``.
        z: prior draws ``(M, D)`` that made the fakes g_θ(z).
        fake_mean, fake_log_std: q_φ(z | g_θ(z)), ``(M, D)``.
        real_energy, fake_energy: E_α(x) ``(N,)`` and E_α(g_θ(z)) ``(M,)``.
        decoder_std, kl_reduction, sleep_weight, vae_weight: s, the KL's reduction, λ, v.
    """
    reconstruction_loss = reconstruction_term(x, reconstruction, decoder_std=decoder_std)
    kl = prior_kl_term(mean, log_std, reduction=kl_reduction)
    sleep = sleep_term(z, fake_mean, fake_log_std)
    return TriangleLosses(
        loss_e=energy_term(real_energy, fake_energy),
        loss_i=vae_weight * (reconstruction_loss + kl) + sleep_weight * sleep,
        loss_g=vae_weight * reconstruction_loss + generated_energy_term(fake_energy) + sleep_weight * sleep,
        reconstruction=reconstruction_loss, kl=kl, sleep=sleep,
        energy_real=real_energy.mean(), energy_fake=fake_energy.mean(),
    )


def _descend(loss: Tensor, module: nn.Module, optimizer: torch.optim.Optimizer, clip_norm: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=list(module.parameters()))
    torch.nn.utils.clip_grad_norm_(module.parameters(), clip_norm)
    optimizer.step()


def triangle_step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
                  rng: torch.Generator, state: Any, *, decoder_std: float = DECODER_STD, kl_reduction: str = "mean",
                  sleep_weight: float = SLEEP_WEIGHT, vae_weight: float = 1.0,
                  clip_norm: float = CLIP_NORM) -> tuple[Any, dict[str, float]]:
    """One iteration of the divergence triangle on ``real`` ``(N, C, H, W)``: an energy step,
    an inference step, a generator step, in that order (see the module docstring).

    Every draw comes from ``rng``: z ~ p(z) ``(N, D)`` for the fakes, then one ε per
    reparameterised code in each of the inference and generator steps.

    Returns:
        ``(state, losses)`` with ``loss_e``, ``loss_i``, ``loss_g`` (each before its own update),
        ``reconstruction`` (per-image, at the inference step), ``kl``, ``sleep``,
        ``energy_real``, ``energy_fake`` (batch means before the energy step) and ``mse``
        (per-pixel mean squared reconstruction error of the inference step).
    """
    generator, energy, encoder = modules["generator"], modules["energy"], modules["encoder"]
    n = real.shape[0]
    z = torch.randn(n, generator.latent_dim, generator=rng, device=rng.device, dtype=real.dtype).to(real.device)
    fake = generator(z)

    # 1. α on E_data[E] − E_P[E]
    real_energy, fake_energy = energy(torch.cat([real, fake.detach()])).split([n, n])
    loss_e = energy_term(real_energy, fake_energy)
    _descend(loss_e, energy, optimizers["energy"], clip_norm)

    # 2. φ on v·KL(Q‖P) + λ·(sleep part of KL(P‖Π)), the fakes detached
    mean, log_std = encoder(real)
    reconstruction = generator(reparameterize(mean, log_std, rng=rng))
    fake_mean, fake_log_std = encoder(fake.detach())
    inference = triangle_losses(real, reconstruction, mean, log_std, z, fake_mean, fake_log_std,
                                real_energy.detach(), fake_energy.detach(), decoder_std=decoder_std,
                                kl_reduction=kl_reduction, sleep_weight=sleep_weight, vae_weight=vae_weight)
    _descend(inference.loss_i, encoder, optimizers["encoder"], clip_norm)

    # 3. θ on v·(likelihood part of KL(Q‖P)) + KL(P‖Π), through the updated E_α and q_φ
    with torch.no_grad():
        mean, log_std = encoder(real)
    reconstruction = generator(reparameterize(mean, log_std, rng=rng))
    fake_mean, fake_log_std = encoder(fake)
    generated = triangle_losses(real, reconstruction, mean, log_std, z, fake_mean, fake_log_std,
                                real_energy.detach(), energy(fake), decoder_std=decoder_std,
                                kl_reduction=kl_reduction, sleep_weight=sleep_weight, vae_weight=vae_weight)
    _descend(generated.loss_g, generator, optimizers["generator"], clip_norm)

    mse = inference.reconstruction.detach() * (2.0 * decoder_std ** 2) / real[0].numel()
    return state, {
        "loss_e": loss_e.item(), "loss_i": inference.loss_i.item(), "loss_g": generated.loss_g.item(),
        "reconstruction": inference.reconstruction.item(), "kl": inference.kl.item(), "sleep": inference.sleep.item(),
        "energy_real": real_energy.mean().item(), "energy_fake": fake_energy.mean().item(), "mse": mse.item(),
    }


LOSSES = ("loss_e", "loss_i", "loss_g", "reconstruction", "kl", "sleep", "energy_real", "energy_fake", "mse")


def build_triangle(settings: Mapping[str, Any], image_shape: tuple[int, ...], rng: torch.Generator) -> dict[str, nn.Module]:
    """g_θ (:class:`~cogenerate.models.dcgan.DCGANGenerator`), E_α
    (:class:`~cogenerate.models.triangle.TriangleEnergy`) and q_φ
    (:class:`~cogenerate.models.vae.GaussianEncoder`), all at ``settings["width"]``, on the CPU,
    every weight from ``rng`` (N(0, 0.02)), in that order."""
    channels, side = check_image_shape(image_shape)
    latent_dim, width = int(settings["latent_dim"]), int(settings["width"])
    with torch.device("meta"):  # no default initialisation: it would draw from the global RNG
        parts: dict[str, nn.Module] = {
            "generator": DCGANGenerator(latent_dim, image_size=side, channels=channels, width=width),
            "energy": TriangleEnergy(image_size=side, channels=channels, width=width),
            "encoder": GaussianEncoder(latent_dim, image_size=side, channels=channels, width=width),
        }
    return initialise_parts(parts, rng=rng)


def make_triangle_optimizers(modules: Mapping[str, nn.Module], settings: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """One Adam per network, β = (0.5, 0.999), at the family's three learning rates; weight
    decay (L2 added to the gradient, as the official code's ``optim.Adam(weight_decay=...)``)
    on the generator only."""
    def adam(module: nn.Module, lr: float, decay: float = 0.0) -> torch.optim.Adam:
        parameters = list(module.parameters())
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
        return torch.optim.Adam(parameters, lr=lr, betas=DCGAN_BETAS, weight_decay=decay,
                                fused=True if fused else None)

    return {
        "energy": adam(modules["energy"], float(settings["energy_lr"])),
        "encoder": adam(modules["encoder"], float(settings["encoder_lr"])),
        "generator": adam(modules["generator"], float(settings["generator_lr"]), float(settings["generator_decay"])),
    }


_CONSTANTS = ("decoder_std", "kl_reduction", "sleep_weight", "vae_weight", "clip_norm")


def _step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
          rng: torch.Generator, state: Any) -> tuple[Any, dict[str, float]]:
    """:func:`triangle_step` with the run's constants, which the loop hands over as the step state."""
    return triangle_step(modules, optimizers, real, rng, state, **{name: state[name] for name in _CONSTANTS})


TRIANGLE = register_family(
    Family(
        name="triangle",
        title="divergence triangle",
        description="divergence triangle (Han et al. 2019): generator, energy-based model and inference model, jointly",
        build=build_triangle,
        make_optimizers=make_triangle_optimizers,
        step=_step,
        init_state=lambda modules, settings: {name: settings[name] for name in _CONSTANTS},
        losses=LOSSES,
        options={
            "width": Option(32, "width of the generator, energy and inference networks", minimum=1),
            "energy_lr": Option(ENERGY_LR, "Adam learning rate of the energy (official e_lr)", positive=True),
            "generator_lr": Option(GENERATOR_LR, "Adam learning rate of the generator (official g_lr)",
                                   positive=True),
            "encoder_lr": Option(ENCODER_LR, "Adam learning rate of the inference model (official i_lr)",
                                 positive=True),
            "generator_decay": Option(GENERATOR_DECAY, "weight decay of the generator (official g_decay)",
                                      minimum=0.0),
            "sleep_weight": Option(SLEEP_WEIGHT, "weight λ of the sleep term −log q(z|g(z))", minimum=0.0),
            "vae_weight": Option(1.0, "weight v of KL(Q‖P), the VAE terms (official vfactor)", minimum=0.0),
            "decoder_std": Option(DECODER_STD, "std s of the Gaussian decoder p(x|z) (VAE: 0 = the batch's ML value, "
                                               "Rybkin et al. 2021; triangle: √½, the official code's plain sum of "
                                               "squares)", positive=True),
            "kl_reduction": Option("mean", "KL to the prior averaged ('mean', official) or summed over z",
                                   choices=("mean", "sum")),
            "clip_norm": Option(CLIP_NORM, "gradient-norm clip of each network (official max_norm)",
                                positive=True),
        },
    )
)
"""The divergence triangle family, registered as ``"triangle"``."""
