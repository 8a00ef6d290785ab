"""``complete(...)``: the one entry point that runs any co-generation method."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor

from cogenerate.anneal.ais import ais
from cogenerate.anneal.output import SamplerOutput
from cogenerate.anneal.hybrid import smc_polish
from cogenerate.anneal.smc import smc
from cogenerate.baselines.gradient import gradient_descent
from cogenerate.baselines.yeh import yeh
from cogenerate.operators import Mask, Operator, make_noise
from cogenerate.posterior import Posterior, frozen_generator
from cogenerate.result import Completion, weighted_mean

__all__ = ["complete", "METHODS", "DEFAULT_METHOD", "DEFAULT_NOISE_STD"]


class Method(NamedTuple):
    run: Callable[..., SamplerOutput]
    steps_argument: str | None  # which keyword ``steps=`` sets
    uses_leapfrog: bool
    point_estimate: str  # "mean" (weighted posterior mean) or "best" (best fit)
    fits_noise: bool = False  # accepts ``empirical_bayes=True`` (``noise_std="auto"``)


METHODS: dict[str, Method] = {
    "ais": Method(ais, "steps", True, "mean"),
    "smc": Method(smc, "max_steps", True, "mean", fits_noise=True),
    "gd": Method(partial(gradient_descent, init="prior"), "steps", False, "best"),
    "gd-best": Method(partial(gradient_descent, init="best-of"), "steps", False, "best"),
    "yeh": Method(yeh, "steps", False, "best"),
    "smc-polish": Method(smc_polish, "polish_steps", True, "best", fits_noise=True),
}
DEFAULT_METHOD = "smc-polish"
# The noise scale of the methods that cannot fit it, when none is given (data in [-1, 1]).
DEFAULT_NOISE_STD = 0.1
# noise_std="auto" starts the evidence search from this fraction of the observed values'
# root mean square: far below any misfit a generator leaves on real data.
AUTO_NOISE_FLOOR = 1e-2


def register_method(name: str, method: Method) -> None:
    """Make ``method`` available as ``complete(..., method=name)``."""
    METHODS[name] = method


def _latent_dim(generator: Callable, latent_dim: int | None) -> int:
    if latent_dim is None:
        latent_dim = getattr(generator, "latent_dim", None)
        if latent_dim is None:
            raise ValueError("cannot infer the latent size: pass latent_dim= or give the generator a `latent_dim` attribute")
    if int(latent_dim) < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
    return int(latent_dim)


def _probe(generator: Callable, latent_dim: int, like: Tensor) -> tuple[int, ...]:
    """The generator's sample shape, from one forward pass on a zero latent."""
    z = torch.zeros(1, latent_dim, device=like.device, dtype=like.dtype)
    try:
        with torch.no_grad():
            x = generator(z)
    except Exception as error:  # the user's module failed: say what we asked of it
        raise ValueError(
            f"the generator failed on a latent batch of shape {tuple(z.shape)} ({type(error).__name__}: "
            f"{error}); is latent_dim={latent_dim} right?"
        ) from error
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] != 1:
        raise ValueError("the generator must map (N, latent_dim) latents to an (N, *x_shape) tensor")
    return tuple(x.shape[1:])


def _observations(observed: Tensor, x_shape: tuple[int, ...]) -> Tensor:
    observed = torch.as_tensor(observed)
    if not observed.is_floating_point():
        observed = observed.float()
    if tuple(observed.shape) == x_shape:
        observed = observed.unsqueeze(0)
    if tuple(observed.shape[1:]) != x_shape:
        raise ValueError(
            f"observed has shape {tuple(observed.shape)} but the generator makes samples of shape "
            f"{x_shape}; pass observations of shape {x_shape} or (B, *{x_shape})"
        )
    return observed


