"""cogenerate.cli.web.views: what the page shows."""

from __future__ import annotations

import numpy as np
import torch

from cogenerate.cli.web import views


def test_enlarged_images_are_rgb_squares_of_whole_pixels() -> None:
    image = torch.linspace(-1, 1, 28 * 28).reshape(1, 28, 28)
    big = views.enlarge(image)
    assert big.shape == (168, 168, 3) and big.dtype == np.uint8
    assert (big[:6, :6] == big[0, 0]).all() and big[0, 0, 0] == 0 and big[-1, -1, 0] == 255
    assert views.enlarge(torch.zeros(3, 64, 64)).shape == (128, 128, 3)


def test_the_heat_map_is_scaled_to_its_maximum() -> None:
    std = torch.zeros(1, 28, 28)
    std[0, 3, 4] = 0.2
    heat = views.heat_map(std)
    assert heat.shape == (168, 168, 3)
    assert not (heat[18, 24] == heat[0, 0]).all()  # the one uncertain pixel stands out
    assert (views.heat_map(torch.zeros(1, 28, 28)) == heat[0, 0]).all()


def test_weight_bars_are_proportional_with_a_uniform_line() -> None:
    bars = views.weight_bars(torch.tensor([0.5, 0.25, 0.25, 0.0]), width=40, height=101)
    assert bars.shape == (101, 40, 3)
    coloured = (bars != 255).any(-1) & (bars[..., 0] > bars[..., 2])
    # 99 px for the largest weight; the grey line at the uniform weight 1/4 crosses the two bars of that height
    assert [int(coloured[:, 10 * i + 4].sum()) for i in range(4)] == [99, 50, 50, 0]
    grey = (bars == 120).all(-1).any(1)
    assert np.flatnonzero(grey).tolist() == [100 - round(99 * 0.25 / 0.5)]


def test_the_gallery_is_heaviest_first_with_captions() -> None:
    completions = torch.stack([torch.full((1, 28, 28), v) for v in (-1.0, 0.0, 1.0)])
    items = views.gallery(completions, torch.tensor([0.2, 0.7, 0.1]), shown=2)
    assert [caption for _, caption in items] == ["chain 1 · w = 0.70", "chain 0 · w = 0.20"]
    assert items[0][0][0, 0, 0] == 128 and items[0][0].shape == (112, 112, 3)


def test_texts_carry_the_numbers_and_the_command() -> None:
    live = views.live_text(method="smc", fraction=0.42, chains=8, ess=3.25, beta=0.0123, seconds=2.4)
    assert live == "**Running smc** · 42% done · β = 0.0123 · ESS 3.2 of 8 chains · 2 s"
    report = {"method": "gd", "chains": 4, "grad_evals": 20, "seconds": 1.25, "ess": 4.0, "log_evidence": None,
              "fitted_noise_std": 0.1, "command": "cogen complete --model m", "metrics": None,
              "diagnostics": {"warnings": ["importance weights collapsed"]}}
    text = views.final_text(report, cancelled=True)
    assert text.startswith("**Cancelled: partial result of gd**, 4 chains, 20 gradient evaluations per chain, 1.2 s")
    assert "log evidence log p(observed): **n/a**" in text and "⚠ importance weights collapsed" in text
    assert text.endswith("`cogen complete --model m`")
