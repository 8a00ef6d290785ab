"""Optimizer helpers shared by the families' ``make_optimizers``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["adam"]


def adam(parameters: Iterable[nn.Parameter], *, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam, with the fused kernel where PyTorch has one (~20% faster for the toy MLPs on CPU).

    The fused and the default (foreach) kernels may differ in the last bits, so a run keeps
    one kernel for its whole length (it depends only on the parameters' device and dtype).
    """
    parameters = list(parameters)
    fused = bool(parameters) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=True if fused else None)
