"""Markov kernels: HMC with per-chain Metropolis–Hastings, and step-size adaptation."""

from cogenerate.mcmc.hmc import HMCInfo, HMCState, hmc_init, hmc_step, leapfrog
from cogenerate.mcmc.step_size import (
    DualAveragingState,
    dual_averaging_init,
    dual_averaging_update,
    paper_rule,
)

__all__ = [
    "HMCInfo",
    "HMCState",
    "hmc_init",
    "hmc_step",
    "leapfrog",
    "DualAveragingState",
    "dual_averaging_init",
    "dual_averaging_update",
    "paper_rule",
]
