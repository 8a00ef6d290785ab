"""The Bayesian GAN family: samples of the generator's weights by stochastic-gradient HMC.

Saatchi & Wilson, "Bayesian GAN", NeurIPS 2017 (seeds/lecture-bayesian-methods-in-gans.txt),
unsupervised: alternately sample

    p(θ_g | z, θ_d) ∝ Π_i D(G(z_i; θ_g); θ_d) · p(θ_g)
    p(θ_d | z, X, θ_g) ∝ Π_i D(x_i; θ_d) · Π_i (1 − D(G(z_i; θ_g); θ_d)) · p(θ_d)

with a few steps of SGHMC each (Chen, Fox & Guestrin 2014), keeping M samples of the
generator's weights: M chains, ``generator``, ``generator_1``, ..., ``generator_{M−1}``, each
moved on its own loss, and one discriminator that sees the fakes of all M (as the authors'
code, andrewgordonwilson/bayesgan, ``bgan_models.py``, with ``numz = 1`` and
``num_mcmc = M``: its unsupervised example runs ``--numz 1 --num_mcmc 10``).

The authors' code (``bgan_models.py``) implements the sampler as its optimiser on a loss with
two extra terms per network, scaled by the number of data points the network "observes"
(N = ``gen_observed`` = 1000 for the generators, the training-set size for the discriminator):

- the negative log prior, a Gaussian N(0, σ_p² I) on every weight, σ_p = ``prior_std`` = 1;
  here ``Σ w² / (2 σ_p²) / N`` (the code's own is ``Σ_tensors mean(w²) / σ_p² / N``);
- the SGHMC noise, ``Σ w·n / N`` with n ~ N(0, 2αη) drawn afresh each step, friction
  α = 0.01 and η = 2e-4 (``alpha``, ``eta`` in ``BDCGAN.__init__``): its gradient n / N is
  the injected noise.

The generators' likelihood term is the non-saturating ``−log D(G(z))`` and the
discriminator's the cross-entropy of real against the fakes of all M generators (the code's
``g_loss`` / ``d_loss``). The optimiser is Adam at 2e-4 with β1 = 0.5, the README's defaults
(``--lr 0.0002``, ``--optimizer adam``). The generators are DCGAN generators with the standard
normal prior of the project's DCGAN (the authors draw z ~ U(−1, 1)), so a comparison with the
shipped DCGAN isolates what the weight samples add.

Each chain's state is its module's weights and Adam state, which the checkpoints hold, so a
run resumes exactly where it stopped (training takes longer than one session).

On several processes (:mod:`cogenerate.training.distributed`) the gradients are averaged over
them, so the noise is drawn on every process and rank 0's draw is used everywhere: the average
then carries one draw of variance 2αη, as on one process (independent draws would average to
a variance N times too small), and the weight samples stay equal on every process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cogenerate.distributed import broadcast_
from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator
from cogenerate.training.dcgan import DCGAN_BETAS, generator_loss
from cogenerate.training.families import Family, Option, register_family
from cogenerate.training.optim import adam
from cogenerate.training.vae import check_image_shape, initialise_parts

__all__ = ["BAYESIAN_GAN", "bayesian_gan_step", "generator_names", "sghmc_noise_loss", "weight_prior_loss"]

PRIOR_STD = 1.0
"""σ_p of the Gaussian weight prior (``prior_std`` of bgan_models.py)."""
FRICTION = 0.01
"""SGHMC friction α (``alpha`` of bgan_models.py)."""
NOISE_LR = 2e-4
"""η in the SGHMC noise variance 2αη (``eta`` of bgan_models.py, ``BDCGAN``)."""
GEN_OBSERVED = 1000
"""Data points the generators' prior and noise are scaled by (``--gen_observed`` of bayesian_gan_hmc.py)."""
TRAIN_SIZE = 60000
"""The discriminator's N: the Fashion-MNIST training set (``dataset_size`` in the authors' code)."""


def generator_names(count: int) -> tuple[str, ...]:
    """The roles of ``count`` generator samples: ``("generator", "generator_1", ...)``."""
    return ("generator", *(f"generator_{i}" for i in range(1, count)))


def weight_prior_loss(parameters: Iterable[Tensor], *, prior_std: float, observed: float) -> Tensor:
    """``Σ w² / (2 σ_p²) / N``: the Gaussian prior's negative log density per observed data point."""
    return sum(p.pow(2).sum() for p in parameters) / (2 * prior_std**2 * observed)


def sghmc_noise_loss(parameters: Iterable[Tensor], noise: Iterable[Tensor], *, observed: float) -> Tensor:
    """``Σ w·n / N``: its gradient ``n / N`` is the SGHMC noise (``noise`` drawn by the caller)."""
    return sum((p * n).sum() for p, n in zip(parameters, noise, strict=True)) / observed


def _noise(parameters: list[Tensor], *, std: float, rng: torch.Generator) -> list[Tensor]:
    """One N(0, std²) draw per weight; on several processes rank 0's draw everywhere (see the module docstring)."""
    noise = [(std * torch.randn(p.shape, generator=rng, device=rng.device, dtype=p.dtype)).to(p.device)
             for p in parameters]
    broadcast_(noise)
    return noise


