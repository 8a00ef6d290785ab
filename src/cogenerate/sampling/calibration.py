"""Calibrating a critic on held-out data: ``logit = a + b · score`` by logistic regression.

DRS, MH-GAN and DDLS read a critic's output as ``log p_data(x) / p_G(x)``. A trained critic is
not that: a DCGAN discriminator is over- or under-confident, and an autoencoder's energy is
not a log ratio at all. DRS (Azadi et al. 2019) and MH-GAN (Turner et al. 2019) both calibrate
it on held-out data first (MH-GAN's official code, uber-research/metropolis-hastings-gans
``mhgan/classification.py``, has isotonic and logistic-regression calibrators; isotonic output
can be exactly 0 or 1, which makes the ratio infinite, so we use the logistic one). We fit one logistic regression of
"real" (1) against "generated" (0) on the critic's score ``s``, with equal numbers of each, so
that the calibrated logit ``a + b·s`` estimates ``log p_data(x) / p_G(x)`` (prior odds 1).

- DCGAN: ``s`` is the discriminator's logit.
- EBGAN, BEGAN: ``s = −energy`` (the model's ``log_ratio`` at ``energy_scale = 1``), so the
  calibrated logit is ``a − b·energy``. That an autoencoder's reconstruction error is an affine
  function of the log density ratio is a **heuristic** with no theorem behind it; the fitted
  ``b`` says how steeply the energy separates real from generated images on held-out data, and
  nothing more.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from cogenerate.models.base import GenerativeModel
from cogenerate.posterior import frozen_generator
from cogenerate.sampling.common import Critic, critic_of, draw_latents, generate, reference, score

__all__ = ["Calibration", "CalibratedCritic", "calibrate", "fit_logistic"]

RIDGE = 1e-6
"""L2 penalty on the (standardised) slope, so that perfectly separated scores give a large finite
slope instead of a diverging Newton iteration."""


class Calibration(NamedTuple):
    """The affine map ``logit = intercept + slope · score`` and how it was fitted.

    Attributes:
        intercept, slope: ``a`` and ``b``.
        log_loss: mean binary cross-entropy of the fit on its data, in nats (``log 2`` = no skill).
        count: number of scores it was fitted on.
    """

    intercept: float
    slope: float
    log_loss: float = float("nan")
    count: int = 0

    def __call__(self, scores: Tensor) -> Tensor:
        """``a + b · scores``, any shape."""
        return self.intercept + self.slope * scores


class CalibratedCritic:
    """``x -> calibration(critic(x))``: a critic whose output estimates ``log p_data / p_G``."""

    def __init__(self, critic: Critic, calibration: Calibration) -> None:
        self.critic, self.calibration = critic, calibration

    def __call__(self, x: Tensor) -> Tensor:
        return self.calibration(self.critic(x))


def fit_logistic(scores: Tensor, labels: Tensor, *, iterations: int = 100, tolerance: float = 1e-10) -> Calibration:
    """Maximum-likelihood logistic regression of ``labels`` on one feature, by Newton's method.

    Fitted in float64 on the standardised score, with a :data:`RIDGE` penalty on the slope.

    Args:
        scores: ``(N,)`` critic scores.
        labels: ``(N,)`` 1 for real, 0 for generated (bool, int or float).
        iterations: Newton steps at most.
        tolerance: stop when the step's largest entry is below this.

    Returns:
        A :class:`Calibration` in the scores' original units.
    """
    s = scores.detach().reshape(-1).to(torch.float64).cpu()
    y = labels.detach().reshape(-1).to(torch.float64).cpu()
    if s.shape != y.shape or s.numel() < 2:
        raise ValueError(f"scores and labels must be two (N,) tensors with N >= 2, got {tuple(scores.shape)} "
                         f"and {tuple(labels.shape)}")
    if not ((y == 0) | (y == 1)).all() or y.min() == y.max():
        raise ValueError("labels must be 0 or 1, with both present")
    if not torch.isfinite(s).all():
        raise ValueError("scores must be finite")
    centre, spread = s.mean(), s.std().clamp(min=1e-12)
    features = torch.stack([torch.ones_like(s), (s - centre) / spread], dim=1)
    beta = torch.zeros(2, dtype=torch.float64)
    penalty = torch.diag(torch.tensor([0.0, RIDGE], dtype=torch.float64)) * s.numel()
    for _ in range(iterations):
        p = torch.sigmoid(features @ beta)
        gradient = features.T @ (y - p) - penalty @ beta
        hessian = features.T @ (features * (p * (1 - p)).unsqueeze(1)) + penalty
        step = torch.linalg.solve(hessian, gradient)
        beta = beta + step
        if step.abs().max() < tolerance:
            break
    logits = features @ beta
    log_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y).item()
    slope = (beta[1] / spread).item()
    return Calibration(intercept=(beta[0] - slope * centre).item(), slope=slope, log_loss=log_loss,
                       count=int(s.numel()))


def calibrate(model: GenerativeModel, real: Tensor, *, rng: torch.Generator, critic: Critic | None = None,
              max_batch: int = 1000) -> Calibration:
    """Fit ``logit = a + b · critic(x)`` on held-out ``real`` images and as many generated ones.

    Args:
        model: supplies the generator and, when ``critic`` is None, ``log_ratio``.
        real: ``(N, *x_shape)`` held-out real samples (the validation split; never the
            images that figures are reported on).
        rng: draws the ``N`` latents of the generated images (on its device).
        critic: the raw critic; default ``model.log_ratio``.
        max_batch: images per generator / critic call.

    Returns:
        The :class:`Calibration`; wrap with :class:`CalibratedCritic` to use it.
    """
    critic = critic_of(model, critic)
    with frozen_generator(*model.modules.values()):
        like = reference(model, rng)
        fake = generate(model, draw_latents(model, real.shape[0], rng=rng, like=like), max_batch=max_batch)
        scores = torch.cat([score(critic, real.to(fake), max_batch=max_batch), score(critic, fake, max_batch=max_batch)])
    labels = torch.cat([torch.ones(real.shape[0]), torch.zeros(fake.shape[0])])
    return fit_logistic(scores, labels)
