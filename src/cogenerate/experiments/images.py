"""The paper's image experiment (Fang & Schwing 2019, §3.2, Fig. 3–5) on Fashion-MNIST.

For DCGAN checkpoints along training, held-out test images are masked with random boxes
and completed by every method at the same gradient budget per chain, the same number of
chains and the same number of prior draws for the methods that start from the best of
many (gd-best, smc, smc-polish). We report hidden-region MSE and SSIM of each method's
point estimate and of its best single completion, with 95 % confidence intervals, against
training iterations (Fig. 3 a, b), and a grid of example reconstructions (Fig. 4–5).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import cogenerate as cg
from cogenerate import metrics
from cogenerate.batch import image_seed
from cogenerate.distributed import gather, shard, world
from cogenerate.methods import method_from_options
from cogenerate.data.images import load_dataset
from cogenerate.evaluation.cogeneration import protocol_operator
from cogenerate.experiments.toy import markdown_table
from cogenerate.operators import Mask, Operator

__all__ = ["ImagesConfig", "method_settings", "evaluate_method", "summarise", "reproduce_images"]

Progress = Callable[[str, float], None] | None


@dataclass(frozen=True)
class ImagesConfig:
    """Settings of the image experiment; the defaults are the full run, ``quick()`` CI's."""

    dataset: str = "fashion-mnist"
    images: int = 100
    mask: str = "box"
    methods: tuple[str, ...] = ("gd", "gd-best", "yeh", "ais", "smc", "smc-polish")
    chains: int = 8
    budget: int = 200  # generator gradient evaluations per chain, every method
    candidates: int = 2000  # prior draws scored by gd-best, smc and smc-polish
    noise_std: float = 0.1
    # The methods that can (smc, smc-polish) fit the noise scale by maximum evidence instead,
    # as complete() does by default.
    fit_noise: bool = True
    lr: float = 0.01
    seed: int = 0  # picks the images; with each image's index, seeds its mask and its sampler
    # A folder of `cogen train` checkpoints to evaluate, and which iterations of it (empty: all).
    checkpoints: str | None = None
    iterations: tuple[int, ...] = ()
    # Training when no checkpoint folder is given (a narrower DCGAN than the shipped one).
    train_iterations: int = 3000
    checkpoint_every: int = 1000
    width: int = 32
    latent_dim: int = 100
    examples: int = 6
    # Further options of a method, by name: {"smc-polish": {"prior_weight": 0.0}}.
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> ImagesConfig:
        return cls(images=2, chains=4, budget=20, candidates=32, train_iterations=20, checkpoint_every=10,
                   width=8, latent_dim=16, examples=2)


