"""The common result of every method, before the public :class:`~cogenerate.result.Completion`."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor


class SamplerOutput(NamedTuple):
    latents: Tensor  # (B, C, D)
    samples: Tensor  # (B, C, *x_shape): G(latents)
    log_weights: Tensor  # (B, C), unnormalised
    log_evidence: Tensor  # (B,), nan where the method has none
    grad_evals: int  # generator gradient evaluations per chain
    diagnostics: dict[str, Any]
    # Optimised points for the point estimate (best fit), when they differ from the samples.
    point_samples: Tensor | None = None  # (B, K, *x_shape)
