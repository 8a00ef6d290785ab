"""Observation operators and noise models.

An observation operator ``A`` maps a full sample ``x`` to what is observed of it. The
likelihood of the posterior compares ``A(G(z))`` with ``A(x)`` under a noise model:

    log p(x_o | z) = noise.log_prob(A(G(z)) - A(x), count)

Operators act on tensors of shape ``(B, C, *x_shape)`` (observations × chains) so that a
per-observation mask can differ between observations while being shared by its chains.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Operator",
    "Mask",
    "Downsample",
    "FunctionOperator",
    "NoiseModel",
    "Gaussian",
    "Laplace",
    "make_noise",
    "tempering_correction",
]


class Operator(ABC):
    """What is observed of a sample: ``(B, C, *x_shape) -> (B, C, *y_shape)``."""

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor: ...

    @abstractmethod
    def observed_count(self, batch: int, x_shape: tuple[int, ...]) -> Tensor:
        """Number of observed scalars per observation, shape ``(batch,)`` (float)."""

    def validate(self, batch: int, x_shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` if the operator cannot act on observations of this shape."""

    def to(self, device: torch.device, dtype: torch.dtype) -> Operator:
        return self


class Mask(Operator):
    """Pixel mask: 1 = observed, 0 = hidden.

    ``mask`` broadcasts against ``(B, *x_shape)``: shape ``x_shape``, ``(1, *x_shape)`` or
    ``(B, *x_shape)`` (or anything that broadcasts, such as ``(B, 1, H, W)`` for images).
    """

    def __init__(self, mask: Tensor):
        mask = torch.as_tensor(mask)
        if mask.dtype == torch.bool:
            mask = mask.float()
        if not torch.isfinite(mask).all():
            raise ValueError("mask contains NaN or inf; it must hold only 0 (hidden) and 1 (observed)")
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must hold only 0 (hidden) and 1 (observed)")
        self.mask = mask

    def _full(self, batch: int, x_shape: tuple[int, ...]) -> Tensor:
        """The mask broadcast to ``(batch, *x_shape)``."""
        m = self.mask
        if m.dim() == len(x_shape):
            m = m.unsqueeze(0)
        return m.expand(batch, *x_shape)

    def validate(self, batch: int, x_shape: tuple[int, ...]) -> None:
        try:
            torch.broadcast_shapes(tuple(self.mask.shape), (batch, *x_shape))
            self._full(batch, x_shape)
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(self.mask.shape)} does not broadcast to the observations' "
                f"shape {(batch, *x_shape)}; give a mask of shape {x_shape} or {(batch, *x_shape)}"
            ) from None

    def __call__(self, x: Tensor) -> Tensor:
        batch, x_shape = x.shape[0], tuple(x.shape[2:])
        return x * self._full(batch, x_shape).unsqueeze(1)

    def observed_count(self, batch: int, x_shape: tuple[int, ...]) -> Tensor:
        return self._full(batch, x_shape).flatten(1).sum(1)

    def full(self, batch: int, x_shape: tuple[int, ...]) -> Tensor:
        """The mask as a dense ``(batch, *x_shape)`` tensor."""
        return self._full(batch, x_shape)

    def to(self, device: torch.device, dtype: torch.dtype) -> Mask:
        return Mask(self.mask.to(device=device, dtype=dtype))


