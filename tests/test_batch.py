"""Batch completion: each image a function of (seed, index) alone (two processes: tests/test_distributed.py)."""

from __future__ import annotations

import math

import torch

from cogenerate.batch import complete_dataset, image_seed, record, summary_row
from cogenerate.evaluation.cogeneration import METRICS, protocol_seed
from cogenerate.experiments.images import ImagesConfig, evaluate_method
from cogenerate.models.dcgan import DCGANGenerator, weights_init
from cogenerate.operators import Mask

OPTIONS = {"mask": "box", "seed": 4, "method": "smc", "chains": 3, "max_grad_evals": 8}
INDICES = [11, 3, 7]


def tiny_problem() -> tuple[DCGANGenerator, torch.Tensor]:
    """A width-4 DCGAN generator and three images it can make."""
    rng = torch.Generator().manual_seed(0)
    generator = weights_init(DCGANGenerator(6, image_size=28, channels=1, width=4), rng=rng).eval()
    with torch.no_grad():
        images = generator(torch.randn(len(INDICES), 6, generator=rng))
    return generator, images


def experiment(generator: DCGANGenerator, images: torch.Tensor) -> dict:
    mask = Mask(torch.ones(len(INDICES), 1, 28, 28).index_fill_(2, torch.arange(9, 19), 0.0))
    config = ImagesConfig(chains=3, budget=8, candidates=16, seed=4)
    return evaluate_method(generator, images, mask, "smc", config, indices=INDICES)


def test_an_image_result_depends_on_its_index_not_on_the_other_images() -> None:
    generator, images = tiny_problem()
    together = complete_dataset(generator, images, INDICES, **OPTIONS)
    alone = complete_dataset(generator, images[1:2], INDICES[1:2], **OPTIONS)
    assert [result.index for result in together] == INDICES
    assert record(alone[0]) == record(together[1])
    assert torch.equal(alone[0].estimate, together[1].estimate)
    assert together[0].scores != together[1].scores
    for result in together:
        assert set(result.scores) == set(METRICS)
        assert all(math.isfinite(result.scores[key]) for key in ("hidden_mse", "ssim", "crps", "log_evidence"))
        assert 0 < result.scores["grad_evals"] <= 8
        assert result.observed.min() == 0 and result.observed.max() == 1  # a box is hidden
    row = summary_row(together, mask="box", method="smc", chains=3, max_grad_evals=8)
    assert row.images == 3 and row.summaries["hidden_mse"].n == 3
    assert math.isclose(row.summaries["ssim"].mean, sum(r.scores["ssim"] for r in together) / 3)


def test_seeds_of_masks_and_samplers_are_distinct_hashes_of_seed_and_index() -> None:
    seeds = {image_seed(seed, index) for seed in range(3) for index in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)
    assert image_seed(4, 11) != protocol_seed(4, 11)
