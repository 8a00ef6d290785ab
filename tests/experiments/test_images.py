from pathlib import Path

import pytest
import torch

from cogenerate.data.images import FASHION_MNIST_ROOT
from cogenerate.data.masks import make_operator
from cogenerate.experiments.images import ImagesConfig, evaluate_method, method_settings, reproduce_images, summarise
from cogenerate.models.dcgan import DCGANGenerator, weights_init


def test_every_method_gets_the_same_budget():
    config = ImagesConfig(budget=123)
    for method in config.methods:
        assert method_settings(method, config)["max_grad_evals"] == 123


def test_evaluate_method_reports_per_image_metrics():
    rng = torch.Generator().manual_seed(0)
    generator = weights_init(DCGANGenerator(8, image_size=28, channels=1, width=4), rng=rng)
    with torch.no_grad():
        images = generator(torch.randn(3, 8, generator=rng))  # images the generator can make
    operator = make_operator("centre", n=3, size=28, rng=rng)
    config = ImagesConfig(chains=4, budget=21, candidates=32)
    result = evaluate_method(generator, images, operator, "smc", config)
    for key in ("mse_hidden_estimate", "mse_hidden_best", "ssim_estimate", "ssim_best"):
        assert result[key].shape == (3,) and torch.isfinite(result[key]).all()
    assert result["grad_evals_per_chain"] <= 21
    assert ((result["coverage_2std"] >= 0) & (result["coverage_2std"] <= 1)).all()
    assert result["noise_scale"].shape == (3,)  # fitted per image (smc's default)
    fixed = evaluate_method(generator, images, operator, "smc", ImagesConfig(chains=4, budget=21, candidates=32,
                                                                             fit_noise=False, noise_std=0.3))
    assert (fixed["noise_scale"] == 0.3).all()


def test_method_options_reach_the_method():
    config = ImagesConfig(method_options={"smc-polish": {"prior_weight": 0.0}})
    polish = method_settings("smc-polish", config)["method"]
    assert (polish.smc.candidates, polish.lr, polish.prior_weight) == (2000, 0.01, 0.0)
    assert not hasattr(method_settings("smc", config)["method"], "prior_weight")


def test_summarise_gives_mean_and_normal_interval():
    mean, half = summarise(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and abs(half - 1.96 * torch.tensor([1.0, 2.0, 3.0, 4.0]).std().item() / 2) < 1e-6


@pytest.mark.skipif(not FASHION_MNIST_ROOT.exists(), reason="needs `apt-get install dataset-fashion-mnist`")
def test_reproduce_images_quick_writes_table_and_figures(tmp_path):
    result = reproduce_images(tmp_path, config=ImagesConfig.quick())
    rows = result["rows"]
    assert {r["iteration"] for r in rows} == {10, 20}
    assert {r["method"] for r in rows} == set(ImagesConfig.quick().methods)
    assert all(r["grad_evals_per_chain"] <= 20 for r in rows)
    for path in result["files"].values():
        assert Path(path).stat().st_size > 0