class Downsample(Operator):
    """Super-resolution: observe the ``factor``×``factor`` average-pooled image.

    Acts on the last two dimensions (H, W), which must be divisible by ``factor``.
    """

    def __init__(self, factor: int):
        if int(factor) < 1:
            raise ValueError(f"downsampling factor must be a positive integer, got {factor}")
        self.factor = int(factor)

    def validate(self, batch: int, x_shape: tuple[int, ...]) -> None:
        if len(x_shape) < 2 or x_shape[-1] % self.factor or x_shape[-2] % self.factor:
            raise ValueError(
                f"Downsample({self.factor}) needs images whose height and width are divisible by "
                f"{self.factor}; got sample shape {x_shape}"
            )

    def __call__(self, x: Tensor) -> Tensor:
        lead, (h, w) = x.shape[:-2], x.shape[-2:]
        pooled = F.avg_pool2d(x.reshape(-1, 1, h, w), self.factor)
        return pooled.reshape(*lead, h // self.factor, w // self.factor)

    def observed_count(self, batch: int, x_shape: tuple[int, ...]) -> Tensor:
        n = math.prod(x_shape) // (self.factor * self.factor)
        return torch.full((batch,), float(n))


class FunctionOperator(Operator):
    """Any callable ``(N, *x_shape) -> (N, *y_shape)`` applied identically to every observation."""

    def __init__(self, fn: Callable[[Tensor], Tensor]):
        self.fn = fn

    def __call__(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        y = self.fn(x.reshape(b * c, *x.shape[2:]))
        return y.reshape(b, c, *y.shape[1:])

    def observed_count(self, batch: int, x_shape: tuple[int, ...]) -> Tensor:
        probe = torch.zeros(1, 1, *x_shape)
        return torch.full((batch,), float(self(probe)[0, 0].numel()))


class NoiseModel(ABC):
    """Observation noise: ``log_prob(residual, count)`` sums over all but the first two dims."""

    scale: float
    # p(y | G(z))^β is this noise model with scale · β^(-power), up to a constant.
    power: float
    # The noise's standard deviation divided by its scale.
    std_per_scale: float

    @abstractmethod
    def log_prob(self, residual: Tensor, count: Tensor) -> Tensor:
        """``residual``: ``(B, C, *y_shape)``; ``count``: ``(B,)`` observed scalars -> ``(B, C)``."""

    @abstractmethod
    def log_normaliser(self, count: Tensor) -> Tensor:
        """``log_prob`` at a zero residual, ``(B,)``: minus the log normalising constant."""

    def tempered_scale(self, beta: Tensor) -> Tensor:
        """The scale ``s_β`` whose likelihood is proportional to this one raised to β."""
        return self.scale * beta.pow(-self.power)

    def evidence_correction(self, beta: Tensor, count: Tensor) -> Tensor:
        """``log p(y | s_β) − log ∫ p(z) p(y | z)^β dz``, ``(B,)``: what turns the normalising
        constant of the β-tempered target into the evidence at the noise scale ``s_β``.

        Both likelihoods share ``exp(−β·misfit/s)``; only their normalisers differ:
        ``(1 − β)·log_normaliser + count·power·log β``.
        """
        return tempering_correction(beta, self.log_normaliser(count), count * self.power)


def tempering_correction(beta: Tensor, log_normaliser: Tensor, exponent: Tensor) -> Tensor:
    """:meth:`NoiseModel.evidence_correction` from its terms that do not depend on β:
    ``(1 − β)·log_normaliser + exponent·log β`` (``exponent`` = count·power). A sampler that
    evaluates it at many β computes the terms once; a compiled graph takes them as tensors."""
    return (1 - beta) * log_normaliser + exponent * torch.log(beta)


class Gaussian(NoiseModel):
    """Independent Gaussian noise with standard deviation ``std`` on every observed value."""

    def __init__(self, std: float):
        if not std > 0:
            raise ValueError(f"noise_std must be positive, got {std}")
        self.std = self.scale = float(std)
        self.power = 0.5
        self.std_per_scale = 1.0

    def log_prob(self, residual: Tensor, count: Tensor) -> Tensor:
        sq = residual.pow(2).flatten(2).sum(2)
        return -0.5 * sq / self.std**2 + self.log_normaliser(count).unsqueeze(1)

    def log_normaliser(self, count: Tensor) -> Tensor:
        return -0.5 * count * math.log(2 * math.pi * self.std**2)


class Laplace(NoiseModel):
    """Independent Laplace (L1) noise with scale ``scale`` on every observed value."""

    def __init__(self, scale: float):
        if not scale > 0:
            raise ValueError(f"noise scale must be positive, got {scale}")
        self.scale = float(scale)
        self.power = 1.0
        self.std_per_scale = math.sqrt(2.0)

    def log_prob(self, residual: Tensor, count: Tensor) -> Tensor:
        l1 = residual.abs().flatten(2).sum(2)
        return -l1 / self.scale + self.log_normaliser(count).unsqueeze(1)

    def log_normaliser(self, count: Tensor) -> Tensor:
        return -count * math.log(2 * self.scale)


def make_noise(kind: str, scale: float) -> NoiseModel:
    """``"gaussian"`` (``scale`` = std) or ``"laplace"`` (``scale`` = Laplace scale b)."""
    if kind == "gaussian":
        return Gaussian(scale)
    if kind == "laplace":
        return Laplace(scale)
    raise ValueError(f"unknown noise model {kind!r}; choose 'gaussian' or 'laplace'")
