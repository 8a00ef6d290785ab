"""The result every co-generation method returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from cogenerate.operators import NoiseModel

__all__ = ["Completion", "SamplerOutput", "Step", "Callback", "weighted_mean", "notify"]


class Step(NamedTuple):
    """What a method hands ``callback=`` between its steps.

    Attributes:
        fraction: share of the method's work done, in [0, 1].
        latents: ``(B, C, D)`` the current particles (chains).
        samples: ``(B, C, *x_shape)`` their G(z).
        log_weights: ``(B, C)`` their normalised importance log-weights.
        beta: ``(B,)`` the current inverse temperature (samplers), or ``None``.
        diagnostics: a few running numbers (e.g. ``{"ess": ..., "acceptance_rate": ...}``).
    """

    fraction: float
    latents: Tensor
    samples: Tensor
    log_weights: Tensor
    beta: Tensor | None = None
    diagnostics: dict[str, Any] = {}


Callback = Callable[[Step], "bool | None"]
"""Called between steps; returning ``False`` stops the method cleanly with a partial result."""


def notify(callback: Callback | None, step: Callable[[], Step]) -> bool:
    """Call ``callback`` with the :class:`Step` that ``step()`` builds (only if there is a
    callback); ``True`` if the method should stop (the callback returned ``False``)."""
    return callback is not None and callback(step()) is False


class SamplerOutput(NamedTuple):
    """A method's raw result, before :func:`cogenerate.api.complete` assembles the :class:`Completion`."""

    latents: Tensor  # (B, C, D)
    samples: Tensor  # (B, C, *x_shape): G(latents)
    log_weights: Tensor  # (B, C), unnormalised
    log_evidence: Tensor  # (B,), nan where the method has none
    grad_evals: int  # generator gradient evaluations per chain
    info: Any  # the method's own typed info (a NamedTuple with a ``diagnostics()`` export)
    # Points the estimate is chosen from (the best fit among them), when they differ from the samples.
    point_samples: Tensor | None = None  # (B, K, *x_shape)
    # The noise model the method actually used (None: the target's), and its scale per
    # observation (None: the model's scale for every observation).
    noise: NoiseModel | None = None
    noise_scale: Tensor | None = None  # (B,)
    cancelled: bool = False  # stopped by the callback before its end


def weighted_mean(values: Tensor, log_weights: Tensor) -> Tensor:
    """``Σ_c w_c values[:, c]`` for ``(B, C, ...)`` values and ``(B, C)`` normalised log-weights;
    particles of zero weight are left out even when their values are NaN."""
    w = log_weights.exp().reshape(*log_weights.shape, *([1] * (values.dim() - 2)))
    return torch.where(w > 0, w * values, torch.zeros_like(values)).sum(1)


@dataclass(frozen=True)
class Completion:
    """Completions of B observations by C chains.

    Attributes:
        samples: ``(B, C, *x_shape)`` G(z) per chain, observed part not pasted in.
        completions: ``(B, C, *x_shape)`` ``mask·observed + (1−mask)·samples`` (equal to
            ``samples`` for operators other than a mask).
        estimate: ``(B, *x_shape)`` the method's point estimate with the observed part
            pasted in: the weighted posterior mean for samplers, the best fit for descent,
            the mean of the polished chains that fit within twice the best's misfit (or an
            exact fit) for the default, ``smc-polish``.
        latents: ``(B, C, D)``.
        log_weights: ``(B, C)`` normalised importance log-weights (logsumexp over C is 0).
        log_evidence: ``(B,)`` estimate of log p(x_o); nan for methods without one.
        grad_evals: generator gradient evaluations spent per chain.
        method: the method's name.
        diagnostics: acceptance rates, step sizes, β schedule, ESS trace, … (method-specific).
        noise_std: ``(B,)`` standard deviation of the observation noise the method assumed
            (fitted by maximum evidence or given); Laplace noise of scale b has √2·b.
        hidden: ``(B, *x_shape)`` 1 where the entry was not observed directly (every entry
            for operators other than a mask); ``None`` if unknown.
        info: the method's own typed info (e.g. :class:`~cogenerate.anneal.smc.SMCInfo`);
            ``diagnostics`` is its plain-dict export plus the noise model and warnings.
    """

    samples: Tensor
    completions: Tensor
    estimate: Tensor
    latents: Tensor
    log_weights: Tensor
    log_evidence: Tensor
    grad_evals: int
    method: str
    diagnostics: dict[str, Any] = field(default_factory=dict)
    noise_std: Tensor | None = None
    hidden: Tensor | None = None
    info: Any = None

    @property
    def weights(self) -> Tensor:
        """``(B, C)`` normalised importance weights."""
        return self.log_weights.exp()

    def _weighted_moments(self) -> tuple[Tensor, Tensor]:
        mean = weighted_mean(self.completions, self.log_weights)
        var = weighted_mean((self.completions - mean.unsqueeze(1)).pow(2), self.log_weights)
        # Entries every chain agrees on (the observed part) have exactly zero spread.
        same = self.completions.amax(1) == self.completions.amin(1)
        return mean, torch.where(same, torch.zeros_like(var), var)

    @property
    def mean(self) -> Tensor:
        """``(B, *x_shape)`` importance-weighted mean of the completions."""
        return self._weighted_moments()[0]

    @property
    def std(self) -> Tensor:
        """``(B, *x_shape)`` importance-weighted standard deviation of the completions: the
        uncertainty map (zero on observed entries)."""
        return self._weighted_moments()[1].clamp_min(0).sqrt()

    @property
    def predictive_std(self) -> Tensor:
        """``(B, *x_shape)`` standard deviation of the true values under the model
        x = G(z) + noise: ``sqrt(std² + noise_std²)`` on hidden entries, 0 on observed ones.

        ``std`` is the spread of G(z) over the posterior alone; a held-out image is not exactly
        in the generator's range, and the noise term (fitted by ``noise_std="auto"``) is what
        the model says about that misfit. Use this one for intervals on the hidden values.
        """
        if self.noise_std is None or self.hidden is None:
            raise ValueError("this Completion carries no noise_std / hidden mask (build it with complete())")
        noise = self.noise_std.to(self.std).reshape(-1, *([1] * (self.std.dim() - 1)))
        return torch.where(self.hidden.bool(), (self.std.pow(2) + noise.pow(2)).sqrt(), torch.zeros_like(self.std))

    @property
    def ess(self) -> Tensor:
        """``(B,)`` effective sample size ``1 / Σ w²`` of the final weights."""
        return 1.0 / self.weights.pow(2).sum(1)

    def to(self, device: torch.device | str) -> Completion:
        """A copy with every tensor moved to ``device``."""
        moved = {
            name: getattr(self, name).to(device)
            for name in ("samples", "completions", "estimate", "latents", "log_weights", "log_evidence")
        }
        optional = {name: None if getattr(self, name) is None else getattr(self, name).to(device)
                    for name in ("noise_std", "hidden")}
        return Completion(**moved, **optional, grad_evals=self.grad_evals, method=self.method,
                          diagnostics=self.diagnostics, info=self.info)
