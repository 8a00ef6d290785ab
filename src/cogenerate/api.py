"""``complete(...)``: the one entry point that runs any co-generation method."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, distributions, nn

from cogenerate.encoders import with_encoder_init
from cogenerate.methods import DEFAULT_METHOD, METHODS, MethodSettings, resolve_method
from cogenerate.models.base import GenerativeModel
from cogenerate.operators import Mask, NoiseModel, Operator, make_noise
from cogenerate.posterior import Posterior, frozen_generator
from cogenerate.result import Callback, Completion, SamplerOutput, Step, weighted_mean

__all__ = ["complete", "METHODS", "DEFAULT_METHOD", "DEFAULT_NOISE_STD", "resolve_noise", "model_noise_std",
           "make_posterior"]

# The noise scale of the methods that cannot fit it, when none is given (data in [-1, 1]).
DEFAULT_NOISE_STD = 0.1
# noise_std="auto" starts the evidence search from this fraction of the observed values'
# root mean square: far below any misfit a generator leaves on real data.
AUTO_NOISE_FLOOR = 1e-2
# diagnostics["warnings"]: the final importance weights carry fewer effective particles than
# this, or the HMC moves were accepted less often than this on average.
ESS_WARNING = 2.0
ACCEPTANCE_WARNING = 0.1


def resolve_noise(settings: MethodSettings, noise_std: float | str | None, *,
                  model_noise_std: float | None = None) -> float | str:
    """The noise std a method runs with: the one given; else, for the methods that can fit it,
    the model's own (``model_noise_std``, :func:`model_noise_std`) or "auto"; else
    :data:`DEFAULT_NOISE_STD`. Raises ``ValueError`` on a bad one."""
    if noise_std is None:
        if not settings.fits_noise:
            return DEFAULT_NOISE_STD
        return "auto" if model_noise_std is None else float(model_noise_std)
    if isinstance(noise_std, str):
        if noise_std != "auto":
            raise ValueError(f"noise_std must be a positive number or 'auto', got {noise_std!r}")
        if not settings.fits_noise:
            fitting = sorted(name for name, m in METHODS.items() if m.fits_noise)
            raise ValueError(f"noise_std='auto' needs a method that fits the noise scale ({', '.join(fitting)}), "
                             f"not {settings.name!r}")
        return noise_std
    if not float(noise_std) > 0:
        raise ValueError(f"noise_std must be positive, got {noise_std}")
    return float(noise_std)


def model_noise_std(model: GenerativeModel, mask: Any, noise: str = "gaussian") -> float | None:
    """The noise σ a shipped (or any) model carries for its own images, or None.

    A model's config may hold ``"noise_std": {"value": σ, ...}``: the root mean square of the
    maximum-evidence σ of its validation images (:func:`~cogenerate.evaluation.likelihood.fit_noise_std`,
    ``benchmarks/noise_pooled.py``). It is a pixel-noise scale, so it applies to Gaussian
    noise on masked pixels only (not to other operators, whose observations average pixels).
    Fitted per image instead (``noise_std="auto"``), σ follows the observed part's in-sample
    misfit and comes out too small for the hidden part: on 100 held-out top halves the shipped
    DCGAN's ±2 std intervals covered 0.87 of the hidden pixels with it, 0.93 with the pooled σ,
    at about the same hidden MSE and CRPS (docs/benchmarks.md §7, target 3)."""
    entry = model.config.get("noise_std")
    pixels = not isinstance(mask, Operator) or isinstance(mask, Mask)
    if not isinstance(entry, dict) or noise != "gaussian" or not pixels:
        return None
    value = entry.get("value")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _as_model(model: Any, latent_dim: int | None, prior: distributions.Distribution | None) -> GenerativeModel:
    if isinstance(model, str):
        from cogenerate.models.loading import load_model

        model = load_model(model)
    if isinstance(model, GenerativeModel):
        if latent_dim is not None and int(latent_dim) != model.latent_dim:
            raise ValueError(f"latent_dim={latent_dim} but the model's latent size is {model.latent_dim}")
        return model if prior is None else dataclasses.replace(model, prior=prior)
    if not callable(model):
        raise ValueError(f"expected a generator (a callable such as an nn.Module) or a GenerativeModel, "
                         f"got {type(model).__name__}")
    if latent_dim is not None and int(latent_dim) < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
    return GenerativeModel.from_generator(model, latent_dim=latent_dim, prior=prior)


def _placement(generator: Callable, observed: Tensor) -> tuple[torch.device, torch.dtype]:
    """Device and dtype to work in: the generator's parameters' where it has any, else the data's."""
    parameters = [p for p in generator.parameters() if p.is_floating_point()] if isinstance(generator, nn.Module) else []
    dtype = observed.dtype if observed.is_floating_point() else torch.get_default_dtype()
    if not parameters:
        return observed.device, dtype
    device = parameters[0].device
    if device != observed.device:
        raise ValueError(f"the generator is on {device} but observed is on {observed.device}: move both to one "
                         f"device (e.g. observed.to('{device}'))")
    return device, parameters[0].dtype


