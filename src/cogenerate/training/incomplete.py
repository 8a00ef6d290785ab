"""Learning from incomplete images by iterative refilling (Han et al. 2019, §6.4, Table III).

Every training image is seen only through its mask (1 = observed): its hidden pixels start
at 0 (mid grey on the [-1, 1] scale: "we zero-fill the occluded parts in the beginning") and,
each time the image is in a batch, are overwritten after the step with the model's
reconstruction g(μ(x̃)) of the current filled-in image x̃ ("then iteratively update missing
values using reconstructed images obtained from the generator model"; the VAE baseline of the
same table refills the same way, after Rezende et al. 2014). Any registered family with an
``encoder`` and a ``generator`` trains this way with its own step, unchanged: the triangle and
the VAE. The hidden pixels never enter: the functions take ``observed = mask · x`` and the mask.

The third method of Table III, **alternating back-propagation** (ABP; Han, Lu, Zhu & Wu,
"Alternating Back-Propagation for Generator Network", AAAI 2017), has no inference model: each
training image keeps its own latent z_i, and every iteration (i) moves the batch's z_i by
Langevin dynamics on log p(z) + log p(x_o | z) = −‖z‖²/2 − ‖m ⊙ (x − g(z))‖²/(2σ²) (only observed
pixels enter), warm-started from the previous visit, then (ii) takes one Adam step of g on the
same observed-pixel likelihood at the new z. :func:`train_abp_on_incomplete`; its recovery is
m ⊙ x + (1 − m) ⊙ g(z_i). Its inference step can also be this package's HMC kernel
(:func:`hmc_latents`, ``inference="hmc"``): a few Metropolis-corrected HMC moves at the same
number of gradients per visit, with a step size per image that adapts toward 0.65 acceptance.

The recovery error of Table III is the mean absolute difference on the hidden pixels between
the recovered and the true image, relative to the range of pixel values (2 on [-1, 1]).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from cogenerate.training.families import Family, get_family

__all__ = ["ABPRun", "INFERENCE_STEPS", "IncompleteRun", "OCCLUSIONS", "hmc_latents", "langevin_latents", "occlusion_masks",
           "recover", "recovery_error", "refill", "refill_recover", "train_abp_on_incomplete", "train_on_incomplete"]

PIXEL_RANGE = 2.0
"""Range of pixel values on the [-1, 1] scale (Table III divides the absolute error by it)."""

OCCLUSIONS = ("p.5", "p.7", "mb10", "b20", "b30")
"""Table III's occlusions: P.5 / P.7 hide 50 % / 70 % of the pixels at random, MB10 ten random
blocks, B20 / B30 one random block; sides scaled from the paper's 64 px by 28/64."""

SCALE = 28 / 64
"""Sides of the paper's 64 px occlusions scaled to 28 px (MB10's 10×10 blocks become 4×4,
B20's 20×20 9×9, B30's 30×30 13×13)."""

INFERENCE_STEPS = ("langevin", "hmc")
"""ABP's inference step: plain Langevin (the ABP paper's) or this package's HMC kernel."""


def occlusion_masks(name: str, n: int, *, size: int = 28, seed: int = 0) -> Tensor:
    """``(n, 1, size, size)`` masks (1 = observed) of one of :data:`OCCLUSIONS`, each image its
    own, drawn from ``seed``."""
    from cogenerate.data.masks import make_operator, multi_blocks

    if name not in OCCLUSIONS:
        raise ValueError(f"unknown occlusion {name!r}; choose from {', '.join(OCCLUSIONS)}")
    rng = torch.Generator().manual_seed(seed)
    if name in ("b20", "b30"):
        return multi_blocks(n, size, rng=rng, blocks=1, side=round(int(name[1:]) * SCALE))
    return make_operator(name, n=n, size=size, rng=rng).mask


