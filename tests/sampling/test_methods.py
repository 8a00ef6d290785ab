"""run_sampler: calibrates the critic first, then dispatches; plain sampling is the prior pushed through G."""

from __future__ import annotations

import pytest
import torch

from cogenerate.models.base import GenerativeModel
from cogenerate.sampling.methods import run_sampler
from cogenerate.sampling.plain import plain
from tests.sampling.conftest import SIGMA_G, AffineGenerator


def test_plain_is_the_prior_through_the_generator(one_d) -> None:
    result = plain(one_d.model, n=10, rng=torch.Generator().manual_seed(4), max_batch=3)
    assert torch.allclose(result.samples, SIGMA_G * torch.randn(10, 1, generator=torch.Generator().manual_seed(4)))
    assert result.generator_calls == 10 and result.acceptance_rate == 1.0 and result.calls_per_sample == 1.0


def test_correctors_calibrate_on_the_validation_images_first(one_d) -> None:
    # a critic off by an affine map: calibration recovers the ideal one (slope 1/2 undoes the 2)
    model = one_d.model.with_parts(discriminator=lambda x: 2.0 * one_d.model.log_ratio(x) + 3.0)
    run = run_sampler(model, "drs", n=100, rng=torch.Generator().manual_seed(0), validation=one_d.real(20_000, seed=1),
                      burn_in=500)
    assert run.calibration.slope == pytest.approx(0.5, abs=0.03)
    assert run.calibration.intercept == pytest.approx(-1.5, abs=0.1)
    assert run.result.samples.shape == (100, 1)
    uncalibrated = run_sampler(model, "ddls", n=4, rng=torch.Generator(), calibrated=False, steps=1)
    assert uncalibrated.calibration is None


def test_what_each_method_needs_is_checked(one_d) -> None:
    with pytest.raises(ValueError, match="unknown sampling method"):
        run_sampler(one_d.model, "gibbs", n=1, rng=torch.Generator())
    with pytest.raises(ValueError, match="takes no options"):
        run_sampler(one_d.model, "plain", n=1, rng=torch.Generator(), steps=3)
    with pytest.raises(ValueError, match="start its chains"):
        run_sampler(one_d.model, "mh", n=1, rng=torch.Generator(), calibrated=False)
    bare = GenerativeModel.from_generator(AffineGenerator(), latent_dim=1)
    with pytest.raises(ValueError, match="discriminator or an energy"):
        run_sampler(bare, "drs", n=1, rng=torch.Generator())
