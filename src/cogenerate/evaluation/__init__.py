"""One evaluation protocol for every model family (docs/evaluation.md).

- :mod:`~cogenerate.evaluation.splits`: the fixed train / validation / report splits.
- :mod:`~cogenerate.evaluation.classifier`: the shipped classifier whose features FD uses.
- :mod:`~cogenerate.evaluation.sample_quality`: FD, its bootstrap interval, precision and recall
  (pure functions of features).
- :mod:`~cogenerate.evaluation.protocol`: sample quality of a model or of a set of images.
- :mod:`~cogenerate.evaluation.cogeneration`: the co-generation row (hidden MSE, SSIM, ±2 std
  coverage, CRPS, log-evidence, gradients per chain).
- :mod:`~cogenerate.evaluation.scores`: CRPS and the 95 % intervals.

>>> import torch
>>> from cogenerate.evaluation import evaluate_samples, generate_samples, cogeneration_protocol
>>> from cogenerate.models.loading import load_model
>>> model = load_model("fashion-mnist")
>>> quality = evaluate_samples(generate_samples(model, 5000, rng=torch.Generator().manual_seed(0)),
...                            "fashion-mnist", rng=torch.Generator().manual_seed(1))
>>> rows = cogeneration_protocol(model, "fashion-mnist", rng=torch.Generator().manual_seed(2))
"""

from cogenerate.evaluation.classifier import FeatureClassifier, extract_features, load_classifier
from cogenerate.evaluation.cogeneration import (
    DEFAULT_MASKS, CogenerationRow, cogeneration_protocol, cogeneration_table, evaluate_cogeneration, protocol_operator,
    row_as_dict,
)
from cogenerate.evaluation.protocol import (
    DEFAULT_SAMPLES, SampleQuality, check_samples, evaluate_samples, generate_samples, sample_quality,
)
from cogenerate.evaluation.sample_quality import (
    bootstrap_frechet_distance, feature_statistics, frechet_distance, frechet_distance_gaussians, precision_recall,
)
from cogenerate.evaluation.scores import Summary, crps_ensemble, crps_gaussian_mixture, summarise
from cogenerate.evaluation.splits import SPLIT_PLANS, load_split, load_split_labels, split_description

__all__ = [
    "FeatureClassifier", "extract_features", "load_classifier",
    "DEFAULT_MASKS", "CogenerationRow", "cogeneration_protocol", "cogeneration_table", "evaluate_cogeneration",
    "protocol_operator",
    "row_as_dict",
    "DEFAULT_SAMPLES", "SampleQuality", "check_samples", "evaluate_samples", "generate_samples", "sample_quality",
    "bootstrap_frechet_distance", "feature_statistics", "frechet_distance", "frechet_distance_gaussians",
    "precision_recall",
    "Summary", "crps_ensemble", "crps_gaussian_mixture", "summarise",
    "SPLIT_PLANS", "load_split", "load_split_labels", "split_description",
]