def _probe(generator: Callable, latent_dim: int, like: Tensor, condition: Tensor | None) -> tuple[int, ...]:
    """The generator's sample shape, from one forward pass on a zero latent."""
    z = torch.zeros(1, latent_dim, device=like.device, dtype=like.dtype)
    try:
        with torch.no_grad():
            x = generator(z) if condition is None else generator(z, condition[:1])
    except Exception as error:  # the user's module failed: say what we asked of it
        raise ValueError(
            f"the generator failed on a latent batch of shape {tuple(z.shape)} ({type(error).__name__}: "
            f"{error}); is latent_dim={latent_dim} right?"
        ) from error
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] != 1:
        raise ValueError("the generator must map (N, latent_dim) latents to an (N, *x_shape) tensor")
    return tuple(x.shape[1:])


def _observations(observed: Tensor, x_shape: tuple[int, ...]) -> Tensor:
    if tuple(observed.shape) == x_shape:
        observed = observed.unsqueeze(0)
    if tuple(observed.shape[1:]) != x_shape:
        raise ValueError(
            f"observed has shape {tuple(observed.shape)} but the generator makes samples of shape "
            f"{x_shape}; pass observations of shape {x_shape} or (B, *{x_shape})"
        )
    if observed.shape[0] == 0:
        raise ValueError("observed holds no observations (a batch of 0); pass at least one")
    return observed


def make_posterior(
    model: GenerativeModel | Callable[[Tensor], Tensor],
    observed: Tensor,
    mask: Tensor | Operator | None,
    *,
    latent_dim: int | None = None,
    noise: str = "gaussian",
    noise_std: float | str = 0.1,
    discriminator: Callable[[Tensor], Tensor] | None = None,
    discriminator_weight: float = 1.0,
    condition: Tensor | None = None,
    max_batch: int | None = None,
) -> Posterior:
    """Validate the inputs and build the target ``p(z | x_o)``; raises ``ValueError`` on bad input.

    ``observed`` is moved to the generator's dtype (a float64 observation for a float32
    generator works). ``noise_std="auto"`` gives the noise model the floor of the evidence
    search (``AUTO_NOISE_FLOOR`` times the observed values' root mean square)."""
    model = _as_model(model, latent_dim, None)
    observed = torch.as_tensor(observed)
    generator = model.generator
    device, dtype = _placement(generator, observed)
    observed = observed.to(device=device, dtype=dtype)
    if condition is not None:
        condition = torch.as_tensor(condition).to(device)
    x_shape = _probe(generator, model.latent_dim, observed, condition)
    observed = _observations(observed, x_shape)
    batch = observed.shape[0]
    if condition is not None and condition.shape[0] != batch:
        raise ValueError(f"condition has {condition.shape[0]} rows but there are {batch} observations: "
                         f"give one condition per observation")
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
    prior = model.prior
    posterior = Posterior(
        generator=generator, observed=observed, operator=operator, noise=make_noise(noise, 1.0 if auto else noise_std),
        latent_dim=model.latent_dim, discriminator=discriminator, discriminator_weight=discriminator_weight,
        prior=prior, condition=condition, max_batch=max_batch,
    )
    if not auto:
        return posterior
    projection = posterior.observed_projection
    rms = (projection.pow(2).sum() / posterior.observed_count.sum()).sqrt().item()
    return dataclasses.replace(posterior, noise=make_noise(noise, AUTO_NOISE_FLOOR * (rms if rms > 0 else 1.0)))


def _warnings(output: SamplerOutput, log_weights: Tensor, diagnostics: dict[str, Any]) -> list[str]:
    """Plain-language warnings when a sampler's weights or moves collapsed."""
    found = []
    chains = log_weights.shape[1]
    ess = 1.0 / log_weights.exp().pow(2).sum(1)
    weighted = not bool((log_weights == log_weights[:, :1]).all())
    if weighted and chains >= 2 * ESS_WARNING and bool((ess < ESS_WARNING).any()):
        rows = torch.nonzero(ess < ESS_WARNING).flatten().tolist()
        found.append(f"importance weights collapsed: effective sample size below {ESS_WARNING:g} of {chains} "
                     f"for observation(s) {rows}; raise max_grad_evals (or chains) so tempering can finish")
    acceptance = diagnostics.get("acceptance_rate")
    if isinstance(acceptance, Tensor) and acceptance.numel() and float(acceptance.mean()) < ACCEPTANCE_WARNING:
        found.append(f"HMC acceptance collapsed: mean acceptance {float(acceptance.mean()):.3f}; "
                     f"lower the step size or check the generator for NaN/inf")
    if output.cancelled:
        found.append("stopped by the callback: a partial result")
    return found


