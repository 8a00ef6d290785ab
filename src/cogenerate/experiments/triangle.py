"""The divergence triangle's experiments (Han et al., CVPR 2019, §6) on a trained triangle model.

- **Synthesis**: samples g_θ(z), z ~ N(0, I), and their FD / precision / recall with the
  evaluation protocol (:mod:`cogenerate.evaluation.protocol`).
- **Test image reconstruction** (the paper's Table II metric): per-pixel MSE of g_θ(μ_φ(x))
  on held-out images, μ_φ the inference model's mean.
- **Energy landscape mapping** (the paper's §6.3, Fig. 14–15): descent of E_α = −f_α from test
  images to local minima, clustered by barrier energy (:mod:`cogenerate.experiments.landscape`).
- **Learning from incomplete images** (the paper's Table III): the models trained on occluded
  Fashion-MNIST training images ship with the package (``cogenerate/weights/incomplete/``,
  one per method and occlusion, :func:`incomplete_model`); :func:`recover_incomplete` recovers
  the same occluded images with each (the triangle and the VAE by iterated refilling from the
  zero fill, ABP by Langevin inference of its latents from the prior) and, for the
  co-generation angle, with ``complete()`` on the shipped DCGAN and on the triangle trained on
  the occluded images.

Experiments write files; the functions that compute take tensors and return them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cogenerate.experiments.landscape import (barrier_energies, basin_purity, cluster_by_barrier, descend_energy,
                                              landscape_figure)

__all__ = ["INCOMPLETE_METHODS", "TriangleConfig", "incomplete_images", "incomplete_model", "reconstruction_mse",
           "recover_incomplete", "reproduce_triangle"]

INCOMPLETE_METHODS = ("triangle", "vae", "abp")
"""The methods of Table III whose models trained on occluded images ship with the package."""

ABP_NOISE_STD = 0.3
"""σ of the shipped ABP models' observation model (``train_abp_on_incomplete``'s default)."""

Progress = Callable[[str, float], None] | None


@dataclass(frozen=True)
class TriangleConfig:
    """Settings of ``cogen reproduce triangle``; the defaults are the full run, ``quick()`` CI's."""

    model: str = "triangle"
    dataset: str = "fashion-mnist"
    samples: int = 100  # images in the samples figure
    reconstructions: int = 1000  # report images for the reconstruction MSE
    fd_samples: int = 5000  # generated images for FD / precision / recall (0: skip)
    landscape_images: int = 100  # report images descended to minima
    descent_steps: int = 2000
    step_size: float = 0.01  # η of x ← x − η ∇E
    barrier_points: int = 32  # points on each line between two minima
    basins: int = 10  # where the dendrogram is cut for the purity table
    occlusions: tuple[str, ...] = ("p.5", "p.7", "mb10", "b20", "b30")  # Table III's columns (() skips it)
    incomplete_images: int = 3000  # occluded training images recovered (the shipped models saw 3,000)
    refill_passes: int = 10  # refills from the zero fill for the triangle and the VAE
    abp_steps: int = 100  # Langevin moves inferring ABP's latents from the prior
    complete_images: int = 50  # of those completed by complete() (0: skip the co-generation rows)
    complete_grads: int | None = None  # complete()'s gradients per chain (None: its default)
    seed: int = 0

    @classmethod
    def quick(cls) -> TriangleConfig:
        return cls(samples=16, reconstructions=32, fd_samples=0, landscape_images=8, descent_steps=20,
                   barrier_points=5, basins=3, occlusions=("b20",), incomplete_images=16, refill_passes=2,
                   abp_steps=5, complete_images=2, complete_grads=20)


def reconstruction_mse(generator: Callable[[Tensor], Tensor], encoder: Callable[..., tuple[Tensor, Tensor]],
                       images: Tensor, *, batch_size: int = 500) -> Tensor:
    """Per-image, per-pixel MSE of ``g(μ(x))`` against ``x`` (the paper's Table II metric on our
    [-1, 1] scale): ``(N, C, H, W) -> (N,)``."""
    errors = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size]
            errors.append((generator(encoder(x)[0]) - x).pow(2).flatten(1).mean(1))
    return torch.cat(errors)


