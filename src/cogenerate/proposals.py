"""Where a method's chains start: prior draws, or a user-supplied proposal q(z | x_o).

Every method has an ``init=`` setting (:mod:`cogenerate.methods`). ``"prior"`` draws from the
latent prior. A *proposal* is any callable

    proposal(posterior, num, rng) -> (z, log_q)      z: (B, num, D), log_q: (B, num) or None

drawing ``num`` latents per observation from ``q`` (with ``rng`` only) and returning their log
density under ``q``. Samplers weight each draw by ``p(z) / q(z)`` so that their estimates stay
those of the posterior; descent methods only use ``z``. An encoder q(z | x) of a VAE-like
model is such a proposal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from cogenerate.posterior import Posterior

__all__ = ["Proposal", "draw_initial", "check_init"]

Proposal = Callable[["Posterior", int, torch.Generator], tuple[Tensor, Tensor | None]]


def check_init(init: object, *, allowed: tuple[str, ...] = ("prior",)) -> None:
    """Raise ``ValueError`` unless ``init`` is one of ``allowed`` or a callable proposal."""
    if isinstance(init, str):
        if init not in allowed:
            raise ValueError(f"init must be one of {', '.join(map(repr, allowed))} or a proposal callable, got {init!r}")
    elif not callable(init):
        raise ValueError(f"init must be one of {', '.join(map(repr, allowed))} or a proposal callable, "
                         f"got {type(init).__name__}")


def draw_initial(posterior: Posterior, init: str | Proposal, num: int, *, rng: torch.Generator,
                 need_density: bool = False) -> tuple[Tensor, Tensor | None]:
    """``num`` starting latents per observation, ``(B, num, D)``, and their log importance weights
    ``log p(z) − log q(z)`` ``(B, num)`` (``None`` for prior draws, whose weights are uniform).

    ``need_density``: the caller weights the draws (a sampler), so a proposal must return log_q.
    """
    if isinstance(init, str):
        if init != "prior":
            raise ValueError(f"unknown init {init!r}")
        return posterior.sample_prior(rng, (posterior.batch, num)), None
    z, log_q = init(posterior, num, rng)
    z = torch.as_tensor(z).detach().to(posterior.observed)
    expected = (posterior.batch, num, posterior.latent_dim)
    if tuple(z.shape) != expected:
        raise ValueError(f"the init proposal returned latents of shape {tuple(z.shape)}; expected {expected}")
    if log_q is None:
        if need_density:
            raise ValueError("a sampler started from a proposal needs its log density: return (z, log_q)")
        return z, None
    log_q = torch.as_tensor(log_q).detach().to(posterior.observed)
    if tuple(log_q.shape) != expected[:2]:
        raise ValueError(f"the init proposal returned log_q of shape {tuple(log_q.shape)}; expected {expected[:2]}")
    return z, posterior.log_prior(z) - log_q
