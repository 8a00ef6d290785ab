"""One entry point for the samplers: calibrate the critic on held-out data, then run a method.

``cogen sample`` and the benchmarks call :func:`run_sampler`; the algorithms are the functions
of :mod:`~cogenerate.sampling.plain`, :mod:`~cogenerate.sampling.drs`,
:mod:`~cogenerate.sampling.mh` and :mod:`~cogenerate.sampling.ddls`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from cogenerate.models.base import GenerativeModel
from cogenerate.sampling.calibration import CalibratedCritic, Calibration, calibrate
from cogenerate.sampling.common import SampleResult
from cogenerate.sampling.ddls import ddls
from cogenerate.sampling.drs import drs
from cogenerate.sampling.mh import mh_gan
from cogenerate.sampling.plain import plain

__all__ = ["METHODS", "SamplerRun", "run_sampler"]

METHODS: tuple[str, ...] = ("plain", "drs", "mh", "ddls")
"""The sampling methods by name."""


class SamplerRun(NamedTuple):
    """What :func:`run_sampler` returns: the samples and the calibration it used (None for
    ``plain`` or an uncalibrated critic)."""

    result: SampleResult
    calibration: Calibration | None


def run_sampler(
    model: GenerativeModel,
    method: str,
    *,
    n: int,
    rng: torch.Generator,
    validation: Tensor | None = None,
    calibrated: bool = True,
    max_batch: int = 1000,
    **options: Any,
) -> SamplerRun:
    """Draw ``n`` samples from ``model`` with ``method`` (one of :data:`METHODS`).

    For ``drs``, ``mh`` and ``ddls`` the critic is the model's ``log_ratio``, calibrated first
    (``calibrated=True``) by :func:`~cogenerate.sampling.calibration.calibrate` on ``validation``
    and as many generator samples (drawn from ``rng`` before the method's own draws).

    Args:
        model: a model with a generator, and a discriminator or an energy for the correctors.
        method: ``"plain"``, ``"drs"``, ``"mh"`` or ``"ddls"``.
        n: samples to return.
        rng: every random draw, calibration included.
        validation: ``(M, *x_shape)`` held-out real images: the calibration data and MH-GAN's
            starting points. Required by ``mh`` and by calibration.
        calibrated: calibrate the critic (otherwise ``log_ratio`` is used as is).
        max_batch: images per generator / critic call.
        **options: the method's own keyword arguments (``percentile``, ``epsilon``,
            ``burn_in``; ``chain_length``; ``step_size``, ``steps``, ``adjusted``).

    Returns:
        A :class:`SamplerRun`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "plain":
        if options:
            raise ValueError(f"method 'plain' takes no options, got {sorted(options)}")
        return SamplerRun(plain(model, n=n, rng=rng, max_batch=max_batch), None)
    if not model.has_critic:
        raise ValueError(f"method {method!r} needs a model with a discriminator or an energy; this {model.family} "
                         f"model has neither")
    needs_real = calibrated or method == "mh"
    if needs_real and (validation is None or validation.shape[0] < 2):
        raise ValueError(f"method {method!r} needs held-out real images (validation=) to "
                         f"{'calibrate the critic' if calibrated else 'start its chains'}")
    calibration = calibrate(model, validation, rng=rng, max_batch=max_batch) if calibrated else None
    critic = CalibratedCritic(model.log_ratio, calibration) if calibration is not None else model.log_ratio
    if method == "drs":
        result = drs(model, n=n, rng=rng, critic=critic, batch_size=max_batch, **options)
    elif method == "mh":
        result = mh_gan(model, validation, n=n, rng=rng, critic=critic, max_batch=max_batch, **options)
    else:
        result = ddls(model, n=n, rng=rng, critic=critic, max_batch=max_batch, **options)
    return SamplerRun(result, calibration)