def method_settings(method: str, config: ImagesConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`cogenerate.complete` (the method's settings object included)
    that put ``method`` at the config's budget: every method may spend ``config.budget``
    gradients per chain and no more."""
    budget, lr, n = config.budget, config.lr, config.candidates
    table: dict[str, dict[str, Any]] = {
        "gd": {"steps": budget, "options": {"lr": lr}},
        "gd-best": {"steps": budget, "options": {"lr": lr, "candidates": n}},
        "yeh": {"steps": budget, "options": {"lr": lr}},
        "ais": {"steps": budget, "leapfrog": 10},
        "smc": {"leapfrog": 5, "options": {"candidates": n, "final_moves": budget}},
        "smc-polish": {"leapfrog": 5, "options": {"candidates": n, "lr": lr}},
    }
    if method not in table:
        raise ValueError(f"no image-experiment settings for method {method!r}; known: {sorted(table)}")
    settings = {**table[method], "max_grad_evals": budget}
    options = {**settings.pop("options", {}), **config.method_options.get(method, {})}
    settings["method"] = method_from_options(method, options)
    return settings


def prior_draws(method: str, config: ImagesConfig) -> int:
    """Prior draws per observation scored (forward only) before any gradient is spent."""
    return config.candidates if method in ("gd-best", "smc", "smc-polish") else config.chains


def evaluate_method(
    generator: nn.Module,
    images: Tensor,
    operator: Operator,
    method: str,
    config: ImagesConfig,
    *,
    indices: Sequence[int] | None = None,
    discriminator: nn.Module | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Tensor | float]:
    """Complete ``images`` ``(N, C, H, W)`` observed through ``operator`` with ``method``.

    Each image is completed by its own :func:`cogenerate.complete` call seeded
    :func:`cogenerate.batch.image_seed` ``(config.seed, index)``, so its result does not depend on
    the other images or on how they are shared out: on several processes (``torchrun``) each
    completes every N-th image and every process returns all of them.

    Args:
        indices: the images' indices in their data set, which seed their samplers (default
            ``0 … N − 1``).
        operator: a :class:`~cogenerate.operators.Mask` with one row per image, or an operator
            that is the same for every image.

    Returns per-image metrics ``(N,)`` of the point estimate (``*_estimate``) and of the
    completion closest to the truth among the chains (``*_best``), the posterior std map's
    rank correlation with the estimate's error over hidden pixels, the seconds spent (the
    slowest process's) and the gradient evaluations per chain, the fraction of hidden pixels
    whose truth lies within two predictive std (posterior spread and noise) of the posterior
    mean, and the noise scale per image.
    """
    n = images.shape[0]
    indices = list(range(n)) if indices is None else [int(i) for i in indices]
    if len(indices) != n:
        raise ValueError(f"{len(indices)} indices for {n} images")
    kwargs = method_settings(method, config)
    noise_std: float | str = "auto" if config.fit_noise and kwargs["method"].fits_noise else config.noise_std
    mine = shard(range(n))
    started = time.perf_counter()
    done = []
    for count, position in enumerate(mine):
        op = Mask(operator.mask[position:position + 1]) if isinstance(operator, Mask) and operator.mask.shape[0] == n \
            else operator
        image = images[position:position + 1]
        report = None if progress is None else lambda f, a=count: progress((a + f) / len(mine))
        out = cg.complete(
            generator, image, op, chains=config.chains, noise_std=noise_std,
            seed=image_seed(config.seed, indices[position]), discriminator=discriminator if method == "yeh" else None,
            **kwargs, progress=report,
        )
        done.append((position, _image_metrics(out, image, op)))
    seconds = time.perf_counter() - started
    parts = dict(gather(done))
    times = gather([seconds])
    per_image = [parts[position] for position in range(n)]
    result: dict[str, Tensor | float] = {key: torch.cat([part[key] for part in per_image]) for key in per_image[0]
                                         if key != "grad_evals"}
    result["seconds"] = max(times)
    result["grad_evals_per_chain"] = max(int(part["grad_evals"]) for part in per_image)
    return result


def _image_metrics(out: Any, image: Tensor, operator: Operator) -> dict[str, Tensor | int]:
    """The metrics of :func:`evaluate_method` of one completion ``out`` of ``image`` ``(1, C, H, W)``, on the CPU."""
    mask = operator.full(1, tuple(image.shape[1:])) if isinstance(operator, Mask) else torch.zeros_like(image)
    hidden = mask == 0
    estimate, completions = out.estimate, out.completions
    per_chain = torch.stack([metrics.masked_mse(completions[:, c], image, mask)
                             for c in range(completions.shape[1])], 1)
    best = completions[torch.arange(1), per_chain.argmin(1)]
    error = (estimate - image).abs()
    correlation = metrics.rank_correlation(out.std[0][hidden[0]].reshape(1, -1), error[0][hidden[0]].reshape(1, -1))
    # Calibration: how often the truth lies within two predictive std of the posterior mean.
    inside = ((out.mean - image).abs() <= 2 * out.predictive_std) & hidden
    coverage = inside.flatten(1).sum(1) / hidden.flatten(1).sum(1).clamp_min(1)
    values = {
        "mse_hidden_estimate": metrics.masked_mse(estimate, image, mask),
        "mse_hidden_best": per_chain.min(1).values,
        "mse_estimate": metrics.mse(estimate, image),
        "psnr_estimate": metrics.psnr(estimate, image),
        "ssim_estimate": metrics.ssim(estimate, image),
        "ssim_best": metrics.ssim(best, image),
        "ms_ssim_estimate": metrics.ms_ssim(estimate, image),
        "std_error_rank_correlation": correlation.reshape(1),
        "coverage_2std": coverage,
        "noise_scale": out.diagnostics["noise_scale"],
        "estimate": estimate,
        "std": out.std,
    }
    return {**{key: value.detach().cpu() for key, value in values.items()}, "grad_evals": int(out.grad_evals)}


def summarise(values: Tensor) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95 % confidence interval."""
    values = values[torch.isfinite(values)].double()
    if values.numel() == 0:
        return math.nan, math.nan
    half = 1.96 * values.std().item() / math.sqrt(values.numel()) if values.numel() > 1 else math.nan
    return values.mean().item(), half


def _row(iteration: int, method: str, result: Mapping[str, Any], config: ImagesConfig) -> dict[str, Any]:
    row: dict[str, Any] = {"iteration": iteration, "method": method}
    for key in ("mse_hidden_estimate", "ssim_estimate", "mse_hidden_best", "ssim_best", "ms_ssim_estimate",
                "std_error_rank_correlation", "coverage_2std"):
        mean, half = summarise(result[key])
        row[key] = round(mean, 5)
        row[key + "_ci95"] = round(half, 5)
    row["chains"] = config.chains
    row["grad_evals_per_chain"] = result["grad_evals_per_chain"]
    row["prior_draws"] = prior_draws(method, config)
    row["seconds"] = round(result["seconds"], 1)
    return row


def _train_checkpoints(out: Path, config: ImagesConfig, progress: Progress) -> Path:
    """Train a DCGAN on the dataset with checkpoints along training; returns their folder."""
    from cogenerate.models.dcgan import DCGANDiscriminator, DCGANGenerator, weights_init
    from cogenerate.training.gan import train_gan

    data = load_dataset(config.dataset, split="train")
    rng = torch.Generator().manual_seed(config.seed)
    size, channels = data.shape[-1], data.shape[1]
    with torch.random.fork_rng():  # construction draws default weights from the global RNG; leave it untouched
        generator = DCGANGenerator(config.latent_dim, image_size=size, channels=channels, width=config.width)
        discriminator = DCGANDiscriminator(image_size=size, channels=channels, width=config.width)
    generator, discriminator = weights_init(generator, rng=rng), weights_init(discriminator, rng=rng)

    def sample_data(n: int, data_rng: torch.Generator) -> Tensor:
        return data[torch.randint(len(data), (n,), generator=data_rng)]

    folder = out / "checkpoints"
    train_gan(
        generator, discriminator, sample_data, iterations=config.train_iterations, batch_size=64, rng=rng,
        checkpoint_dir=folder, checkpoint_every=config.checkpoint_every,
        keep=range(config.checkpoint_every, config.train_iterations + 1, config.checkpoint_every),
        config={"dataset": config.dataset, "experiment": "reproduce-images"},
        on_step=None if progress is None else lambda i, _: progress("train", i / config.train_iterations),
    )
    return folder


def _plot_curves(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for ax, key, label in ((axes[0], "mse_hidden_estimate", "MSE on the hidden region"), (axes[1], "ssim_estimate", "SSIM")):
        for method in methods:
            mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["iteration"])
            x = [r["iteration"] for r in mine]
            y = torch.tensor([r[key] for r in mine])
            ci = torch.tensor([r[key + "_ci95"] for r in mine]).nan_to_num(0.0)
            ax.plot(x, y, marker="o", label=method)
            ax.fill_between(x, y - ci, y + ci, alpha=0.15)
        ax.set_xlabel("GAN training iterations")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle("Fig. 3 (a, b): reconstruction quality along GAN training (95 % CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_examples(images: Tensor, mask: Tensor, estimates: Mapping[str, Tensor], path: Path) -> None:
    import matplotlib.pyplot as plt

    from cogenerate.data.images import to_uint8

    n = images.shape[0]
    columns = {"truth": images, "observed": torch.where(mask.bool(), images, torch.zeros_like(images)), **estimates}
    fig, axes = plt.subplots(n, len(columns), figsize=(1.3 * len(columns), 1.3 * n + 0.3), squeeze=False)
    for col, (name, batch) in enumerate(columns.items()):
        pictures = to_uint8(batch)
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(pictures[row].squeeze(-1), cmap="gray" if pictures.shape[-1] == 1 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(name, fontsize=8)
    fig.suptitle("Fig. 4–5: completions of held-out images (point estimates)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def reproduce_images(
    out_dir: str | Path,
    *,
    config: ImagesConfig | None = None,
    checkpoints: str | Path | None = None,
    progress: Progress = None,
) -> dict[str, Any]:
    """Evaluate every method on every checkpoint; write the table, curves and examples.

    Args:
        out_dir: output folder (``results.md``, ``results.json``, ``fig3_curves.png``,
            ``fig4_examples.png``; ``checkpoints/`` when training here).
        config: :class:`ImagesConfig`.
        checkpoints: a folder of ``cogen train`` checkpoints to evaluate (default:
            ``config.checkpoints``; if neither is given a DCGAN is trained first with
            ``config.train_iterations`` and ``config.checkpoint_every``).
        progress: ``progress(stage, fraction)``.

    The test images are the first ``config.images`` of a permutation of the test split drawn
    from ``config.seed``; image ``i``'s box is the co-generation protocol's
    (:func:`~cogenerate.evaluation.cogeneration.protocol_operator` of ``(config.seed, i)``, ``i``
    its test-set index) and :func:`evaluate_method` seeds its sampler from the same pair. On
    several processes (``torchrun --nproc-per-node N -m cogenerate reproduce images``) the DCGAN
    is trained data-parallel (:mod:`cogenerate.training.distributed`), each process completes
    every N-th image, and rank 0 writes the files; with ``checkpoints`` given the rows are the
    same for any number of processes.
    """
    from cogenerate.checkpoint import list_checkpoints, load_checkpoint

    config = config or ImagesConfig()
    out = Path(out_dir)
    if world().writes:
        out.mkdir(parents=True, exist_ok=True)
    checkpoints = checkpoints if checkpoints is not None else config.checkpoints
    folder = Path(checkpoints) if checkpoints is not None else _train_checkpoints(out, config, progress)
    found = list_checkpoints(folder)
    if config.iterations:
        found = [(i, p) for i, p in found if i in set(config.iterations)]
    if not found:
        raise ValueError(f"no (selected) checkpoints in {folder}; train some with `cogen train --out {folder}`")
    test = load_dataset(config.dataset, split="test")
    rng = torch.Generator().manual_seed(config.seed)
    pick = torch.randperm(len(test), generator=rng)[: config.images]
    images = test[pick]
    first = load_checkpoint(found[0][1]).modules["generator"]
    if tuple(images.shape[1:]) != tuple(first(torch.zeros(1, first.latent_dim)).shape[1:]):
        raise ValueError(f"checkpoints in {folder} make images of another size than {config.dataset}'s")
    operator = protocol_operator(config.mask, pick.tolist(), size=images.shape[-1], mask_seed=config.seed)
    rows, examples = [], {}
    for iteration, path in found:
        modules = load_checkpoint(path).modules
        generator, discriminator = modules["generator"], modules.get("discriminator")
        for method in config.methods:
            if method == "yeh" and discriminator is None:
                continue
            stage = f"iteration {iteration}: {method}"
            result = evaluate_method(
                generator, images, operator, method, config, indices=pick.tolist(), discriminator=discriminator,
                progress=None if progress is None else lambda f, s=stage: progress(s, f),
            )
            rows.append(_row(iteration, method, result, config))
            if iteration == found[-1][0]:
                examples[method] = result["estimate"][: config.examples]
    files = {
        "table_md": out / "results.md",
        "table_json": out / "results.json",
        "curves": out / "fig3_curves.png",
        "examples": out / "fig4_examples.png",
    }
    if not world().writes:
        return {"rows": rows, "files": {k: str(v) for k, v in files.items()}}
    files["table_md"].write_text(markdown_table(rows))
    files["table_json"].write_text(json.dumps({"config": asdict(config), "checkpoints": str(folder), "rows": rows}, indent=2))
    _plot_curves(rows, files["curves"])
    mask = operator.full(len(images), tuple(images.shape[1:])) if isinstance(operator, Mask) else torch.ones_like(images)
    _plot_examples(images[: config.examples], mask[: config.examples], examples, files["examples"])
    return {"rows": rows, "files": {k: str(v) for k, v in files.items()}}
