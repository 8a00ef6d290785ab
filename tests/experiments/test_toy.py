import math

import torch
from torch import nn

from cogenerate.experiments.toy import (
    ToyConfig,
    reconstruction_error,
    reference_posterior,
    results_rows,
    run_methods,
    toy_observation,
)


class Identity(nn.Module):
    latent_dim = 2

    def forward(self, z):
        return z


def test_reference_posterior_matches_closed_form_for_identity_generator():
    # G(z) = z: x1 | x2 = 0 is N(0, 1) and x2 | x2 = 0 is N(0, σ²/(1 + σ²)).
    sigma = 0.5
    ref = reference_posterior(Identity(), ToyConfig(noise_std=sigma), draws=400_000)
    var2 = sigma**2 / (1 + sigma**2)
    assert abs(ref["mean_error"] - (2 + var2) / 2) < 0.01
    assert abs(ref["log_evidence"] - (-0.5 * math.log(2 * math.pi * (1 + sigma**2)))) < 0.005


def test_reconstruction_error_is_zero_at_the_answer():
    assert reconstruction_error(torch.tensor([1.0, 0.0])).item() == 0.0
    assert math.isclose(reconstruction_error(torch.tensor([0.8, 0.0])).item(), 0.02, rel_tol=1e-5)


def test_run_methods_and_rows_on_a_known_generator():
    # G(z) = (1 + 0.05 z1, z2): every posterior sample is near (1, 0).
    class Near(nn.Module):
        latent_dim = 2

        def forward(self, z):
            return torch.stack([1 + 0.05 * z[:, 0], z[:, 1]], 1)

    config = ToyConfig(chains=50, gd={"steps": 50, "options": {"lr": 0.05}}, ais={"steps": 20, "leapfrog": 5},
                       smc={"leapfrog": 5})
    results = {1: run_methods(Near(), config)}
    rows = results_rows(results, {1: reference_posterior(Near(), config, draws=100_000)})
    by_method = {r["method"]: r for r in rows}
    assert by_method["exact posterior (10⁶ IS draws)"]["weighted_fraction_within_0.01"] > 0.95
    assert by_method["smc"]["fraction_within_0.01"] > 0.9
    assert {r["method"] for r in rows} >= {"gd", "ais", "smc"}
    observed, mask = toy_observation()
    assert observed.tolist() == [[0.0, 0.0]] and mask.tolist() == [0.0, 1.0]