def refill(observed: Tensor, mask: Tensor, reconstruction: Tensor) -> Tensor:
    """``mask · observed + (1 − mask) · reconstruction``: observed pixels kept, hidden ones
    replaced; shapes ``(N, C, H, W)`` (``mask`` broadcasts)."""
    return mask * observed + (1 - mask) * reconstruction


class IncompleteRun(NamedTuple):
    """What :func:`train_on_incomplete` returns.

    Attributes:
        modules: the trained parts by role.
        filled: ``(N, C, H, W)`` the training images with their hidden pixels refilled.
        losses: one ``{name: value}`` per iteration (the family's step losses).
    """

    modules: dict[str, nn.Module]
    filled: Tensor
    losses: list[dict[str, float]]


def _reconstruct(modules: Mapping[str, nn.Module], images: Tensor) -> Tensor:
    with torch.no_grad():
        return modules["generator"](modules["encoder"](images)[0])


def train_on_incomplete(family: str | Family, observed: Tensor, mask: Tensor, *, settings: Mapping[str, Any],
                        iterations: int, rng: torch.Generator,
                        progress: Callable[[float], None] | None = None) -> IncompleteRun:
    """Train ``family`` on occluded images, refilling the hidden pixels as it goes.

    Args:
        family: a registered family (or its name) whose parts include ``generator`` and ``encoder``.
        observed: ``(N, C, H, W)`` the training images with hidden pixels already zeroed
            (``mask · x``); only these values are read.
        mask: ``(N, 1, H, W)`` or ``(N, C, H, W)``, 1 = observed.
        settings: the family's full settings (:func:`~cogenerate.training.families.resolve_settings`).
        iterations: training steps; each draws ``settings["batch_size"]`` images with
            replacement from ``rng``.
        rng: every draw: the initial weights, the batches, the steps' own draws.
        progress: ``progress(fraction)``.

    Returns:
        An :class:`IncompleteRun`.
    """
    family = get_family(family)
    if family.build is None:
        raise ValueError(f"the {family.label} family cannot build its parts")
    observed = mask * observed  # never trust a caller to have hidden the pixels
    modules = family.build(settings, tuple(observed.shape[1:]), rng)
    if "encoder" not in modules or "generator" not in modules:
        raise ValueError(f"the {family.label} family has no encoder to refill with (parts: {sorted(modules)})")
    optimizers = family.make_optimizers(modules, settings)
    state = family.init_state(modules, settings) if family.init_state is not None else None
    filled = observed.clone()
    n, batch = observed.shape[0], int(settings["batch_size"])
    losses = []
    for module in modules.values():
        module.train()
    for iteration in range(iterations):
        index = torch.randint(n, (batch,), generator=rng)
        state, step_losses = family.step(modules, optimizers, filled[index], rng, state)
        losses.append(step_losses)
        filled[index] = refill(observed[index], mask[index], _reconstruct(modules, filled[index]))
        if progress is not None:
            progress((iteration + 1) / iterations)
    for module in modules.values():
        module.eval()
    return IncompleteRun(modules, filled, losses)


def refill_recover(modules: Mapping[str, nn.Module], observed: Tensor, mask: Tensor, *, passes: int = 10,
                   batch_size: int = 500) -> Tensor:
    """Recover occluded images with a trained model alone (no training-time filled state): zero
    fill, then ``passes`` times x̃ ← m·x_o + (1 − m)·g(μ(x̃)); ``(N, C, H, W)``."""
    observed = mask * observed
    filled = observed.clone()
    for _ in range(passes):
        filled = recover(modules, filled, observed, mask, batch_size=batch_size)
    return filled


def recover(modules: Mapping[str, nn.Module], filled: Tensor, observed: Tensor, mask: Tensor, *,
            batch_size: int = 500) -> Tensor:
    """The recovered images: observed pixels kept, hidden ones ``g(μ(x̃))`` of the filled-in
    image x̃ (modules in eval mode), ``(N, C, H, W)``."""
    out = []
    for start in range(0, filled.shape[0], batch_size):
        part = slice(start, start + batch_size)
        out.append(refill(observed[part], mask[part], _reconstruct(modules, filled[part])))
    return torch.cat(out)


