"""Golden tests: every method's outputs, bit for bit, as recorded before the code was restructured.

The recorded tensors live in ``tests/golden/complete.safetensors``. They were written by
``python -m tests.test_golden --record`` from the code as it was before the model-protocol
restructure (issue "One home for every model family"), which promised to leave behaviour
unchanged; a change that alters any of them on purpose must say why and record them again
(``python -m tests.test_golden --record NAME ...`` records those cases only).

Re-recorded on purpose: ``lg-smc-auto``, when SMC began to keep part of its budget for its
``final_moves`` and to re-tune the mass before each of them (issue "A default that wins in
every regime", target 2). The smc-polish cases pin ``rejuvenate=False``, their behaviour
before that issue.

Floating point is compared to 1e-4 relative in float32 (1e-12 in float64), not bit for bit: the
same code rounds differently on another CPU (measured: up to 3.5e-5 relative in the float32
DCGAN cases between the machine that recorded them and an AMD EPYC).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import cogenerate as cg
from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator, weights_init
from tests.conftest import make_linear_gaussian

GOLDEN = Path(__file__).parent / "golden" / "complete.safetensors"
# Outputs the issue asked to change: yeh used to report the default Gaussian σ = 0.1 it never
# used; it now reports the noise of its contextual L1 loss, Laplace of scale 1 (std √2).
FIXED = {f"{case}.noise_std": lambda old: torch.full_like(old, 2**0.5) for case in ("lg-yeh", "dc-yeh")}
FIELDS = ("samples", "completions", "estimate", "latents", "log_weights", "log_evidence", "noise_std")


def _linear_discriminator(dim: int) -> nn.Module:
    d = nn.Linear(dim, 1).double()
    with torch.no_grad():
        d.weight.copy_(torch.linspace(-0.3, 0.4, dim, dtype=torch.float64).reshape(1, -1))
        d.bias.fill_(0.1)
    return _Squeeze(d)


class _Squeeze(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).squeeze(-1)


def _tiny_dcgan():
    g = weights_init(DCGANGenerator(8, image_size=28, channels=1, width=8), rng=torch.Generator().manual_seed(5))
    d = weights_init(DCGANDiscriminator(image_size=28, channels=1, width=8), rng=torch.Generator().manual_seed(6))
    g.eval(), d.eval()
    with torch.no_grad():
        truth = g(torch.randn(2, 8, generator=torch.Generator().manual_seed(7)))
    mask = torch.ones(1, 1, 28, 28)
    mask[..., 8:20, 6:22] = 0
    return g, d, truth, mask


# name -> (problem, complete() keyword arguments). Method settings are given as settings objects.
# smc-polish is pinned to restart_fraction=0.0, rejuvenate=False, refit_below=0.0 and estimate="best", its
# behaviour before the issue "A default that wins in every regime" changed these defaults on purpose.
def _cases():
    yield "lg-ais", "lg", dict(method=cg.AIS(schedule="sigmoid", step_size=0.1), steps=6, leapfrog=3)
    yield "lg-ais-dual", "lg", dict(method=cg.AIS(adapt="dual-averaging", schedule="linear"), steps=5, leapfrog=2)
    yield "lg-smc", "lg", dict(method="smc", leapfrog=3, noise_std=0.5)
    yield "lg-smc-auto", "lg", dict(method=cg.SMC(candidates=40, final_moves=2), leapfrog=2, max_grad_evals=30)
    yield "lg-smc-laplace", "lg", dict(method="smc", noise="laplace", noise_std=0.4, leapfrog=2, max_grad_evals=25)
    yield "lg-smc-disc", "lg", dict(method="smc", noise_std=0.5, leapfrog=2, max_grad_evals=25, critic=0.5)
    yield "lg-gd", "lg", dict(method=cg.GD(lr=0.05), steps=7)
    yield "lg-gd-best", "lg", dict(method=cg.GDBest(candidates=50), steps=5)
    yield "lg-yeh", "lg", dict(method="yeh", steps=5, critic=1.0)
    yield "lg-smc-polish", "lg", dict(method=cg.SMCPolish(smc=cg.SMC(leapfrog=5, candidates=50), restart_fraction=0.0, rejuvenate=False, refit_below=0.0, estimate="best"), leapfrog=2, max_grad_evals=30)
    yield "dc-smc-polish", "dc", dict(method=cg.SMCPolish(smc=cg.SMC(leapfrog=5, candidates=30), restart_fraction=0.0, rejuvenate=False, refit_below=0.0, estimate="best"), leapfrog=2, max_grad_evals=20)
    yield "dc-ais", "dc", dict(method="ais", steps=3, leapfrog=2, noise_std=0.2)
    yield "dc-gd-best", "dc", dict(method=cg.GDBest(candidates=20), steps=4)
    yield "dc-yeh", "dc", dict(method="yeh", steps=3, critic=1.0)
    yield "dc-smc-sr2", "dc-sr2", dict(method="smc", leapfrog=2, max_grad_evals=15)


def _run(problem: str, kwargs: dict) -> cg.Completion:
    kwargs = dict(kwargs)
    weight = kwargs.pop("critic", None)
    if problem == "lg":
        p = make_linear_gaussian(batch=2)
        g, observed, mask, d = p.generator, p.observed, p.mask, _linear_discriminator(6)
    else:
        g, d, observed, mask = _tiny_dcgan()
        if problem == "dc-sr2":
            mask = cg.Downsample(2)
    if weight is not None:
        kwargs.update(discriminator=d, discriminator_weight=weight)
    return cg.complete(g, observed, mask, chains=5, seed=3, **kwargs)


TOLERANCE = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def _record(names: list[str]) -> None:
    """Record the cases ``names`` (all when empty) and keep the others' recordings."""
    tensors = load_file(str(GOLDEN)) if GOLDEN.exists() and names else {}
    for name, problem, kwargs in _cases():
        if names and name not in names:
            continue
        out = _run(problem, kwargs)
        for field in FIELDS:
            tensors[f"{name}.{field}"] = getattr(out, field).clone().contiguous()
        tensors[f"{name}.grad_evals"] = torch.tensor(out.grad_evals)
    GOLDEN.parent.mkdir(exist_ok=True)
    save_file(tensors, str(GOLDEN))


@pytest.mark.parametrize("name, problem, kwargs", list(_cases()), ids=[c[0] for c in _cases()])
def test_outputs_equal_the_recorded_ones(name, problem, kwargs):
    golden = load_file(str(GOLDEN))
    out = _run(problem, kwargs)
    assert out.grad_evals == int(golden[f"{name}.grad_evals"])
    for field in FIELDS:
        got, want = getattr(out, field), golden[f"{name}.{field}"]
        if f"{name}.{field}" in FIXED:
            want = FIXED[f"{name}.{field}"](want)
        assert got.dtype == want.dtype and got.shape == want.shape, f"{name}: {field} changed dtype or shape"
        same = torch.allclose(got, want, equal_nan=True, **TOLERANCE.get(got.dtype, dict(rtol=0, atol=0)))
        assert same, f"{name}: {field} differs from the recording"


if __name__ == "__main__" and "--record" in sys.argv:
    _record(sys.argv[sys.argv.index("--record") + 1:])
