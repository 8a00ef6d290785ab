"""The fixed evaluation splits: sizes, order, labels that belong to their images."""

from __future__ import annotations

import pytest
import torch

from cogenerate.data.images import load_dataset
from cogenerate.evaluation.splits import SPLIT_PLANS, load_split, load_split_labels, split_description


def test_mnist_splits_partition_load_datasets_split() -> None:
    train, validation, report = (load_split("mnist", role) for role in ("train", "validation", "report"))
    assert (train.shape[0], validation.shape[0], report.shape[0]) == (4500, 250, 250)
    assert torch.equal(torch.cat([report, validation]), load_dataset("mnist", split="test"))
    assert torch.equal(train, load_dataset("mnist", split="train"))


def test_mnist_labels_follow_the_images() -> None:
    # a classifier trained on the train split reads the report labels off the report images
    from cogenerate.evaluation.classifier import load_classifier
    from cogenerate.evaluation.classifier_training import accuracy

    labels = load_split_labels("mnist", "report")
    assert labels.shape == (250,) and load_split_labels("mnist", "train").shape == (4500,)
    assert accuracy(load_classifier("mnist").module, load_split("mnist", "report"), labels) > 0.95


@pytest.mark.fashion_mnist
def test_fashion_mnist_splits_and_labels() -> None:
    report, validation = load_split("fashion-mnist", "report"), load_split("fashion-mnist", "validation")
    assert report.shape == validation.shape == (5000, 1, 28, 28)
    assert torch.equal(torch.cat([report, validation]), load_dataset("fashion-mnist", split="test"))
    labels = load_split_labels("fashion-mnist", "report")
    assert labels.shape == (5000,) and torch.bincount(labels).min() > 400  # every class, about 500 each
    assert load_split_labels("fashion-mnist", "train").shape == (60_000,)


def test_descriptions_and_bad_names() -> None:
    assert split_description("fashion-mnist", "report") == "fashion-mnist test[:5000]"
    assert split_description("fashion-mnist", "validation") == "fashion-mnist test[5000:]"
    assert split_description("mnist", "report") == "mnist test[:250]"
    assert set(SPLIT_PLANS) == {"fashion-mnist", "mnist"}
    with pytest.raises(ValueError, match="no evaluation splits for data set 'digits'"):
        load_split("digits", "report")
    with pytest.raises(ValueError, match="unknown split role 'test'"):
        load_split("mnist", "test")
