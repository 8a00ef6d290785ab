"""Learning from incomplete images: refilling, the recovery error by hand, hidden pixels never read."""

from __future__ import annotations

import pytest
import torch

from cogenerate.training.families import resolve_settings
from cogenerate.training.incomplete import recover, recovery_error, refill, train_on_incomplete


def test_refill_and_recovery_error_by_hand() -> None:
    observed = torch.tensor([1.0, 0.0, 0.0, -1.0]).reshape(1, 1, 2, 2)
    mask = torch.tensor([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    filled = refill(observed, mask, torch.full((1, 1, 2, 2), 0.5))
    assert torch.equal(filled.flatten(), torch.tensor([1.0, 0.5, 0.5, -1.0]))
    truth = torch.tensor([1.0, -0.5, 1.0, -1.0]).reshape(1, 1, 2, 2)
    # hidden errors |0.5 + 0.5| = 1 and |0.5 − 1| = 0.5: mean 0.75, over the range 2
    assert recovery_error(filled, truth, mask).item() == pytest.approx(0.375)
    assert recovery_error(truth, truth, torch.ones_like(mask)).item() == 0.0


@pytest.mark.parametrize("family", ["triangle", "vae"])
def test_training_never_reads_hidden_pixels_and_refills_them(family: str) -> None:
    rng = torch.Generator().manual_seed(0)
    truth = torch.linspace(-1, 1, 28).expand(16, 1, 28, 28).clone()
    mask = torch.ones(16, 1, 28, 28)
    mask[:, :, 10:18, 10:18] = 0
    settings = resolve_settings(family, {"width": 4, "latent_dim": 4, "batch_size": 8})
    runs = []
    for hidden_value in (0.0, 5.0):  # what lies under the mask must not matter
        images = torch.where(mask.bool(), truth, torch.full_like(truth, hidden_value))
        runs.append(train_on_incomplete(family, images, mask, settings=settings, iterations=4,
                                        rng=torch.Generator().manual_seed(1)))
    assert torch.equal(runs[0].filled, runs[1].filled)
    run = runs[0]
    assert len(run.losses) == 4
    assert torch.equal(run.filled * mask, truth * mask)
    assert bool((run.filled * (1 - mask)).abs().sum() > 0)  # refilled where drawn
    recovered = recover(run.modules, run.filled, truth * mask, mask)
    assert torch.equal(recovered * mask, truth * mask)
    assert recovery_error(recovered, truth, mask).shape == (16,)
