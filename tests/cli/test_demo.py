"""``cogen demo``: its image part completes the shipped images without any data package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import cogenerate.data.images
from cogenerate.cli import demo, main
from cogenerate.data.demo import load_demo_images


def test_demo_images_are_shipped() -> None:
    shipped = load_demo_images()
    assert shipped.images.shape == (6, 1, 28, 28)
    assert shipped.images.min() == -1 and shipped.images.max() <= 1
    assert len(set(shipped.labels)) == 6 and all(0 <= i < 5000 for i in shipped.test_index)


@pytest.mark.fashion_mnist
def test_demo_images_are_the_fashion_mnist_test_images() -> None:
    import torch

    from cogenerate.data.images import load_dataset

    shipped = load_demo_images()
    assert torch.equal(load_dataset("fashion-mnist", split="test")[list(shipped.test_index)], shipped.images)


def test_demo_completes_the_shipped_images_without_data(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cogenerate.data.images, "FASHION_MNIST_ROOT", tmp_path / "no-fashion-mnist-here")
    monkeypatch.setattr(demo, "IMAGE_BUDGET", 12)  # the real demo spends 400: this checks the wiring
    monkeypatch.setattr(demo, "IMAGE_CHAINS", 4)
    assert main(["--quiet", "demo", "--only", "images", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| image | hidden MSE | truth within ±2 predictive std |" in out and "| Ankle boot (test #0) |" in out
    report = json.loads((tmp_path / "images.json").read_text())
    assert report["chains"] == 4 and report["grad_evals"] <= 12 and len(report["images"]) == 6
    assert len(report["metrics"]["estimate"]["hidden_mse"]) == 6
    assert all(0 <= value <= 1 for value in report["metrics"]["truth_within_2_predictive_std"])
    with Image.open(tmp_path / "images.png") as im:
        assert im.size[0] > im.size[1] > 300
    assert not (tmp_path / "results.md").exists()  # --only images: no toy run
