"""``cogen complete``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cogenerate.cli import main
from cogenerate.models.loading import load_model
from tests.cli.helpers import error_line

REPORT_KEYS = {
    "model", "input", "image_shape", "mask", "method", "chains", "grad_evals", "log_evidence", "ess",
    "weights", "metrics", "diagnostics", "files", "seconds", "noise_std", "seed",
}
METRIC_KEYS = {"hidden_mse", "mse", "psnr", "ssim", "ms_ssim"}


@pytest.mark.fashion_mnist
@pytest.mark.parametrize(
    ("method", "extra", "mask"),
    [("gd", ["--steps", "5"], "centre"), ("smc", ["--budget", "30"], "mb10"), ("smc", ["--budget", "30"], "sr4"),
     ("smc-polish", ["--budget", "30", "--noise-std", "auto"], "centre")],
)
def test_complete_writes_figure_and_report(method: str, extra: list[str], mask: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quiet", "complete", "--model", "fashion-mnist", "--index", "3", "--mask", mask,
            "--method", method, "--chains", "4", *extra, "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "completion.png" in out
    report = json.loads((tmp_path / "completion.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["method"] == method and report["chains"] == 4 and report["image_shape"] == [1, 28, 28]
    assert report["input"] == {"dataset": "fashion-mnist", "split": "test", "index": 3}
    assert report["grad_evals"] >= 1
    if method.startswith("smc"):
        assert report["grad_evals"] <= 30
        assert isinstance(report["log_evidence"], float)
    # The default: the model's own σ on a pixel mask, fitted per image for other operators (sr4) or
    # when asked for, where the method can fit it; 0.1 for the others.
    if method == "gd":
        assert report["noise_std"] == 0.1
    elif mask == "sr4" or "auto" in extra:
        assert report["noise_std"] == "auto"
    else:
        assert report["noise_std"] == load_model("fashion-mnist").config["noise_std"]["value"]
    fitted = report["noise_std"] == "auto"
    assert fitted or report["fitted_noise_std"] == pytest.approx(report["noise_std"])
    if fitted:  # far above the floor, 1 % of the image's scale
        assert 0.05 < report["fitted_noise_std"] < 1
    assert len(report["weights"]) == 4 and abs(sum(report["weights"]) - 1) < 1e-4
    assert 1 <= report["ess"] <= 4 + 1e-4
    for key in ("posterior_mean", "estimate", "best_sample"):
        assert METRIC_KEYS <= set(report["metrics"][key])
    assert 0 <= report["metrics"]["truth_within_2_predictive_std"] <= 1
    assert (report["metrics"]["posterior_mean"]["hidden_mse"] is None) == (mask == "sr4")
    assert report["metrics"]["best_sample"]["mse"] <= report["metrics"]["estimate"]["mse"] + 1e-6 or method != "gd"
    for name in ("figure", "mean", "samples"):
        assert Path(report["files"][name]).is_file()
    with Image.open(tmp_path / "mean.png") as im:
        assert im.size == (28, 28)


def test_complete_resizes_an_image_file_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    mask = np.full((40, 50), 255, np.uint8)
    mask[10:30, 15:35] = 0
    Image.fromarray(mask).save(tmp_path / "hole.png")
    argv = ["complete", "--model", "mnist", "--image", str(tmp_path / "photo.png"),
            "--mask", f"file:{tmp_path / 'hole.png'}", "--method", "gd", "--steps", "3", "--chains", "2",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "resized it from 50×40 to 28×28" in err and "converted it to grey" in err
    report = json.loads((tmp_path / "out" / "completion.json").read_text())
    assert report["input"]["original_size"] == [50, 40]
    assert report["hidden_pixels"] > 0


def test_complete_on_a_training_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["--quiet", "train", "--data", "digits", "--size", "28", "--width", "4", "--latent-dim", "4",
                 "--iterations", "2", "--out", str(run)]) == 0
    argv = ["--quiet", "complete", "--model", str(run), "--index", "0", "--mask", "top-half", "--method", "gd",
            "--steps", "2", "--chains", "2", "--out", str(tmp_path / "out"), "--discriminator-weight", "0.1"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "completion.json").read_text())
    assert report["input"]["dataset"] == "digits"  # the run's own data set
    assert report["model"].endswith("iter_0000002")


def test_complete_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["complete", "--method", "gd", "--steps", "2", "--chains", "2", "--out", str(tmp_path / "out")]
    line = error_line(capsys, [*base, "--model", "cifar-gan", "--index", "0", "--mask", "centre"])
    assert "unknown model 'cifar-gan'" in line and "fashion-mnist" in line
    line = error_line(capsys, [*base, "--model", "mnist", "--image", str(tmp_path / "nope.png"), "--mask", "box"])
    assert "does not exist" in line
    line = error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", "blob"])
    assert "unknown observation spec 'blob'" in line and "centre" in line
    line = error_line(capsys, [*base, "--model", "mnist", "--index", "100000", "--mask", "centre"])
    assert "out of range" in line
    line = error_line(capsys, [*base, "--model", "mnist", "--mask", "centre"])
    assert "--image FILE" in line
    line = error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", "sr3"])
    assert "not divisible" in line
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small-mask.png")
    line = error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", f"file:{tmp_path / 'small-mask.png'}"])
    assert "10×10" in line and "28×28" in line
    (tmp_path / "broken.png").write_bytes(b"not an image")
    line = error_line(capsys, [*base, "--model", "mnist", "--image", str(tmp_path / "broken.png"), "--mask", "box"])
    assert "cannot read image" in line
    line = error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", "centre", "--method", "magic"])
    assert "unknown method 'magic'" in line
    line = error_line(capsys, [*base, "--model", "mnist", "--index", "0", "--mask", "centre", "--noise-std", "auto"])
    assert "noise_std='auto' needs a method that fits the noise scale (smc, smc-polish)" in line
    if not torch.cuda.is_available():
        line = error_line(capsys, ["--device", "cuda", *base, "--model", "mnist", "--index", "0", "--mask", "centre"])
        assert "CUDA is not available" in line
    assert not (tmp_path / "out" / "completion.json").exists()


def test_debug_reraises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        main(["--debug", "--quiet", "complete", "--model", "nope", "--index", "0", "--mask", "centre"])


def test_complete_a_third_party_rgb_generator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--model module.path:factory returning a bare nn.Module of 3×32×32 images, latent size given."""
    rgb = np.random.default_rng(1).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    argv = ["--quiet", "complete", "--model", "tests.cli.helpers:rgb_generator", "--latent-dim", "8",
            "--image", str(tmp_path / "photo.png"), "--mask", "centre", "--method", "smc", "--budget", "20",
            "--chains", "3", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "completion.json").read_text())
    assert report["image_shape"] == [3, 32, 32] and report["model"] == "tests.cli.helpers:rgb_generator"
    assert report["model_family"] == "custom" and report["grad_evals"] <= 20
    assert 0 <= report["metrics"]["truth_within_2_predictive_std"] <= 1
    with Image.open(tmp_path / "out" / "mean.png") as im:
        assert im.size == (32, 32) and im.mode == "RGB"