def make_posterior(
    generator: Callable[[Tensor], Tensor],
    observed: Tensor,
    mask: Tensor | Operator,
    *,
    noise: str = "gaussian",
    noise_std: float | str = 0.1,
    latent_dim: int | None = None,
    discriminator: Callable[[Tensor], Tensor] | None = None,
    discriminator_weight: float = 1.0,
) -> Posterior:
    """Validate the inputs and build the target ``p(z | x_o)``; raises ``ValueError`` on bad input.

    ``noise_std="auto"`` gives the noise model the floor of the evidence search
    (``AUTO_NOISE_FLOOR`` times the observed values' root mean square)."""
    observed = torch.as_tensor(observed)
    dim = _latent_dim(generator, latent_dim)
    x_shape = _probe(generator, dim, observed if observed.is_floating_point() else observed.float())
    observed = _observations(observed, x_shape)
    batch = observed.shape[0]
    if mask is None:
        raise ValueError("give a mask (1 = observed, 0 = hidden) or an observation operator")
    operator = mask if isinstance(mask, Operator) else Mask(torch.as_tensor(mask))
    operator.validate(batch, x_shape)
    operator = operator.to(observed.device, observed.dtype)
    if isinstance(operator, Mask):
        seen = operator.full(batch, x_shape).bool()
        if torch.isnan(observed[seen]).any() or torch.isinf(observed[seen]).any():
            raise ValueError("observed contains NaN or inf in its observed entries (mask == 1)")
        observed = torch.where(seen, observed, torch.zeros_like(observed))  # hidden entries may hold NaN
    elif not torch.isfinite(observed).all():
        raise ValueError("observed contains NaN or inf")
    auto = isinstance(noise_std, str)
    if auto and noise_std != "auto":
        raise ValueError(f"noise_std must be a positive number or 'auto', got {noise_std!r}")
    posterior = Posterior(
        generator=generator,
        observed=observed,
        operator=operator,
        noise=make_noise(noise, 1.0 if auto else noise_std),
        latent_dim=dim,
        discriminator=discriminator,
        discriminator_weight=discriminator_weight,
    )
    if not auto:
        return posterior
    projection = posterior.observed_projection
    rms = (projection.pow(2).sum() / posterior.observed_count.sum()).sqrt().item()
    return dataclasses.replace(posterior, noise=make_noise(noise, AUTO_NOISE_FLOOR * (rms if rms > 0 else 1.0)))


def finish(posterior: Posterior, output: SamplerOutput, *, method: str, point_estimate: str) -> Completion:
    """Turn a method's raw output into a :class:`Completion`."""
    log_weights = torch.log_softmax(output.log_weights, dim=1)
    samples = output.samples
    operator = posterior.operator
    if isinstance(operator, Mask):
        m = operator.full(posterior.batch, posterior.x_shape)
        completions = m.unsqueeze(1) * posterior.observed.unsqueeze(1) + (1 - m.unsqueeze(1)) * samples
    else:
        m, completions = None, samples
    if point_estimate == "best":
        points = samples if output.point_samples is None else output.point_samples
        fit = torch.nan_to_num(posterior.log_likelihood_of_samples(points), nan=-torch.inf)
        best = points[torch.arange(posterior.batch, device=fit.device), fit.argmax(1)]
        estimate = best if m is None else m * posterior.observed + (1 - m) * best
    else:
        estimate = weighted_mean(completions, log_weights)
        if m is not None:  # paste the observed part in exactly
            estimate = m * posterior.observed + (1 - m) * estimate
    diagnostics = dict(output.diagnostics)
    diagnostics.setdefault("noise_scale", torch.full((posterior.batch,), posterior.noise.scale))
    scale = diagnostics["noise_scale"].to(posterior.observed)
    hidden = torch.ones_like(posterior.observed) if m is None else 1 - m
    return Completion(
        samples=samples,
        completions=completions,
        estimate=estimate,
        latents=output.latents,
        log_weights=log_weights,
        log_evidence=output.log_evidence,
        grad_evals=output.grad_evals,
        method=method,
        diagnostics=diagnostics,
        noise_std=scale * posterior.noise.std_per_scale,
        hidden=hidden,
    )