def incomplete_model(method: str, occlusion: str) -> Any:
    """The shipped model of ``method`` (:data:`INCOMPLETE_METHODS`) trained on Fashion-MNIST
    training images occluded by ``occlusion`` (``cogenerate/weights/incomplete/``; their JSON
    records how they were trained), as a :class:`~cogenerate.models.base.GenerativeModel`."""
    from importlib import resources

    from cogenerate.models.loading import load_model
    from cogenerate.training.incomplete import OCCLUSIONS

    if method not in INCOMPLETE_METHODS or occlusion not in OCCLUSIONS:
        raise ValueError(f"no shipped model of {method!r} on {occlusion!r}: methods {', '.join(INCOMPLETE_METHODS)}, "
                         f"occlusions {', '.join(OCCLUSIONS)}")
    with resources.as_file(resources.files("cogenerate") / "weights" / "incomplete") as folder:
        return load_model(str(Path(folder) / f"{method}-{occlusion}"))


def incomplete_images(dataset: str, count: int, *, seed: int = 0) -> Tensor:
    """The occluded training images of Table III: the first ``count`` of a fixed permutation
    (``seed``) of the training split, ``(count, C, H, W)`` (the shipped models saw the first 3,000)."""
    from cogenerate.data.images import load_dataset

    train = load_dataset(dataset, split="train")
    return train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:count]]


def recover_incomplete(model: Any, observed: Tensor, mask: Tensor, *, refill_passes: int = 10,
                       abp_steps: int = 100, rng: torch.Generator) -> Tensor:
    """Recover occluded images with a model trained on them: refilling with g(μ(x̃))
    (:func:`~cogenerate.training.incomplete.refill_recover`) for a model with an inference
    model, else (ABP) ``abp_steps`` Langevin moves of a latent per image from the prior (step
    0.1, σ = 0.3, as in training) and its g(z); observed pixels kept. ``(N, C, H, W)``."""
    from cogenerate.training.incomplete import langevin_latents, refill, refill_recover

    if model.encoder is not None:
        return refill_recover({"generator": model.generator, "encoder": model.encoder}, observed, mask,
                              passes=refill_passes)
    out = []
    for start in range(0, observed.shape[0], 500):
        x, m = observed[start:start + 500], mask[start:start + 500]
        z = torch.randn(x.shape[0], model.latent_dim, generator=rng)
        z = langevin_latents(model.generator, z, x, m, steps=abp_steps, step_size=0.1, noise_std=ABP_NOISE_STD,
                             rng=rng)
        with torch.no_grad():
            out.append(refill(x, m, model.generator(z)))
    return torch.cat(out)


