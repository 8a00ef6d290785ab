"""cogenerate: complete partly observed data with a trained generator.

>>> import cogenerate as cg
>>> out = cg.complete(generator, observed, mask, method=cg.SMC(target_ess=0.5), chains=16)
"""

from cogenerate.api import complete
from cogenerate.methods import AIS, GD, SMC, GDBest, MethodSettings, Yeh
from cogenerate.models.base import GenerativeModel
from cogenerate.operators import Downsample, Mask
from cogenerate.result import Completion, Step
from cogenerate.smc_polish import SMCPolish

__all__ = [
    "complete", "Completion", "Step", "GenerativeModel",
    "MethodSettings", "AIS", "SMC", "GD", "GDBest", "SMCPolish", "Yeh",
    "Mask", "Downsample",
]
__version__ = "0.1.0"
