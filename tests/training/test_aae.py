"""The AAE family: its losses by hand, both phases make progress, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cogenerate.training.aae import aae_step, reconstruction_error
from tests.training.family_helpers import check_resume_and_load, ramp, tiny


def test_reconstruction_error_by_hand() -> None:
    x = torch.zeros(2, 1, 1, 2)
    assert reconstruction_error(x, torch.tensor([1.0, 3.0, -1.0, 1.0]).reshape(2, 1, 1, 2)).item() == pytest.approx(3.0)


def test_a_few_steps_reduce_the_reconstruction_error() -> None:
    _, modules, optimizers, rng = tiny("aae", lr=3e-3, code_hidden=16)
    trace = [aae_step(modules, optimizers, ramp(), rng, None)[1] for _ in range(15)]
    assert trace[-1]["recon"] < 0.5 * trace[0]["recon"], [t["recon"] for t in trace]
    assert all(0 < t["loss_c"] < 5 and 0 < t["loss_e"] < 5 for t in trace)


def test_resume_and_load_keeps_the_code_discriminator_out_of_the_parts(tmp_path: Path) -> None:
    model = check_resume_and_load("aae", tmp_path, code_hidden=16)
    assert set(model.parts) == {"generator", "encoder"}
