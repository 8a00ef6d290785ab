"""Learning from incomplete images by iterative refilling (Han et al. 2019, §6.4, Table III).

Every training image is seen only through its mask (1 = observed): its hidden pixels start
at 0 (mid grey on the [-1, 1] scale: "we zero-fill the occluded parts in the beginning") and,
each time the image is in a batch, are overwritten after the step with the model's
reconstruction g(μ(x̃)) of the current filled-in image x̃ ("then iteratively update missing
values using reconstructed images obtained from the generator model"; the VAE baseline of the
same table refills the same way, after Rezende et al. 2014). Any registered family with an
``encoder`` and a ``generator`` trains this way with its own step, unchanged: the triangle and
the VAE. The hidden pixels never enter: the functions take ``observed = mask · x`` and the mask.

The recovery error of Table III is the mean absolute difference on the hidden pixels between
the recovered and the true image, relative to the range of pixel values (2 on [-1, 1]).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from cogenerate.training.families import Family, get_family

__all__ = ["IncompleteRun", "recover", "recovery_error", "refill", "train_on_incomplete"]

PIXEL_RANGE = 2.0
"""Range of pixel values on the [-1, 1] scale (Table III divides the absolute error by it)."""


def refill(observed: Tensor, mask: Tensor, reconstruction: Tensor) -> Tensor:
    """``mask · observed + (1 − mask) · reconstruction``: observed pixels kept, hidden ones
    replaced; shapes ``(N, C, H, W)`` (``mask`` broadcasts)."""
    return mask * observed + (1 - mask) * reconstruction


class IncompleteRun(NamedTuple):
    """What :func:`train_on_incomplete` returns.

    Attributes:
        modules: the trained parts by role.
        filled: ``(N, C, H, W)`` the training images with their hidden pixels refilled.
        losses: one ``{name: value}`` per iteration (the family's step losses).
    """

    modules: dict[str, nn.Module]
    filled: Tensor
    losses: list[dict[str, float]]


def _reconstruct(modules: Mapping[str, nn.Module], images: Tensor) -> Tensor:
    with torch.no_grad():
        return modules["generator"](modules["encoder"](images)[0])


def train_on_incomplete(family: str | Family, observed: Tensor, mask: Tensor, *, settings: Mapping[str, Any],
                        iterations: int, rng: torch.Generator,
                        progress: Callable[[float], None] | None = None) -> IncompleteRun:
    """Train ``family`` on occluded images, refilling the hidden pixels as it goes.

    Args:
        family: a registered family (or its name) whose parts include ``generator`` and ``encoder``.
        observed: ``(N, C, H, W)`` the training images with hidden pixels already zeroed
            (``mask · x``); only these values are read.
        mask: ``(N, 1, H, W)`` or ``(N, C, H, W)``, 1 = observed.
        settings: the family's full settings (:func:`~cogenerate.training.families.resolve_settings`).
        iterations: training steps; each draws ``settings["batch_size"]`` images with
            replacement from ``rng``.
        rng: every draw: the initial weights, the batches, the steps' own draws.
        progress: ``progress(fraction)``.

    Returns:
        An :class:`IncompleteRun`.
    """
    family = get_family(family)
    if family.build is None:
        raise ValueError(f"the {family.label} family cannot build its parts")
    observed = mask * observed  # never trust a caller to have hidden the pixels
    modules = family.build(settings, tuple(observed.shape[1:]), rng)
    if "encoder" not in modules or "generator" not in modules:
        raise ValueError(f"the {family.label} family has no encoder to refill with (parts: {sorted(modules)})")
    optimizers = family.make_optimizers(modules, settings)
    state = family.init_state(modules, settings) if family.init_state is not None else None
    filled = observed.clone()
    n, batch = observed.shape[0], int(settings["batch_size"])
    losses = []
    for module in modules.values():
        module.train()
    for iteration in range(iterations):
        index = torch.randint(n, (batch,), generator=rng)
        state, step_losses = family.step(modules, optimizers, filled[index], rng, state)
        losses.append(step_losses)
        filled[index] = refill(observed[index], mask[index], _reconstruct(modules, filled[index]))
        if progress is not None:
            progress((iteration + 1) / iterations)
    for module in modules.values():
        module.eval()
    return IncompleteRun(modules, filled, losses)


def recover(modules: Mapping[str, nn.Module], filled: Tensor, observed: Tensor, mask: Tensor, *,
            batch_size: int = 500) -> Tensor:
    """The recovered images: observed pixels kept, hidden ones ``g(μ(x̃))`` of the filled-in
    image x̃ (modules in eval mode), ``(N, C, H, W)``."""
    out = []
    for start in range(0, filled.shape[0], batch_size):
        part = slice(start, start + batch_size)
        out.append(refill(observed[part], mask[part], _reconstruct(modules, filled[part])))
    return torch.cat(out)


def recovery_error(recovered: Tensor, truth: Tensor, mask: Tensor) -> Tensor:
    """Table III's error per image: mean ``|recovered − truth|`` over the hidden pixels divided
    by the pixel range (2 on [-1, 1]): ``(N, C, H, W) -> (N,)``; 0 for an image with nothing hidden."""
    hidden = (1 - mask).expand_as(truth)
    total = ((recovered - truth).abs() * hidden).flatten(1).sum(1)
    return total / hidden.flatten(1).sum(1).clamp_min(1) / PIXEL_RANGE
