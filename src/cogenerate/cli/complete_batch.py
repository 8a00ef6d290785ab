"""``cogen complete --indices``: complete a range of data-set images, on one process or sharded
over the processes of ``torchrun --nproc-per-node N -m cogenerate complete ...``.

The work is :func:`cogenerate.batch.complete_dataset`; this module checks the arguments, shows
progress and, on rank 0, writes ``OUT/results.json`` (settings, summary, one record per image),
``OUT/summary.md`` (the summary table), ``OUT/estimates.safetensors`` and ``OUT/estimates.png``
(the point estimates) and ``OUT/run.json`` (command, processes, threads, wall time: the only
file that depends on how the run was started).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from cogenerate.cli.common import check_counts, command_line, print_files, progress_bar, seed_of, setup, to_plain

__all__ = ["add_arguments", "parse_indices", "run_batch"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--indices`` on ``cogen complete``'s parser."""
    parser.add_argument(
        "--indices", default=None,
        help="complete every data-set image of these indices instead of one: START:STOP (STOP excluded), single "
             "indices, or both separated by commas (0:100, 3,8,20:30); writes OUT/results.json (one record per "
             "image) and OUT/summary.md; masks and seeds follow from (--seed, index), and under `torchrun "
             "--nproc-per-node N -m cogenerate complete ...` the images are shared out over the N processes "
             "(docs/distributed.md)")


def parse_indices(text: str, count: int) -> list[int]:
    """``--indices`` as a list of distinct indices into a split of ``count`` images.

    Raises:
        ValueError: a malformed part, an index out of ``[0, count)``, an empty range or an
            index listed twice (one line, naming ``--indices``).
    """
    indices: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                start_text, stop_text = part.split(":")
                start, stop = int(start_text) if start_text else 0, int(stop_text) if stop_text else count
                if not 0 <= start < stop:
                    raise ValueError(f"--indices {part}: an empty range")
                indices.extend(range(start, stop))
            else:
                indices.append(int(part))
        except ValueError as error:
            if str(error).startswith("--indices"):
                raise
            raise ValueError(f"--indices {text!r}: expected START:STOP or an index, got {part!r}") from None
    outside = [index for index in indices if not 0 <= index < count]
    if outside:
        raise ValueError(f"--indices: {outside[0]} is out of range: the split has {count} images (0 to {count - 1})")
    if len(set(indices)) != len(indices):
        raise ValueError(f"--indices {text!r} lists an image twice")
    return indices


