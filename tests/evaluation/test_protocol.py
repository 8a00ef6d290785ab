"""Sample quality in the shipped classifier's features: the sanity checks of the issue on MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cogenerate.evaluation.classifier import extract_features, load_classifier
from cogenerate.evaluation.protocol import check_samples, evaluate_samples, generate_samples, sample_quality
from cogenerate.evaluation.splits import load_split
from cogenerate.models.base import GenerativeModel


@pytest.fixture(scope="module")
def mnist_features() -> torch.Tensor:
    torch.set_num_threads(1)
    return extract_features(load_classifier("mnist").module, load_split("mnist", "train")[:2000])


def test_fd_separates_real_halves_from_noise_and_a_collapsed_generator(mnist_features: torch.Tensor) -> None:
    classifier = load_classifier("mnist").module
    g = torch.Generator().manual_seed(0)
    halves = sample_quality(mnist_features[:1000], mnist_features[1000:], rng=g, resamples=20)
    noise = extract_features(classifier, torch.rand(1000, 1, 28, 28, generator=g) * 2 - 1)
    one_image = load_split("mnist", "train")[:1]
    collapsed = extract_features(classifier, (one_image + 0.05 * torch.randn(1000, 1, 28, 28, generator=g)).clamp(-1, 1))
    fd_noise = sample_quality(noise, mnist_features[1000:], rng=g, resamples=20)
    fd_collapsed = sample_quality(collapsed, mnist_features[1000:], rng=g, resamples=20)
    assert halves.fd < 25 and halves.fd_interval.low <= halves.fd <= halves.fd_interval.high  # measured 19
    assert fd_noise.fd > 20 * halves.fd and fd_collapsed.fd > 20 * halves.fd
    assert halves.precision_recall.precision > 0.8 and halves.precision_recall.recall > 0.8
    assert fd_collapsed.precision_recall.recall < 0.05  # one mode covers almost none of the data
    assert fd_noise.precision_recall.recall == 0.0  # (its precision is 0.21: noise lands in an outlier's ball)


def test_fd_ignores_order_and_identical_sets_score_one(mnist_features: torch.Tensor) -> None:
    a, b = mnist_features[:500], mnist_features[500:1000]
    g = torch.Generator().manual_seed(1)
    first = sample_quality(a, b, rng=g, resamples=2)
    shuffled = sample_quality(a[torch.randperm(500, generator=g)], b.flip(0), rng=g, resamples=2)
    assert shuffled.fd == pytest.approx(first.fd, rel=1e-6)  # round-off of near-zero eigenvalues only
    same = sample_quality(a, a.clone(), rng=g, resamples=2)
    assert same.fd == pytest.approx(0.0, abs=1e-6)
    assert (same.precision_recall.precision, same.precision_recall.recall) == (1.0, 1.0)


def test_evaluate_samples_of_real_images_and_its_batch_size() -> None:
    images = load_split("mnist", "validation")  # held out, like generated images would be
    result = evaluate_samples(images, "mnist", rng=torch.Generator().manual_seed(0), resamples=10)
    again = evaluate_samples(images, "mnist", rng=torch.Generator().manual_seed(0), resamples=10, batch_size=33)
    assert result.reference_split == "mnist test[:250]" and result.samples == result.reference == 250
    assert again.fd == pytest.approx(result.fd, rel=1e-6)
    assert result.fd < 80  # two real sets of 250 (measured 50): FD's small-sample bias, not a difference


def test_generate_samples_uses_its_rng_and_eval_mode() -> None:
    generator = nn.Sequential(nn.Linear(3, 784), nn.BatchNorm1d(784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
    model = GenerativeModel.from_generator(generator, latent_dim=3)
    a = generate_samples(model, 10, rng=torch.Generator().manual_seed(0), batch_size=3)
    b = generate_samples(model, 10, rng=torch.Generator().manual_seed(0))
    assert a.shape == (10, 1, 28, 28) and torch.allclose(a, b, atol=1e-6)  # batch norm in eval mode
    assert generator.training


def test_check_samples_says_what_is_wrong() -> None:
    assert check_samples(np.zeros((2, 1, 28, 28), dtype=np.float32)).dtype == torch.float32
    for bad, message in ((np.zeros((2, 1, 28, 28), dtype=np.uint8), "floating point"),
                         (np.zeros((2, 3, 28, 28), dtype=np.float32), r"shape \(N, 1, 28, 28\)"),
                         (np.full((2, 1, 28, 28), 2.0, dtype=np.float32), r"in \[-1, 1\]"),
                         (np.full((2, 1, 28, 28), np.nan, dtype=np.float32), "NaN")):
        with pytest.raises(ValueError, match=message):
            check_samples(bad)
