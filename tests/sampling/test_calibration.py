"""Calibration: logistic regression against known answers."""

from __future__ import annotations

import pytest
import torch

from cogenerate.sampling.calibration import CalibratedCritic, Calibration, calibrate, fit_logistic
from tests.sampling.conftest import ideal_critic


def test_fit_logistic_recovers_the_parameters_that_generated_the_labels() -> None:
    g = torch.Generator().manual_seed(0)
    scores = 3.0 * torch.randn(20_000, generator=g, dtype=torch.float64) + 5.0
    labels = torch.rand(20_000, generator=g, dtype=torch.float64) < torch.sigmoid(-1.5 + 0.8 * scores)
    fit = fit_logistic(scores, labels)
    assert fit.intercept == pytest.approx(-1.5, abs=0.1) and fit.slope == pytest.approx(0.8, abs=0.03)
    assert fit.count == 20_000 and 0 < fit.log_loss < 0.6931


def test_fit_logistic_is_the_maximum_likelihood_fit() -> None:
    import numpy as np
    from scipy.optimize import minimize

    g = torch.Generator().manual_seed(1)
    scores = torch.randn(500, generator=g, dtype=torch.float64)
    labels = (torch.rand(500, generator=g, dtype=torch.float64) < torch.sigmoid(0.3 + 2.0 * scores)).double()
    s, y = scores.numpy(), labels.numpy()

    def negative_log_likelihood(beta: np.ndarray) -> float:
        logits = beta[0] + beta[1] * s
        return float(np.sum(np.logaddexp(0.0, logits) - y * logits))

    reference = minimize(negative_log_likelihood, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    ours = fit_logistic(scores, labels)
    assert ours.intercept == pytest.approx(reference[0], abs=1e-4) and ours.slope == pytest.approx(reference[1], abs=1e-4)


def test_separable_scores_give_a_finite_steep_slope() -> None:
    fit = fit_logistic(torch.tensor([-2.0, -1.0, 1.0, 2.0]), torch.tensor([0, 0, 1, 1]))
    assert 5 < fit.slope < float("inf") and abs(fit.intercept) < 1e-6 * fit.slope


def test_bad_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="both present"):
        fit_logistic(torch.randn(4), torch.ones(4))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        fit_logistic(torch.randn(4), torch.ones(3))


def test_the_ideal_critic_is_already_calibrated(one_d) -> None:
    # real vs generated with equal counts: the Bayes-optimal logit is log p_data/p_G itself (a = 0, b = 1)
    fit = calibrate(one_d.model, one_d.real(20_000, seed=2), rng=torch.Generator().manual_seed(3))
    assert fit.intercept == pytest.approx(0.0, abs=0.05) and fit.slope == pytest.approx(1.0, abs=0.05)


def test_calibrated_critic_is_affine_in_the_raw_one(one_d) -> None:
    x = torch.linspace(-2, 2, 5).reshape(5, 1)
    critic = CalibratedCritic(ideal_critic, Calibration(intercept=1.0, slope=-2.0))
    assert torch.allclose(critic(x), 1.0 - 2.0 * ideal_critic(x))