def recovery_error(recovered: Tensor, truth: Tensor, mask: Tensor) -> Tensor:
    """Table III's error per image: mean ``|recovered − truth|`` over the hidden pixels divided
    by the pixel range (2 on [-1, 1]): ``(N, C, H, W) -> (N,)``; 0 for an image with nothing hidden."""
    hidden = (1 - mask).expand_as(truth)
    total = ((recovered - truth).abs() * hidden).flatten(1).sum(1)
    return total / hidden.flatten(1).sum(1).clamp_min(1) / PIXEL_RANGE


class ABPRun(NamedTuple):
    """What :func:`train_abp_on_incomplete` returns: the generator, each image's latent
    ``(N, D)``, the recovered images ``(N, C, H, W)`` and one ``{"loss": ...}`` per iteration."""

    generator: nn.Module
    latents: Tensor
    recovered: Tensor
    losses: list[dict[str, float]]


def langevin_latents(generator: nn.Module, z: Tensor, observed: Tensor, mask: Tensor, *, steps: int, step_size: float,
                     noise_std: float, rng: torch.Generator) -> Tensor:
    """``steps`` Langevin moves of ``z`` ``(N, D)`` on log p(z) + log p(x_o | z):
    ``z ← z + (s²/2) ∇ + s·ε``, ε ~ N(0, I) from ``rng``, with
    ``∇ = −z − ∇_z ‖m ⊙ (x − g(z))‖² / (2σ²)`` (ABP's inferential back-propagation)."""
    for _ in range(steps):
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            misfit = (mask * (observed - generator(z))).pow(2).flatten(1).sum(1) / (2 * noise_std ** 2)
            log_density = -0.5 * z.pow(2).sum(1) - misfit
            (grad,) = torch.autograd.grad(log_density.sum(), z)
        noise = torch.randn(z.shape, generator=rng, device=rng.device, dtype=z.dtype).to(z.device)
        z = z.detach() + 0.5 * step_size ** 2 * grad + step_size * noise
    return z.detach()


def hmc_latents(generator: nn.Module, z: Tensor, observed: Tensor, mask: Tensor, *, step_size: Tensor, moves: int,
                num_leapfrog: int, noise_std: float, rng: torch.Generator) -> tuple[Tensor, Tensor]:
    """``moves`` HMC moves (:func:`cogenerate.mcmc.hmc.hmc_step`, ``num_leapfrog`` leapfrog steps
    each) of ``z`` ``(N, D)`` on the same target as :func:`langevin_latents`, one chain per
    image with its own step size ``(N,)``, moved after each move by the Robbins–Monro rule of
    :func:`cogenerate.mcmc.adapt.adapt_step_size` toward 0.65 acceptance. Costs
    ``1 + moves · num_leapfrog`` gradients per image. Returns the new ``z`` and step sizes."""
    from cogenerate.mcmc.adapt import ParticleTuning, adapt_step_size
    from cogenerate.mcmc.hmc import hmc_init, hmc_step

    def log_density_fn(position: Tensor) -> tuple[Tensor, Tensor, tuple[()]]:
        with torch.enable_grad():
            position = position.detach().requires_grad_(True)
            fit = generator(position[:, 0])
            misfit = (mask * (observed - fit)).pow(2).flatten(1).sum(1) / (2 * noise_std ** 2)
            log_density = (-0.5 * position.pow(2).sum(-1)) - misfit[:, None]
            (grad,) = torch.autograd.grad(log_density.sum(), position)
        return log_density.detach(), grad, ()

    state = hmc_init(z[:, None], log_density_fn)
    tuning = ParticleTuning(step_size=step_size[:, None], inverse_mass=torch.ones_like(z[:, None]))
    for _ in range(moves):
        state, info = hmc_step(rng, state, log_density_fn, step_size=tuning.step_size, num_leapfrog=num_leapfrog)
        tuning = adapt_step_size(tuning, info.acceptance_prob)
    return state.position[:, 0], tuning.step_size[:, 0]


