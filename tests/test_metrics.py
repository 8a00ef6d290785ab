"""Tests for cogenerate.metrics."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_msssim import ms_ssim as reference_ms_ssim

from cogenerate.metrics import masked_mse, ms_ssim, mse, psnr, rank_correlation, ssim


def _images(n: int, channels: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    # smooth-ish images so SSIM is not trivially low
    base = torch.rand(n, channels, size // 4, size // 4, generator=rng) * 2 - 1
    x = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    noise = torch.randn(n, channels, size, size, generator=rng) * torch.linspace(0.05, 0.5, n).view(n, 1, 1, 1)
    return x, (x + noise).clamp(-1, 1)


def test_mse_and_psnr_known_values() -> None:
    x = torch.zeros(2, 1, 4, 4)
    y = torch.zeros(2, 1, 4, 4)
    y[0] = 0.1  # mse 0.01 -> psnr 10 log10(4 / 0.01) = 26.0206 dB
    y[1, :, :2] = 1.0  # half the pixels off by 1 -> mse 0.5 -> psnr 10 log10(8) = 9.0309 dB
    assert torch.allclose(mse(x, y), torch.tensor([0.01, 0.5]))
    assert torch.allclose(psnr(x, y), torch.tensor([10 * math.log10(400), 10 * math.log10(8)]))
    assert torch.allclose(psnr(x, y, data_range=1.0), torch.tensor([20.0, 10 * math.log10(2)]), atol=1e-5)
    assert mse(x, x).eq(0).all() and torch.isinf(psnr(x, x)).all()


def test_masked_mse_counts_only_hidden_pixels() -> None:
    x = torch.zeros(2, 3, 4, 4)
    y = torch.zeros(2, 3, 4, 4)
    y[:, :, :2] = 2.0  # error 4 on the top half
    y[:, :, 2:] = 100.0  # huge error on the bottom half, which is observed
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, 2:] = 1.0
    assert torch.allclose(masked_mse(x, y, mask), torch.tensor([4.0, 4.0]))
    half = mask.clone()
    half[1, :, 0] = 1.0  # image 1: only row 1 hidden
    y[1, :, 1] = 1.0
    assert torch.allclose(masked_mse(x, y, half), torch.tensor([4.0, 1.0]))
    assert torch.allclose(masked_mse(x, y, mask[:1]), torch.tensor([4.0, 2.5]))  # a shared mask
    assert torch.isnan(masked_mse(x, y, torch.ones(1, 1, 4, 4))).all()


@pytest.mark.parametrize("size, channels", [(8, 1), (28, 1), (32, 3), (64, 3)])
def test_ssim_and_ms_ssim_identical_and_ordered(size: int, channels: int) -> None:
    x, _ = _images(1, channels, size)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    x = x.expand(4, -1, -1, -1)
    y = x + noise * torch.tensor([0.05, 0.1, 0.2, 0.4]).view(4, 1, 1, 1)  # same noise, growing
    for metric in (ssim, ms_ssim):
        assert torch.allclose(metric(x, x), torch.ones(4), atol=1e-5)
        values = metric(x, y)
        assert values.shape == (4,)
        assert torch.all(values <= 1.0 + 1e-6) and torch.all(values > 0.0)
        assert torch.all(values[:-1] > values[1:])  # more noise, lower similarity


@pytest.mark.parametrize("metric", [mse, psnr, ssim, ms_ssim])
def test_batch_size_independence(metric) -> None:
    x, y = _images(7, 3, 32, seed=1)
    whole = metric(x, y)
    pieces = torch.cat([metric(x[:1], y[:1]), metric(x[1:4], y[1:4]), metric(x[4:], y[4:])])
    assert torch.allclose(whole, pieces, atol=1e-6)
    mask = torch.ones(7, 1, 32, 32)
    mask[:, :, 8:20, 4:30] = 0
    assert torch.allclose(masked_mse(x, y, mask), torch.cat([masked_mse(x[:3], y[:3], mask[:3]),
                                                              masked_mse(x[3:], y[3:], mask[3:])]))


def test_ms_ssim_matches_pytorch_msssim_on_large_images() -> None:
    x, y = _images(2, 3, 176, seed=2)
    ours = ms_ssim(x, y, win_size=11, levels=5)
    reference = reference_ms_ssim((x + 1) / 2, (y + 1) / 2, data_range=1.0, size_average=False)
    assert torch.allclose(ours, reference, atol=1e-4)


def test_ms_ssim_configuration_errors() -> None:
    x, y = _images(1, 1, 28)
    with pytest.raises(ValueError, match="window"):
        ms_ssim(x, y, levels=4)  # 28 -> 14 -> 7 -> 4 px < 7 px window
    with pytest.raises(ValueError, match="odd"):
        ssim(x, y, win_size=6)
    with pytest.raises(ValueError, match="same shape"):
        mse(x, y[:, :, :20])


def test_rank_correlation() -> None:
    a = torch.tensor([[1.0, 2.0, 2.0, 3.0, 4.0], [5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 5.0, 4.0], [1.0, 1.0, 1.0, 2.0, 2.0], [1.0, 4.0, 9.0, 16.0, 25.0]])
    # hand-checked against scipy.stats.spearmanr: 0.8721, -0.8660 (ties), 1 (monotone)
    expected = torch.tensor([0.8720815992723809, -0.8660254037844386, 1.0])
    assert torch.allclose(rank_correlation(a, b), expected, atol=1e-6)
    assert torch.allclose(rank_correlation(a, -b), -expected, atol=1e-6)
    assert torch.isnan(rank_correlation(torch.ones(1, 4), torch.arange(4.0)[None])).all()


def test_rank_correlation_matches_scipy_on_images() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (3, 1, 8, 8), generator=rng).float()  # many ties
    b = a + torch.randn(3, 1, 8, 8, generator=rng) * 2
    ours = rank_correlation(a, b)
    expected = torch.tensor([stats.spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(3)])
    assert torch.allclose(ours, expected.float(), atol=1e-6)
    # batch-size independence
    assert torch.allclose(ours, torch.cat([rank_correlation(a[:1], b[:1]), rank_correlation(a[1:], b[1:])]))


def _two_chain_completion(truth: torch.Tensor, mask: torch.Tensor, hidden_values: tuple[float, float],
                          noise_std: float):
    """A hand-built Completion of one image: chain c paints every hidden pixel hidden_values[c]."""
    from cogenerate.result import Completion

    chains = torch.stack([torch.where(mask > 0, truth, torch.full_like(truth, v)) for v in hidden_values])[None]
    log_weights = torch.full((1, 2), math.log(0.5))
    return Completion(
        samples=chains, completions=chains, estimate=chains.mean(1), latents=torch.zeros(1, 2, 3),
        log_weights=log_weights, log_evidence=torch.full((1,), math.nan), grad_evals=1, method="hand",
        noise_std=torch.tensor([noise_std]), hidden=(1 - mask).expand_as(truth)[None],
    )


def test_completion_metrics_known_values() -> None:
    from cogenerate.metrics import completion_metrics

    truth = torch.zeros(1, 8, 8)
    truth[:, 6:] = 1.0  # the last two hidden rows are bright
    mask = torch.ones(1, 8, 8)
    mask[:, 4:] = 0  # the bottom half is hidden: 32 pixels
    out = _two_chain_completion(truth, mask, (0.5, 0.1), noise_std=0.05)
    scores = completion_metrics(out, truth[None], mask[None])
    # chain 0: hidden squared errors 16·0.25 + 16·0.25 = 8; chain 1: 16·0.01 + 16·0.81 = 13.1
    assert scores["best_sample"]["chain"].tolist() == [0]
    assert torch.allclose(scores["best_sample"]["weight"], torch.tensor([0.5]))
    assert torch.allclose(scores["best_sample"]["hidden_mse"], torch.tensor([0.25]))
    # mean 0.3 on hidden pixels: errors 0.3 (rows 4-5) and 0.7 (rows 6-7); hidden MSE (0.09 + 0.49) / 2
    assert torch.allclose(scores["posterior_mean"]["hidden_mse"], torch.tensor([0.29]))
    assert torch.allclose(scores["posterior_mean"]["mse"], torch.tensor([0.145]))
    assert torch.allclose(scores["estimate"]["mse"], scores["posterior_mean"]["mse"])
    # predictive std sqrt(0.2² + 0.05²) = 0.206: rows 4-5 (error 0.3) inside 2·0.206, rows 6-7 (0.7) outside
    assert torch.allclose(scores["truth_within_2_predictive_std"], torch.tensor([0.5]))
    assert set(scores["estimate"]) == {"hidden_mse", "mse", "psnr", "ssim", "ms_ssim"}


def test_completion_metrics_without_a_mask_and_batch_independence() -> None:
    from cogenerate.metrics import completion_metrics
    from cogenerate.result import Completion

    truth, _ = _images(2, 1, 28, seed=3)
    mask = torch.ones(2, 1, 28, 28)
    mask[:, :, 8:20, 8:20] = 0
    parts = [_two_chain_completion(truth[i], mask[i], (0.2 * i, -0.3), noise_std=0.1) for i in range(2)]
    joined = Completion(**{name: torch.cat([getattr(p, name) for p in parts]) for name in
                           ("samples", "completions", "estimate", "latents", "log_weights", "log_evidence",
                            "noise_std", "hidden")}, grad_evals=1, method="hand")
    whole = completion_metrics(joined, truth, mask)
    for i, part in enumerate(parts):
        alone = completion_metrics(part, truth[i], mask[i])
        for key in ("posterior_mean", "estimate", "best_sample"):
            for name, value in alone[key].items():
                assert torch.allclose(whole[key][name][i:i + 1].to(value.dtype), value, atol=1e-6), (key, name)
    unmasked = completion_metrics(joined, truth, None)
    assert torch.isnan(unmasked["posterior_mean"]["hidden_mse"]).all()
    assert torch.allclose(unmasked["posterior_mean"]["mse"], whole["posterior_mean"]["mse"])