def complete(
    generator: Callable[[Tensor], Tensor],
    observed: Tensor,
    mask: Tensor | Operator | None,
    *,
    method: str = DEFAULT_METHOD,
    chains: int = 16,
    steps: int | None = None,
    leapfrog: int | None = None,
    noise_std: float | str | None = None,
    noise: str = "gaussian",
    max_grad_evals: int | None = None,
    latent_dim: int | None = None,
    seed: int = 0,
    rng: torch.Generator | None = None,
    discriminator: Callable[[Tensor], Tensor] | None = None,
    discriminator_weight: float = 1.0,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Completion:
    """Complete partly observed data with a generator by sampling ``p(z | x_o)``.

    Args:
        generator: maps ``(N, latent_dim)`` latents to ``(N, *x_shape)`` samples; an
            ``nn.Module`` is put in eval mode with frozen parameters for the call and
            restored afterwards.
        observed: ``(B, *x_shape)`` or ``x_shape``; hidden entries are ignored (may be NaN).
        mask: broadcasts to ``observed``, 1 = observed, 0 = hidden; or an
            :class:`~cogenerate.operators.Operator` (e.g. ``Downsample(4)``).
        method: "smc-polish" (default), "smc", "ais", "gd", "gd-best", "yeh", or a registered method.
        chains: chains (particles, restarts) per observation.
        steps: annealing temperatures (ais), cap on tempering steps (smc) or descent
            iterations (gd, gd-best); ``None`` keeps the method's default.
        leapfrog: leapfrog steps per HMC move (samplers only).
        noise_std: scale of the observation noise (Gaussian std or Laplace scale), or
            "auto" (smc, smc-polish) to fit it by maximum evidence while tempering: the
            fitted scale per observation is in ``diagnostics["noise_scale"]`` and
            ``log_evidence`` is that scale's. Default: "auto" for the methods that can
            fit it, ``DEFAULT_NOISE_STD`` (0.1) for the others.
        noise: "gaussian" or "laplace".
        max_grad_evals: cap on generator gradient evaluations per chain; every method
            honours it, so methods compare at equal compute.
        latent_dim: latent size, if the generator has no ``latent_dim`` attribute.
        seed: seeds a fresh ``torch.Generator`` on the observations' device (ignored if
            ``rng`` is given).
        discriminator: optional ``(N, *x_shape) -> (N,)`` logits ``d``; adds
            ``discriminator_weight · d(G(z))`` to the tempered log-density.
        options: further keyword arguments of the method's function (e.g.
            ``{"schedule": "linear"}`` for ais, ``{"target_ess": 0.7}`` for smc).
        progress: called with the fraction of work done, for progress bars.

    Returns:
        a :class:`~cogenerate.result.Completion`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if int(chains) < 1:
        raise ValueError(f"chains must be at least 1, got {chains}")
    spec = METHODS[method]
    kwargs: dict[str, Any] = dict(options or {})
    if noise_std is None:
        noise_std = "auto" if spec.fits_noise else DEFAULT_NOISE_STD
    if noise_std == "auto":
        if not spec.fits_noise:
            fitting = sorted(name for name, m in METHODS.items() if m.fits_noise)
            raise ValueError(f"noise_std='auto' needs a method that fits the noise scale ({', '.join(fitting)}), "
                             f"not {method!r}")
        kwargs["empirical_bayes"] = True
    if steps is not None:
        if spec.steps_argument is None or int(steps) < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        kwargs[spec.steps_argument] = int(steps)
    if leapfrog is not None and spec.uses_leapfrog:
        if int(leapfrog) < 1:
            raise ValueError(f"leapfrog must be a positive integer, got {leapfrog}")
        kwargs["leapfrog"] = int(leapfrog)
    modules = (generator, discriminator)
    with frozen_generator(*modules):
        posterior = make_posterior(
            generator, observed, mask, noise=noise, noise_std=noise_std, latent_dim=latent_dim,
            discriminator=discriminator, discriminator_weight=discriminator_weight,
        )
        if rng is None:
            rng = torch.Generator(device=posterior.observed.device).manual_seed(int(seed))
        try:
            output = spec.run(
                posterior, chains=int(chains), rng=rng, max_grad_evals=max_grad_evals, progress=progress, **kwargs
            )
        except TypeError as error:
            if "unexpected keyword argument" in str(error):
                raise ValueError(f"method {method!r} does not accept an option: {error}") from error
            raise
    return finish(posterior, output, method=method, point_estimate=spec.point_estimate)
