"""The co-generation protocol: fixed masks per image index, scores against known answers, one row per pattern."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from cogenerate.data.masks import top_half
from cogenerate.evaluation.cogeneration import (
    METRICS, completion_scores, cogeneration_table, evaluate_cogeneration, protocol_operator, protocol_seed, row_as_dict,
)
from cogenerate.evaluation.scores import summarise
from cogenerate.operators import Downsample, Mask
from cogenerate.result import Completion


class TinyImageGenerator(nn.Module):
    """z (4) -> tanh(W z) as 1×8×8 images."""

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 4
        self.weight = nn.Parameter(torch.randn(4, 64, generator=torch.Generator().manual_seed(0)) / 2)

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(z @ self.weight).reshape(-1, 1, 8, 8)


def test_random_masks_depend_on_the_seed_and_the_image_index_only() -> None:
    assert protocol_seed(0, 7) == protocol_seed(0, 7) != protocol_seed(0, 8) != protocol_seed(1, 7)
    batch = protocol_operator("box", [5, 6, 7, 8], size=28)
    alone = protocol_operator("box", [7], size=28)
    assert isinstance(batch, Mask) and batch.mask.shape == (4, 1, 28, 28)
    assert torch.equal(batch.mask[2:3], alone.mask)
    assert not torch.equal(batch.mask[0], batch.mask[1])
    assert not torch.equal(protocol_operator("box", [7], size=28, mask_seed=1).mask, alone.mask)
    assert torch.equal(protocol_operator("top-half", [0, 1], size=28).mask, top_half(2, 28))
    sr4 = protocol_operator("sr4", [0, 1, 2], size=28)
    assert isinstance(sr4, Downsample) and sr4.factor == 4


def test_scores_of_a_perfect_completion_are_known() -> None:
    # every chain equals the truth: MSE 0, SSIM 1, all inside ±2σ, and the CRPS of N(y, σ²) at y,
    # σ (√2 − 1)/√π = σ (2φ(0) − 1/√π)
    truth = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    hidden = 1 - top_half(2, 8).double()
    samples = truth.unsqueeze(1).expand(2, 3, 1, 8, 8)
    completion = Completion(samples=samples, completions=samples, estimate=truth, latents=torch.zeros(2, 3, 4),
                            log_weights=torch.full((2, 3), -math.log(3), dtype=torch.float64),
                            log_evidence=torch.tensor([-1.0, math.nan]), grad_evals=7, method="test",
                            noise_std=torch.tensor([0.1, 0.2], dtype=torch.float64), hidden=hidden)
    scores = completion_scores(completion, truth)
    assert scores["hidden_mse"].tolist() == [0.0, 0.0]
    assert scores["ssim"].tolist() == pytest.approx([1.0, 1.0])
    assert scores["within_2_std"].tolist() == [1.0, 1.0]
    unit = (math.sqrt(2) - 1) / math.sqrt(math.pi)
    assert scores["crps"].tolist() == pytest.approx([0.1 * unit, 0.2 * unit], rel=1e-9)
    assert scores["grad_evals"].tolist() == [7.0, 7.0]
    assert summarise(scores["log_evidence"]).n == 1  # a method without evidence gives NaN, left out


def test_one_row_per_pattern_reproducible_at_the_budget() -> None:
    generator = TinyImageGenerator()
    images = generator(torch.randn(3, 4, generator=torch.Generator().manual_seed(2))).detach()

    def run(seed: int) -> list:
        return evaluate_cogeneration(generator, images, rng=torch.Generator().manual_seed(seed), method="ais",
                                     masks=("box", "top-half", "sr4"), chains=2, max_grad_evals=12, batch=2)

    rows = run(0)
    assert [row.mask for row in rows] == ["box", "top-half", "sr4"]
    for row in rows:
        assert row.method == "ais" and row.images == 3 and row.chains == 2
        assert set(row.summaries) == set(METRICS) and all(row.per_image[k].shape == (3,) for k in METRICS)
        assert row.summaries["grad_evals"].mean <= 12
        for key in ("hidden_mse", "crps", "ssim", "within_2_std", "log_evidence"):
            assert row.summaries[key].n == 3 and row.summaries[key].low <= row.summaries[key].mean
    again = run(0)
    assert all(torch.equal(a.per_image["hidden_mse"], b.per_image["hidden_mse"]) for a, b in zip(rows, again))
    plain = row_as_dict(rows[0])
    assert plain["mask"] == "box" and set(plain["hidden_mse"]) == {"mean", "low", "high", "n"}
    table = cogeneration_table(rows)
    assert table.count("\n") == 5 and "| sr4 |" in table


def test_a_sampler_reports_its_evidence_and_progress() -> None:
    generator = TinyImageGenerator()
    images = generator(torch.randn(2, 4, generator=torch.Generator().manual_seed(3))).detach()
    seen: list[tuple[str, float]] = []
    (row,) = evaluate_cogeneration(generator, images, rng=torch.Generator().manual_seed(0), method="smc",
                                   masks=("top-half",), chains=4, max_grad_evals=12,
                                   progress=lambda stage, f: seen.append((stage, f)))
    assert row.summaries["log_evidence"].n == 2 and math.isfinite(row.summaries["log_evidence"].mean)
    assert row.summaries["grad_evals"].mean <= 12
    assert seen[-1] == ("co-generation top-half", 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_cogeneration(generator, images[:0], rng=torch.Generator(), method="smc")
