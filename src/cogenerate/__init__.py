"""cogenerate: complete partly observed data with a trained generator.

>>> import cogenerate as cg
>>> out = cg.complete(generator, observed, mask, method="smc", chains=16)
"""

from cogenerate.api import complete
from cogenerate.operators import Downsample, Mask
from cogenerate.result import Completion

__all__ = ["complete", "Completion", "Mask", "Downsample"]
__version__ = "0.1.0"
