"""``cogen sample``: every method writes samples.npy, samples.png and sample.json as documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cogenerate.cli import main
from cogenerate.models.base import GenerativeModel
from cogenerate.models.loading import save_model
from cogenerate.training.ebgan import EBGAN
from cogenerate.training.families import resolve_settings
from tests.cli.helpers import error_line


@pytest.fixture(scope="module")
def tiny_ebgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = resolve_settings("ebgan", {"width": 4, "code_dim": 4, "latent_dim": 4})
    parts = EBGAN.build(settings, (1, 28, 28), torch.Generator().manual_seed(0))
    model = GenerativeModel(family="ebgan", parts=parts, latent_dim=4, x_shape=(1, 28, 28),
                            config={"dataset": "digits"})
    folder = tmp_path_factory.mktemp("models")
    save_model(folder / "ebgan", model)
    save_model(folder / "no-critic", model.with_parts(energy=None))
    return folder


@pytest.mark.parametrize(("method", "options"), [
    ("plain", []), ("drs", ["--burn-in", "32", "--batch", "16"]), ("mh", ["--chain-length", "3"]),
    ("ddls", ["--steps", "2", "--adjusted"]),
])
def test_each_method_writes_its_files(tiny_ebgan: Path, tmp_path: Path, method: str, options: list[str]) -> None:
    out = tmp_path / method
    assert main(["--quiet", "--threads", "1", "sample", "--model", str(tiny_ebgan / "ebgan"), "--method", method,
                 "-n", "8", "--out", str(out), *options]) == 0
    samples = np.load(out / "samples.npy")
    assert samples.dtype == np.float32 and samples.shape == (8, 1, 28, 28)
    assert samples.min() >= -1 and samples.max() <= 1
    assert (out / "samples.png").stat().st_size > 0
    report = json.loads((out / "sample.json").read_text())
    assert report["method"] == method and report["n"] == 8 and report["family"] == "ebgan"
    assert 0 <= report["acceptance_rate"] <= 1 and report["generator_calls_per_sample"] >= 1
    if method == "plain":
        assert report["calibration"] is None and report["generator_calls"] == 8
    else:
        assert report["calibration"]["data"] == "digits" and report["calibration"]["count"] == 2 * 179
    if method == "mh":
        assert report["constants"]["chain_length"] == 3 and report["generator_calls"] == 24
    if method == "ddls":
        assert report["constants"]["steps"] == 2 and report["constants"]["step_size"] == 0.01


def test_same_seed_same_samples(tiny_ebgan: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["--quiet", "--seed", "3", "sample", "--model", str(tiny_ebgan / "ebgan"), "--method", "drs",
                     "-n", "4", "--burn-in", "8", "--batch", "8", "--out", str(tmp_path / name)]) == 0
    assert np.array_equal(np.load(tmp_path / "a" / "samples.npy"), np.load(tmp_path / "b" / "samples.npy"))


def test_errors_are_one_line(tiny_ebgan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ebgan, out = str(tiny_ebgan / "ebgan"), str(tmp_path / "x")
    assert "--chain-length is not an option of --method drs" in error_line(
        capsys, ["sample", "--model", ebgan, "--method", "drs", "--chain-length", "3", "--out", out])
    assert "discriminator or an energy" in error_line(
        capsys, ["sample", "--model", str(tiny_ebgan / "no-critic"), "--method", "ddls", "--out", out])
    assert "-n must be at least 1" in error_line(capsys, ["sample", "--model", ebgan, "-n", "0", "--out", out])