def _table_iii(out: Path, config: TriangleConfig, stage: Callable[[str, float], None]) -> dict[str, Any]:
    """Table III from the shipped models trained on occluded images; writes the recovery grids."""
    import cogenerate as cg
    from cogenerate.plotting import save_image_grid
    from cogenerate.training.incomplete import occlusion_masks, recovery_error

    truth = incomplete_images(config.dataset, config.incomplete_images, seed=config.seed)
    rows: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    columns = [*INCOMPLETE_METHODS, *(("complete(dcgan)", "complete(triangle)") if config.complete_images else ())]
    completed = min(config.complete_images, len(truth))
    shown = min(8, len(truth), completed or len(truth))  # images per row of the recovery grids
    for step, occlusion in enumerate(config.occlusions):
        stage("Table III", step / len(config.occlusions))
        # the masks of the shipped models' training: drawn for 3,000 images, the first taken
        mask = occlusion_masks(occlusion, max(3000, len(truth)), seed=config.seed)[: len(truth)]
        observed = truth * mask
        zero = recovery_error(observed, truth, mask)
        row: dict[str, Any] = {"occlusion": occlusion, "hidden": round(float(1 - mask.mean()), 3),
                               "zero fill": round(float(zero.mean()), 4)}
        grid = [truth[:shown], observed[:shown]]
        for method in INCOMPLETE_METHODS:
            recovered = recover_incomplete(incomplete_model(method, occlusion), observed, mask,
                                           refill_passes=config.refill_passes, abp_steps=config.abp_steps,
                                           rng=torch.Generator().manual_seed(config.seed))
            errors = recovery_error(recovered, truth, mask)
            row[method] = _mean_se(errors)
            grid.append(recovered[:shown])
        if completed:
            for label, spec in (("complete(dcgan)", "dcgan"), ("complete(triangle)", None)):
                model = spec or incomplete_model("triangle", occlusion)
                result = cg.complete(model, observed[:completed], mask[:completed], chains=8, seed=config.seed,
                                     max_grad_evals=config.complete_grads)
                row[label] = _mean_se(recovery_error(result.estimate, truth[:completed], mask[:completed]))
                grid.append(result.estimate[:shown])
        rows.append(row)
        files[f"recovery_{occlusion}"] = save_image_grid(torch.cat(grid), out / f"recovery_{occlusion}.png",
                                                         nrow=shown, scale=2)
    stage("Table III", 1.0)
    return {"rows": rows, "columns": columns, "images": len(truth), "files": files}


def _mean_se(errors: Tensor) -> str:
    """``"0.0578 ± 0.0004"``: mean and standard error of per-image errors."""
    se = float(errors.std() / len(errors) ** 0.5) if len(errors) > 1 else float("nan")
    return f"{float(errors.mean()):.4f} ± {se:.4f}"