def finish(posterior: Posterior, output: SamplerOutput, *, settings: MethodSettings) -> Completion:
    """Turn a method's raw output into a :class:`Completion`."""
    log_weights = torch.log_softmax(output.log_weights, dim=1)
    samples = output.samples
    operator = posterior.operator
    if isinstance(operator, Mask):
        m = operator.full(posterior.batch, posterior.x_shape)
        completions = m.unsqueeze(1) * posterior.observed.unsqueeze(1) + (1 - m.unsqueeze(1)) * samples
    else:
        m, completions = None, samples
    if settings.point_estimate == "best":
        points = samples if output.point_samples is None else output.point_samples
        fit = torch.nan_to_num(posterior.log_likelihood_of_samples(points), nan=-torch.inf)
        best = points[torch.arange(posterior.batch, device=fit.device), fit.argmax(1)]
        estimate = best if m is None else m * posterior.observed + (1 - m) * best
    else:
        estimate = weighted_mean(completions, log_weights)
        if m is not None:  # paste the observed part in exactly
            estimate = m * posterior.observed + (1 - m) * estimate
    noise: NoiseModel = output.noise if output.noise is not None else posterior.noise
    scale = output.noise_scale
    if scale is None:
        scale = torch.full((posterior.batch,), noise.scale)
    diagnostics = dict(output.info.diagnostics())
    diagnostics.update(noise_scale=scale, noise=type(noise).__name__.lower(), cancelled=output.cancelled)
    diagnostics["warnings"] = _warnings(output, log_weights, diagnostics)
    hidden = torch.ones_like(posterior.observed) if m is None else 1 - m
    return Completion(
        samples=samples,
        completions=completions,
        estimate=estimate,
        latents=output.latents,
        log_weights=log_weights,
        log_evidence=output.log_evidence,
        grad_evals=output.grad_evals,
        method=settings.name,
        diagnostics=diagnostics,
        noise_std=scale.to(posterior.observed) * noise.std_per_scale,
        hidden=hidden,
        info=output.info,
    )


def _critic(model: GenerativeModel, settings: MethodSettings, discriminator: Callable | None,
            weight: float | None) -> tuple[Callable | None, float]:
    """The critic term of the target: ``discriminator=`` if given, else the model's own
    ``log_ratio`` when ``discriminator_weight`` asks for it (or the method needs it: yeh)."""
    if discriminator is not None:
        return discriminator, 1.0 if weight is None else float(weight)
    wanted = (weight is not None and weight != 0) or settings.name == "yeh"
    if not wanted:
        return None, 1.0
    if not model.has_critic:
        what = "method 'yeh'" if settings.name == "yeh" and not weight else f"discriminator_weight={weight}"
        raise ValueError(f"{what} needs the GAN's discriminator (logits, shape (N,)): pass discriminator= or a model "
                         f"with a discriminator or an energy")
    return model.log_ratio, 1.0 if weight is None else float(weight)