def run_batch(args: argparse.Namespace) -> int:
    from cogenerate.api import model_noise_std, resolve_noise
    from cogenerate.batch import complete_dataset, record, summary_row
    from cogenerate.cli.model_spec import load_model, model_label, sample_shape
    from cogenerate.data.images import load_dataset
    from cogenerate.distributed import world
    from cogenerate.evaluation.cogeneration import cogeneration_table, protocol_operator
    from cogenerate.methods import resolve_method

    device = setup(args)
    if args.image is not None or args.index is not None:
        raise ValueError("--indices completes data-set images: give it without --image or --index")
    check_counts(args, ("chains",), ("budget", "latent_dim"))
    model = load_model(args.model, device=device, latent_dim=args.latent_dim)
    label = model_label(args.model)
    shape = sample_shape(model)
    if len(shape) != 3 or shape[-1] != shape[-2] or shape[0] not in (1, 3):
        raise ValueError(f"--model {label}: `cogen complete` needs a generator of square grey or RGB images "
                         f"(N, C, S, S) with C = 1 or 3, this one makes samples of shape {shape}")
    channels, side = int(shape[0]), int(shape[-1])
    if args.discriminator_weight != 0 and not model.has_critic:
        raise ValueError(f"--discriminator-weight needs a discriminator (or an energy), and {label} has none")
    name = args.dataset or model.config.get("dataset")
    if not name:
        raise ValueError("--indices without --dataset needs a model that records its data set; give --dataset NAME")
    split = load_dataset(name, split=args.split, size=side, channels=channels)
    indices = parse_indices(args.indices, split.shape[0])
    seed = seed_of(args)
    at = world()

    started = time.perf_counter()
    share = len(range(at.rank, len(indices), at.size))
    with progress_bar(args, total=share, desc=f"complete ({args.method})", unit="image") as bar:
        results = complete_dataset(
            model, split[indices], indices, mask=args.mask, seed=seed, method=args.method, chains=args.chains,
            max_grad_evals=args.budget, steps=args.steps, leapfrog=args.leapfrog, noise_std=args.noise_std,
            discriminator_weight=args.discriminator_weight or None, on_image=lambda _: bar.update(1),
        )
    seconds = time.perf_counter() - started
    row = summary_row(results, mask=args.mask, method=args.method, chains=args.chains, max_grad_evals=args.budget)
    table = cogeneration_table([row])
    grad_evals = max(int(result.scores["grad_evals"]) for result in results)
    print(f"{args.method}: {len(results)} images of {name} ({args.split}), {args.chains} chains, at most "
          f"{grad_evals} gradient evaluations per chain, {at.size} process{'es' if at.size > 1 else ''}, "
          f"{seconds:.1f} s")
    print(table, end="")
    if not at.writes:
        return 0

    target = Path(args.out).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    files = {name_: target / file for name_, file in (("results", "results.json"), ("summary", "summary.md"),
                                                      ("estimates", "estimates.safetensors"),
                                                      ("grid", "estimates.png"), ("run", "run.json"))}
    report: dict[str, Any] = {
        "model": label,
        "model_family": model.family,
        "model_iteration": model.config.get("iteration"),
        "dataset": name,
        "split": args.split,
        "indices": args.indices,
        "images": len(results),
        "image_shape": [channels, side, side],
        "mask": args.mask,
        "method": args.method,
        "chains": args.chains,
        "steps": args.steps,
        "leapfrog": args.leapfrog,
        "budget": args.budget,
        "noise_std": resolve_noise(resolve_method(args.method), args.noise_std, model_noise_std=model_noise_std(
            model, protocol_operator(args.mask, indices[:1], size=side, mask_seed=seed))),
        "discriminator_weight": args.discriminator_weight,
        "seed": seed,
        "randomness": "per image: mask from protocol_seed(seed, index), sampler from image_seed(seed, index) "
                      "(cogenerate.batch); independent of batching and of the number of processes",
        "summary": {key: summary._asdict() for key, summary in row.summaries.items()},
        "records": [record(result) for result in results],
    }
    files["results"].write_text(json.dumps(to_plain(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    files["summary"].write_text(
        f"# {label}: {args.mask}, {args.method}, {args.chains} chains, budget {args.budget}, seed {seed}\n\n"
        f"{len(results)} images of {name} ({args.split}), indices {args.indices}; mean over images "
        f"(95 % interval).\n\n{table}", encoding="utf-8")
    _write_estimates(results, files["estimates"], files["grid"])
    files["run"].write_text(json.dumps({
        "command": command_line(args), "processes": at.size, "device": str(device),
        "threads": torch.get_num_threads(), "seconds": round(seconds, 3),
    }, indent=2) + "\n", encoding="utf-8")
    print_files(files)
    return 0


def _write_estimates(results: list[Any], tensors_path: Path, grid_path: Path) -> None:
    """The point estimates ``(N, C, H, W)``, their observed masks and indices, and a grid of the first 64."""
    from safetensors.torch import save_file

    from cogenerate.plotting import save_image_grid

    estimates = torch.stack([result.estimate for result in results]).float().contiguous()
    save_file({
        "indices": torch.tensor([result.index for result in results], dtype=torch.int64),
        "estimates": estimates,
        "observed": torch.stack([result.observed for result in results]).float().contiguous(),
    }, str(tensors_path))
    save_image_grid(estimates[:64], grid_path, scale=2)