def reproduce_triangle(out_dir: str | Path, *, config: TriangleConfig | None = None,
                       progress: Progress = None) -> dict[str, Any]:
    """Samples, reconstructions, FD and the energy landscape of ``config.model``, and Table III
    from the shipped models trained on occluded images; writes ``samples.png``,
    ``reconstructions.png``, ``landscape.png``, ``landscape_minima.png``, ``recovery_<occlusion>.png``
    (rows: truth, occluded, triangle, VAE, ABP, then complete() on the DCGAN and on the triangle),
    ``results.md`` and ``results.json`` into ``out_dir`` and returns ``{"rows", "files", ...}``."""
    from cogenerate.evaluation.protocol import evaluate_samples, generate_samples
    from cogenerate.evaluation.splits import load_split, load_split_labels
    from cogenerate.experiments.toy import markdown_table
    from cogenerate.models.loading import load_model
    from cogenerate.plotting import save_image_grid

    config = config or TriangleConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(config.model)
    if model.energy is None or model.encoder is None:
        raise ValueError(f"{config.model!r} is a {model.family} model without an energy and an inference model; "
                         "the triangle experiments need both (e.g. fashion-mnist-triangle)")
    for module in model.modules.values():
        module.eval()
    report = load_split(config.dataset, "report")
    classes = load_split_labels(config.dataset, "report")
    rng = torch.Generator().manual_seed(config.seed)
    files: dict[str, Path] = {}
    results: dict[str, Any] = {"config": asdict(config), "seconds": {}}

    def stage(name: str, fraction: float) -> None:
        if progress is not None:
            progress(name, fraction)

    started = time.perf_counter()
    stage("samples", 0.0)
    samples = generate_samples(model, config.samples, rng=rng)
    files["samples"] = save_image_grid(samples, out / "samples.png", nrow=10, scale=2)
    x = report[: config.reconstructions]
    errors = reconstruction_mse(model.generator, model.encoder, x)
    pairs = torch.stack([x[:10], reconstruction_pairs(model, x[:10])], 1).flatten(0, 1)
    files["reconstructions"] = save_image_grid(pairs, out / "reconstructions.png", nrow=10, scale=2)
    results["recon_mse"] = {"mean": float(errors.mean()), "std_error": float(errors.std() / len(errors) ** 0.5),
                            "images": len(errors)}
    results["seconds"]["samples_and_reconstructions"] = round(time.perf_counter() - started, 1)
    stage("samples", 1.0)

    if config.fd_samples:
        started = time.perf_counter()
        generated = generate_samples(model, config.fd_samples, rng=torch.Generator().manual_seed(config.seed),
                                     progress=lambda f: stage("FD", 0.5 * f))
        quality = evaluate_samples(generated, config.dataset, rng=torch.Generator().manual_seed(config.seed + 2))
        results["fd"] = {"fd": quality.fd, "interval": list(quality.fd_interval),
                         "precision": quality.precision_recall.precision, "recall": quality.precision_recall.recall,
                         "samples": quality.samples}
        results["seconds"]["fd"] = round(time.perf_counter() - started, 1)
        stage("FD", 1.0)

    started = time.perf_counter()
    starts = report[: config.landscape_images]
    descent = descend_energy(lambda v: model.energy(v), starts, steps=config.descent_steps,
                             step_size=config.step_size)
    stage("landscape", 0.5)
    barriers = barrier_energies(lambda v: model.energy(v), descent.minima, points=config.barrier_points)
    clusters = cluster_by_barrier(barriers, basins=config.basins)
    purity, basin_rows = basin_purity(clusters.labels, classes[: config.landscape_images])
    files["landscape"] = landscape_figure(out / "landscape.png", starts, descent, clusters)
    files["landscape_minima"] = save_image_grid(torch.stack([starts, descent.minima], 1).flatten(0, 1)[:40],
                                                out / "landscape_minima.png", nrow=10, scale=2)
    pairs_off = ~torch.eye(len(barriers), dtype=torch.bool)
    higher_end = torch.maximum(barriers.diagonal().unsqueeze(0), barriers.diagonal().unsqueeze(1))
    results["landscape"] = {
        "start_energy": float(descent.start_energies.mean()), "minimum_energy": float(descent.energies.mean()),
        "distance": float(descent.distances.mean()), "last_step": float(descent.step_norms.mean()),
        "barrier_above_higher_end": float((barriers - higher_end)[pairs_off].mean()),
        "purity": purity, "basins": basin_rows, "merge_levels": [float(v) + clusters.floor for v in clusters.linkage[:, 2]],
        "pixels_at_bounds": float((descent.minima.abs() > 0.999).float().mean()),
    }
    results["seconds"]["landscape"] = round(time.perf_counter() - started, 1)
    stage("landscape", 1.0)

    table_iii: dict[str, Any] = {}
    if config.occlusions:
        started = time.perf_counter()
        table_iii = _table_iii(out, config, stage)
        files.update(table_iii.pop("files"))
        results["table_iii"] = table_iii
        results["seconds"]["table_iii"] = round(time.perf_counter() - started, 1)

    rows = [{"model": config.model, "recon MSE": round(results["recon_mse"]["mean"], 4),
             "FD": round(results["fd"]["fd"], 1) if "fd" in results else None,
             "E(test)": round(results["landscape"]["start_energy"], 1),
             "E(minima)": round(results["landscape"]["minimum_energy"], 1),
             "distance to minimum": round(results["landscape"]["distance"], 2),
             f"purity ({config.basins} basins)": round(purity, 3)}]
    files["table_md"] = out / "results.md"
    text = markdown_table(rows) + "\n" + markdown_table(basin_rows)
    if table_iii:
        text += (f"\nTable III: recovery error on the hidden pixels (mean |recovered − truth| / 2, ± standard "
                 f"error), {table_iii['images']} occluded training images; complete() on the first "
                 f"{min(config.complete_images, table_iii['images'])}\n\n" + markdown_table(table_iii["rows"]))
    files["table_md"].write_text(text)
    files["table_json"] = out / "results.json"
    files["table_json"].write_text(json.dumps({**results, "rows": rows}, indent=2))
    return {"rows": rows, "files": files, **results}


def reconstruction_pairs(model: Any, images: Tensor) -> Tensor:
    """``g(μ(x))`` of ``images`` ``(N, C, H, W)``, no gradient."""
    with torch.no_grad():
        return model.generator(model.encoder(images)[0])