def _bayes_terms(module: nn.Module, *, observed: float, prior_std: float, noise_std: float,
                 rng: torch.Generator) -> Tensor:
    parameters = list(module.parameters())
    return (weight_prior_loss(parameters, prior_std=prior_std, observed=observed)
            + sghmc_noise_loss(parameters, _noise(parameters, std=noise_std, rng=rng), observed=observed))


def bayesian_gan_step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                      real: Tensor, rng: torch.Generator, state: Any, *, prior_std: float = PRIOR_STD,
                      friction: float = FRICTION, noise_lr: float = NOISE_LR, gen_observed: float = GEN_OBSERVED,
                      train_size: float = TRAIN_SIZE) -> tuple[Any, dict[str, float]]:
    """One SGHMC step of the discriminator, then one of every generator sample (module docstring).

    Draws a latent batch per generator, and the noise of every weight, from ``rng``.

    Returns:
        ``(state, {"loss_d", "loss_g"})``: the likelihood terms (without prior and noise) of the
        discriminator's loss and, averaged over the M samples, of the generators' ``−log D(G(z))``.
    """
    discriminator = modules["discriminator"]
    names = [name for name in modules if name.startswith("generator")]
    noise_std = (2 * friction * noise_lr) ** 0.5
    fakes = []
    for name in names:
        generator = modules[name]
        z = torch.randn(real.shape[0], generator.latent_dim, generator=rng, device=rng.device, dtype=real.dtype)
        fakes.append(generator(z.to(real.device)))
    # one discriminator call per generator sample, as in the G steps (and the authors' code): batch norm
    # would otherwise tell a batch of M mixed samples from the single-sample batches of the G steps
    fake_terms = [F.softplus(discriminator(fake.detach())).mean() for fake in fakes]
    loss_d = F.softplus(-discriminator(real)).mean() + sum(fake_terms) / len(fake_terms)
    terms = _bayes_terms(discriminator, observed=train_size, prior_std=prior_std, noise_std=noise_std, rng=rng)
    optimizers["discriminator"].zero_grad(set_to_none=True)
    (loss_d + terms).backward()
    optimizers["discriminator"].step()

    likelihood = []
    for name, fake in zip(names, fakes, strict=True):
        generator = modules[name]
        term = generator_loss(discriminator(fake))
        loss = term + _bayes_terms(generator, observed=gen_observed, prior_std=prior_std, noise_std=noise_std, rng=rng)
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward(inputs=list(generator.parameters()))
        optimizers[name].step()
        likelihood.append(term.item())
    return state, {"loss_d": loss_d.item(), "loss_g": sum(likelihood) / len(likelihood)}


def _step(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], real: Tensor,
          rng: torch.Generator, state: Any) -> tuple[Any, dict[str, float]]:
    """:func:`bayesian_gan_step` with the run's constants, handed over as the step state."""
    return bayesian_gan_step(modules, optimizers, real, rng, state, **{key: float(value) for key, value in state.items()})


def build_bayesian_gan(settings: Mapping[str, Any], image_shape: tuple[int, ...],
                       rng: torch.Generator) -> dict[str, nn.Module]:
    """M DCGAN generators, then the DCGAN discriminator, every weight from ``rng`` in that order."""
    channels, side = check_image_shape(image_shape)
    latent_dim, width = int(settings["latent_dim"]), int(settings["width"])
    with torch.device("meta"):
        parts: dict[str, nn.Module] = {
            name: DCGANGenerator(latent_dim, image_size=side, channels=channels, width=width)
            for name in generator_names(int(settings["generator_samples"]))
        }
        parts["discriminator"] = DCGANDiscriminator(image_size=side, channels=channels, width=width)
    return initialise_parts(parts, rng=rng)


BAYESIAN_GAN = register_family(
    Family(
        name="bayesian-gan",
        title="Bayesian GAN",
        description="Bayesian GAN (Saatchi & Wilson 2017): M generator weight samples by SGHMC, one discriminator",
        build=build_bayesian_gan,
        make_optimizers=lambda modules, settings: {
            role: adam(module.parameters(), lr=float(settings["lr"]), betas=DCGAN_BETAS) for role, module in modules.items()},
        step=_step,
        init_state=lambda modules, settings: {
            "prior_std": float(settings["prior_std"]), "friction": float(settings["friction"]),
            "noise_lr": float(settings["noise_lr"]), "gen_observed": float(settings["gen_observed"]),
            "train_size": float(settings["train_size"])},
        losses=("loss_d", "loss_g"),
        options={
            "width": Option(32, "width of the generators and the discriminator", minimum=1),
            "lr": Option(2e-4, "Adam learning rate (bayesgan README default)", positive=True),
            "generator_samples": Option(5, "Bayesian GAN: M, the generator weight samples (SGHMC chains)", minimum=1),
            "prior_std": Option(PRIOR_STD, "Bayesian GAN: std of the Gaussian weight prior", positive=True),
            "friction": Option(FRICTION, "Bayesian GAN: SGHMC friction alpha", positive=True),
            "noise_lr": Option(NOISE_LR, "Bayesian GAN: eta of the SGHMC noise variance 2·alpha·eta", minimum=0.0),
            "gen_observed": Option(GEN_OBSERVED, "Bayesian GAN: data points scaling the generators' prior and noise",
                                   minimum=1),
            "train_size": Option(TRAIN_SIZE, "Bayesian GAN: data points scaling the discriminator's prior and noise",
                                 minimum=1),
        },
    )
)
"""The Bayesian GAN family, registered as ``"bayesian-gan"``."""
