"""The evaluation classifier: architecture, shipped weights and their recorded accuracy, deterministic training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cogenerate.checkpoint import load_checkpoint, save_checkpoint
from cogenerate.evaluation.classifier import (
    ARCHITECTURE, FeatureClassifier, classifier_files, extract_features, load_classifier,
)
from cogenerate.evaluation.classifier_training import accuracy, train_classifier
from cogenerate.evaluation.splits import load_split, load_split_labels
from cogenerate.models.registry import build_module


def test_architecture_sizes_and_registration() -> None:
    module = build_module(ARCHITECTURE, {"channels": 1, "classes": 10})
    assert isinstance(module, FeatureClassifier)
    assert sum(p.numel() for p in module.parameters()) == 98_442
    x = torch.zeros(3, 1, 28, 28)
    assert module.embed(x).shape == (3, 128) and module(x).shape == (3, 10)


@pytest.mark.parametrize("dataset", ["mnist", pytest.param("fashion-mnist", marks=pytest.mark.fashion_mnist)])
def test_shipped_classifier_has_the_accuracy_its_json_records(dataset: str) -> None:
    classifier = load_classifier(dataset)
    assert classifier.dataset == dataset and classifier.config["command"].startswith("python benchmarks/")
    assert classifier_files(dataset)["weights"].stat().st_size < 500_000  # a few hundred KB
    images, labels = load_split(dataset, "report"), load_split_labels(dataset, "report")
    measured = accuracy(classifier.module, images, labels)
    assert measured == pytest.approx(classifier.report_accuracy, abs=1e-4)
    assert measured > (0.95 if dataset == "mnist" else 0.88)


def test_features_do_not_depend_on_the_batch_size() -> None:
    classifier = load_classifier("mnist").module
    images = torch.rand(37, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    whole, pieces = extract_features(classifier, images), extract_features(classifier, images, batch_size=5)
    assert whole.dtype == torch.float64 and whole.shape == (37, 128)
    assert torch.allclose(whole, pieces, atol=1e-5)


def test_training_is_deterministic_and_learns_a_separable_task(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(64) % 2
    images = (torch.rand(64, 1, 28, 28, generator=g) * 0.5 - 0.75) + labels.float().reshape(-1, 1, 1, 1)  # dark / bright
    settings = {"epochs": 4, "batch_size": 16, "lr": 1e-2, "width": 4, "features": 8}
    first = train_classifier(images, labels, rng=torch.Generator().manual_seed(0), **settings)
    second = train_classifier(images, labels, rng=torch.Generator().manual_seed(0), **settings)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert accuracy(first, images, labels) == 1.0
    prefix = save_checkpoint(tmp_path / "clf", {"classifier": first}, {"dataset": "toy"})
    loaded = load_checkpoint(prefix).modules["classifier"]
    assert torch.equal(loaded(images), first(images))
    with pytest.raises(ValueError, match="no evaluation classifier is shipped for data set 'digits'"):
        load_classifier("digits")