def train_abp_on_incomplete(observed: Tensor, mask: Tensor, *, latent_dim: int, width: int, batch_size: int,
                            iterations: int, rng: torch.Generator, langevin_steps: int = 10, step_size: float = 0.1,
                            noise_std: float = 0.3, lr: float = 3e-4, inference: str = "langevin",
                            progress: Callable[[float], None] | None = None) -> ABPRun:
    """ABP on occluded images (see the module docstring): a DCGAN generator, one persistent
    latent per image (from N(0, I)), ``langevin_steps`` Langevin moves per visit, one Adam step
    (β = (0.5, 0.999)) of g per iteration on the observed pixels' Gaussian likelihood.

    Args:
        observed: ``(N, C, H, W)``, hidden pixels zeroed (only ``mask · observed`` is read).
        mask: ``(N, 1, H, W)`` or ``(N, C, H, W)``, 1 = observed.
        latent_dim, width, batch_size, iterations: model and schedule.
        rng: the initial weights, latents, batches and Langevin noise.
        langevin_steps, step_size, noise_std, lr: l, s, σ and the learning rate. The defaults
            (l = 10, s = 0.1, σ = 0.3, 3e-4) are our choices at this scale, not constants read
            from the ABP paper or its code (neither was available here).
        inference: ``"langevin"`` (the paper's step) or ``"hmc"``: the same ``langevin_steps``
            gradients per visit spent as 3 HMC moves of (l − 1) // 3 leapfrog steps plus the
            start's gradient (:func:`hmc_latents`), every image keeping its adapted step size
            (from ``step_size``) between visits.

    Returns:
        An :class:`ABPRun`.
    """
    from cogenerate.models.dcgan import DCGANGenerator
    from cogenerate.training.dcgan import DCGAN_BETAS
    from cogenerate.training.vae import check_image_shape, initialise_parts

    if inference not in INFERENCE_STEPS:
        raise ValueError(f"unknown inference step {inference!r}; choose from {', '.join(INFERENCE_STEPS)}")
    moves = 3
    if inference == "hmc" and langevin_steps < 1 + moves:
        raise ValueError(f"inference='hmc' needs langevin_steps >= {1 + moves} gradients per visit, got {langevin_steps}")
    observed = mask * observed
    channels, side = check_image_shape(tuple(observed.shape[1:]))
    with torch.device("meta"):
        parts: dict[str, nn.Module] = {"generator": DCGANGenerator(latent_dim, image_size=side, channels=channels,
                                                                   width=width)}
    generator = initialise_parts(parts, rng=rng)["generator"].train()
    optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=DCGAN_BETAS)
    n = observed.shape[0]
    latents = torch.randn(n, latent_dim, generator=rng)
    step_sizes = torch.full((n,), step_size)
    losses = []
    for iteration in range(iterations):
        index = torch.randint(n, (batch_size,), generator=rng)
        x, m = observed[index], mask[index]
        if inference == "hmc":
            z, step_sizes[index] = hmc_latents(generator, latents[index], x, m, step_size=step_sizes[index],
                                               moves=moves, num_leapfrog=(langevin_steps - 1) // moves,
                                               noise_std=noise_std, rng=rng)
        else:
            z = langevin_latents(generator, latents[index], x, m, steps=langevin_steps, step_size=step_size,
                                 noise_std=noise_std, rng=rng)
        latents[index] = z
        loss = (m * (x - generator(z))).pow(2).flatten(1).sum(1).mean() / (2 * noise_std ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append({"loss": loss.item()})
        if progress is not None:
            progress((iteration + 1) / iterations)
    generator.eval()
    with torch.no_grad():
        recovered = torch.cat([refill(observed[i:i + 500], mask[i:i + 500], generator(latents[i:i + 500]))
                               for i in range(0, n, 500)])
    return ABPRun(generator, latents, recovered, losses)