def test_complete_a_third_party_generative_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--model module.path:factory returning a GenerativeModel of grey 16×16 images."""
    argv = ["--quiet", "complete", "--model", "tests.cli.helpers:grey_model", "--dataset", "digits", "--index", "2",
            "--mask", "top-half", "--method", "gd", "--steps", "3", "--chains", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads((tmp_path / "completion.json").read_text())
    assert report["image_shape"] == [1, 16, 16] and report["model_family"] == "tiny"
    assert report["hidden_pixels"] == 16 * 8


def test_complete_factory_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["complete", "--index", "0", "--dataset", "digits", "--mask", "centre", "--method", "gd", "--steps", "2",
            "--chains", "2", "--out", str(tmp_path / "out")]
    line = error_line(capsys, [*base, "--model", "tests.cli.helpers:rgb_generator"])
    assert "--latent-dim" in line
    line = error_line(capsys, [*base, "--model", "tests.cli.helpers:no_such_factory"])
    assert "no_such_factory" in line
    line = error_line(capsys, [*base, "--model", "no_such_module_here:factory"])
    assert "no_such_module_here" in line
    line = error_line(capsys, [*base, "--model", "tests.cli.helpers:not_a_generator"])
    assert "nn.Module" in line
    assert not (tmp_path / "out").exists()


def test_complete_with_a_bayesian_gan_mixture(tmp_path: Path) -> None:
    """A mixture of generator samples records only noise_std, not a noise_scale per run."""
    image = tmp_path / "shoe.png"
    Image.fromarray(np.full((28, 28), 40, np.uint8)).save(image)
    argv = ["--quiet", "--threads", "1", "complete", "--model", "fashion-mnist-bayesian-gan", "--image", str(image),
            "--mask", "centre", "--chains", "2", "--steps", "5", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "completion.json").read_text())
    assert report["model_family"] == "bayesian-gan" and report["fitted_noise_std"] > 0
