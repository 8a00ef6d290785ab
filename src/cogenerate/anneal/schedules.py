"""Annealing schedules: ``T + 1`` inverse temperatures from exactly 0 to exactly 1.

Each returns a float64 tensor ``beta`` with ``beta[0] == 0``, ``beta[-1] == 1`` and
``beta`` non-decreasing. Adaptive tempering (choosing β from the particles) lives in
:mod:`cogenerate.anneal.smc`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SCHEDULES", "sigmoid", "linear", "geometric", "make_schedule"]


def _check(num_steps: int) -> None:
    if num_steps < 1:
        raise ValueError(f"an annealing schedule needs at least 1 step, got {num_steps}")


def sigmoid(num_steps: int, *, radius: float = 4.0) -> Tensor:
    """Sigmoid schedule of Wu et al. (2017), σ(t) on t ∈ [-radius, radius], rescaled so
    that it runs exactly from 0 to 1 (σ(±4) alone would start at 0.018 and end at 0.982)."""
    _check(num_steps)
    s = torch.sigmoid(torch.linspace(-radius, radius, num_steps + 1, dtype=torch.float64))
    return (s - s[0]) / (s[-1] - s[0])


def linear(num_steps: int) -> Tensor:
    """Equally spaced β."""
    _check(num_steps)
    return torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64)


def geometric(num_steps: int, *, start: float = 1e-4) -> Tensor:
    """β_0 = 0, then β_1..β_T geometrically spaced from ``start`` to 1."""
    _check(num_steps)
    if num_steps == 1:
        return torch.tensor([0.0, 1.0], dtype=torch.float64)
    rest = torch.logspace(torch.log10(torch.tensor(start)).item(), 0.0, num_steps, dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), rest])


SCHEDULES = {"sigmoid": sigmoid, "linear": linear, "geometric": geometric}


def make_schedule(name: str, num_steps: int) -> Tensor:
    """The schedule called ``name`` ("sigmoid", "linear" or "geometric") with ``num_steps`` steps."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    beta = SCHEDULES[name](num_steps)
    beta[-1] = 1.0
    return beta