def complete(
    model: Callable[[Tensor], Tensor] | GenerativeModel | str,
    observed: Tensor,
    mask: Tensor | Operator | None,
    *,
    method: str | MethodSettings = DEFAULT_METHOD,
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
    discriminator_weight: float | None = None,
    prior: distributions.Distribution | None = None,
    condition: Tensor | None = None,
    max_batch: int | None = None,
    callback: Callback | None = None,
    progress: Callable[[float], None] | None = None,
) -> Completion:
    """Complete partly observed data with a generator by sampling ``p(z | x_o)``.

    Args:
        model: a generator mapping ``(N, latent_dim)`` latents to ``(N, *x_shape)`` samples
            (an ``nn.Module`` is put in eval mode with frozen parameters for the call and
            restored afterwards), a :class:`~cogenerate.models.GenerativeModel`, or anything
            :func:`~cogenerate.models.loading.load_model` reads (a shipped name, a checkpoint).
        observed: ``(B, *x_shape)`` or ``x_shape``; hidden entries are ignored (may be NaN).
            Moved to the generator's dtype.
        mask: broadcasts to ``observed``, 1 = observed, 0 = hidden (bool, int or float); or an
            :class:`~cogenerate.operators.Operator` (e.g. ``Downsample(4)``).
        method: a settings object (``cg.SMC(target_ess=0.7)``, ``cg.AIS(schedule="linear")``, …)
            or a name standing for a method's defaults: "smc-polish" (default), "smc", "ais",
            "gd", "gd-best", "yeh", or a registered one.
        chains: chains (particles, restarts) per observation.
        steps: overrides the method's step setting: annealing temperatures (ais), cap on
            tempering steps (smc), descent or polish iterations (gd, gd-best, yeh, smc-polish).
        leapfrog: overrides the leapfrog steps per HMC move (samplers only).
        noise_std: scale of the observation noise (Gaussian std or Laplace scale), or
            "auto" (smc, smc-polish) to fit it by maximum evidence while tempering: the
            fitted scale per observation is in ``diagnostics["noise_scale"]`` and
            ``log_evidence`` is that scale's. Default, for the methods that can fit it: the
            model's own σ where it carries one (the shipped models do; Gaussian noise on a
            pixel mask only, :func:`model_noise_std`), else "auto"; ``DEFAULT_NOISE_STD``
            (0.1) for the other methods.
        noise: "gaussian" or "laplace".
        max_grad_evals: cap (at least 1) on generator gradient evaluations per chain; every
            method honours it, so methods compare at equal compute.
        latent_dim: latent size, if the generator has no ``latent_dim`` attribute.
        seed: seeds a fresh ``torch.Generator`` on the observations' device (ignored if
            ``rng`` is given).
        discriminator: optional ``(N, *x_shape) -> (N,)`` logits ``d``; adds
            ``discriminator_weight · d(G(z))`` to the tempered log-density (weight 1 if not given).
        discriminator_weight: λ. With a model that has a discriminator or an energy and no
            ``discriminator=``, a non-zero λ adds ``λ · model.log_ratio(G(z))``.
        prior: the latent prior (a ``torch.distributions`` object over one latent vector, e.g.
            ``Independent(Uniform(-1, 1), 1)``); default: the model's, else standard normal.
        condition: ``(B, ...)`` passed to a conditional generator as ``G(z, condition)``.
        max_batch: cap on samples per generator call (calls are chunked over chains; same
            result up to floating-point summation order).
        callback: called between steps with a :class:`~cogenerate.result.Step` (current
            particles, weights, β, diagnostics); returning ``False`` stops the method cleanly
            and returns a partial result (``diagnostics["cancelled"]``).
        progress: called with the fraction of work done, for progress bars.

    Returns:
        a :class:`~cogenerate.result.Completion`. ``diagnostics["warnings"]`` lists collapses
        of the importance weights or of HMC acceptance.
    """
    settings = resolve_method(method).with_overrides(steps=steps, leapfrog=leapfrog)
    if isinstance(chains, bool) or int(chains) != chains or int(chains) < 1:
        raise ValueError(f"chains must be a positive integer, got {chains}")
    for name, value in (("max_grad_evals", max_grad_evals), ("max_batch", max_batch)):
        if value is not None and (isinstance(value, bool) or int(value) != value or int(value) < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value}")
    resolve_noise(settings, noise_std)  # a bad value fails before the model loads
    model = _as_model(model, latent_dim, prior)
    noise_std = resolve_noise(settings, noise_std, model_noise_std=model_noise_std(model, mask, noise))
    if len(model.generators) > 1:  # a Bayesian GAN's weight samples: a mixture weighted by evidence
        from cogenerate.mixture import complete_mixture

        return complete_mixture(model, observed, mask, method=settings, chains=chains, noise_std=noise_std, noise=noise,
                                max_grad_evals=max_grad_evals, seed=seed, rng=rng, discriminator=discriminator,
                                discriminator_weight=discriminator_weight, condition=condition, max_batch=max_batch,
                                callback=callback, progress=progress)
    settings = with_encoder_init(settings, model)  # a model's encoder q(z | x_o) replaces init="prior"
    critic, weight = _critic(model, settings, discriminator, discriminator_weight)
    if noise_std == "auto" and critic is not None:
        raise ValueError("noise_std='auto' fits the noise scale of the likelihood alone; it cannot be combined with a "
                         "discriminator term: give a number")
    hook = None
    if callback is not None or progress is not None:
        def hook(step: Step) -> bool | None:
            if progress is not None:
                progress(step.fraction)
            return None if callback is None else callback(step)

    with frozen_generator(*model.modules.values(), discriminator):
        posterior = make_posterior(
            model, observed, mask, noise=noise, noise_std=noise_std, discriminator=critic,
            discriminator_weight=weight, condition=condition, max_batch=max_batch,
        )
        if rng is None:
            rng = torch.Generator(device=posterior.observed.device).manual_seed(int(seed))
        output = settings.run(posterior, chains=int(chains), rng=rng, max_grad_evals=max_grad_evals,
                              empirical_bayes=noise_std == "auto", callback=hook)
    return finish(posterior, output, settings=settings)
