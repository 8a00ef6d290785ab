"""Markov kernels: HMC with per-chain Metropolis–Hastings on a log-density function, and adaptation."""

from cogenerate.mcmc.adapt import (
    DualAveragingState,
    ParticleTuning,
    adapt_mass,
    adapt_step_size,
    dual_averaging_init,
    dual_averaging_update,
    paper_rule,
    particle_tuning_init,
)
from cogenerate.mcmc.hmc import DensityFn, HMCInfo, HMCState, hmc_draws, hmc_init, hmc_move, hmc_step, leapfrog

__all__ = [
    "DensityFn",
    "HMCInfo",
    "HMCState",
    "hmc_init",
    "hmc_step",
    "hmc_draws",
    "hmc_move",
    "leapfrog",
    "DualAveragingState",
    "dual_averaging_init",
    "dual_averaging_update",
    "paper_rule",
    "ParticleTuning",
    "particle_tuning_init",
    "adapt_step_size",
    "adapt_mass",
]
