"""What real images score under the evaluation protocol: the floor that generated images are read against.

    python benchmarks/evaluation_reference.py --data fashion-mnist mnist

For each data set, scores real images that no model made, exactly as `cogen evaluate` scores
generated ones (same classifier, report split, k = 3, bootstrap):

- the first 5,000 training images (all 4,500 for MNIST): the protocol's sample count;
- the validation split (5,000 / 250 images): held-out images of the same size as the report split.

FD is biased upward at small sample sizes, so these rows, not 0, are what a perfect generator
would score with the same numbers of images.
"""

from __future__ import annotations

import argparse
import time

import torch

from cogenerate.evaluation.protocol import DEFAULT_SAMPLES, evaluate_samples
from cogenerate.evaluation.splits import SPLIT_PLANS, load_split, split_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=sorted(SPLIT_PLANS), choices=sorted(SPLIT_PLANS))
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| data | images scored | n | FD (95 % bootstrap) | precision | recall | seconds |")
    print("|---|---|---|---|---|---|---|")
    for dataset in args.data:
        train = load_split(dataset, "train")[:DEFAULT_SAMPLES]
        for label, images in ((f"{dataset} train[:{train.shape[0]}]", train),
                              (split_description(dataset, "validation"), load_split(dataset, "validation"))):
            started = time.perf_counter()
            q = evaluate_samples(images, dataset, rng=torch.Generator().manual_seed(args.seed), resamples=args.bootstrap)
            pr = q.precision_recall
            print(f"| {dataset} | {label} | {q.samples:,} | {q.fd:.2f} ({q.fd_interval.low:.2f}–{q.fd_interval.high:.2f}) "
                  f"| {pr.precision:.3f} | {pr.recall:.3f} | {time.perf_counter() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
