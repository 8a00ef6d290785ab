"""The Bayesian GAN family: prior and noise terms by hand, the noise's scale, exact resume, M generators."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cogenerate.training.bayesian_gan import (
    BAYESIAN_GAN, bayesian_gan_step, generator_names, sghmc_noise_loss, weight_prior_loss,
)
from tests.training.family_helpers import check_resume_and_load, ramp, tiny


def test_prior_and_noise_terms_by_hand() -> None:
    w = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    assert weight_prior_loss(w, prior_std=2.0, observed=10).item() == pytest.approx(14 / (2 * 4 * 10))
    n = [torch.tensor([0.5, -1.0]), torch.tensor([[2.0]])]
    assert sghmc_noise_loss(w, n, observed=4).item() == pytest.approx((0.5 - 2 + 6) / 4)
    assert generator_names(3) == ("generator", "generator_1", "generator_2")


def test_the_injected_noise_has_variance_2_alpha_eta_over_n_squared() -> None:
    """With the likelihood's gradient removed (lr 0 elsewhere), the prior and noise gradients of one
    generator are w/(σ_p² N) + n/N; their spread over steps is √(2αη)/N."""
    settings, modules, optimizers, rng = tiny("bayesian-gan", generator_samples=2)
    generator = modules["generator"]
    grads = []
    for _ in range(30):
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = 0.0
        bayesian_gan_step(modules, optimizers, ramp(), rng, None, friction=0.5, noise_lr=0.02, gen_observed=1.0)
        grads.append(next(generator.parameters()).grad.clone())
    spread = torch.stack(grads).std(0).mean().item()
    assert spread == pytest.approx(math.sqrt(2 * 0.5 * 0.02), rel=0.2)  # the likelihood gradient is ~1e-3


def test_a_few_steps_train_every_generator_sample() -> None:
    _, modules, optimizers, rng = tiny("bayesian-gan", generator_samples=3, lr=3e-3)
    assert set(modules) == {"generator", "generator_1", "generator_2", "discriminator"}
    trace = [bayesian_gan_step(modules, optimizers, ramp(), rng, None)[1] for _ in range(12)]
    assert trace[-1]["loss_d"] < trace[0]["loss_d"], trace
    first = [p.detach() for p in modules["generator"].parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(first, modules["generator_1"].parameters()))


def test_resume_and_load_as_a_model_with_several_generators(tmp_path: Path) -> None:
    model = check_resume_and_load("bayesian-gan", tmp_path, generator_samples=3)
    assert set(model.parts) == {"generator", "generator_1", "generator_2", "discriminator"}
    assert len(model.generators) == 3 and BAYESIAN_GAN.name == "bayesian-gan"
