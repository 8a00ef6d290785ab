"""Unconditional sampling with a trained critic: DRS, MH-GAN and DDLS (docs/sampling.md).

Each sampler takes a :class:`~cogenerate.models.base.GenerativeModel`, an explicit
``torch.Generator`` and a critic ``x -> log p_data(x) / p_G(x)`` (the model's calibrated
``log_ratio`` by default in :func:`run_sampler`), and returns a :class:`SampleResult`.

>>> import torch
>>> from cogenerate.models.loading import load_model
>>> from cogenerate.sampling import run_sampler
>>> from cogenerate.evaluation.splits import load_split
>>> model = load_model("fashion-mnist")
>>> run = run_sampler(model, "drs", n=64, rng=torch.Generator().manual_seed(0),
...                   validation=load_split("fashion-mnist", "validation"))
>>> run.result.samples.shape, run.result.acceptance_rate    # doctest: +SKIP
(torch.Size([64, 1, 28, 28]), 0.1...)
"""

from cogenerate.sampling.calibration import CalibratedCritic, Calibration, calibrate, fit_logistic
from cogenerate.sampling.common import Critic, SampleResult
from cogenerate.sampling.ddls import DDLS_STEP_SIZE, DDLS_STEPS, ddls, latent_energy
from cogenerate.sampling.drs import DRS_BURN_IN, DRS_EPSILON, DRS_PERCENTILE, acceptance_logit, drs
from cogenerate.sampling.methods import METHODS, SamplerRun, run_sampler
from cogenerate.sampling.mh import MH_CHAIN_LENGTH, mh_gan
from cogenerate.sampling.plain import plain

__all__ = [
    "CalibratedCritic", "Calibration", "calibrate", "fit_logistic",
    "Critic", "SampleResult",
    "DDLS_STEP_SIZE", "DDLS_STEPS", "ddls", "latent_energy",
    "DRS_BURN_IN", "DRS_EPSILON", "DRS_PERCENTILE", "acceptance_logit", "drs",
    "METHODS", "SamplerRun", "run_sampler",
    "MH_CHAIN_LENGTH", "mh_gan",
    "plain",
]
