"""The paper's synthetic experiment (Fang & Schwing 2019, §3.1, Fig. 1–3), reproduced.

A GAN with a 2-D latent is trained on five Gaussians on the unit circle; given only
``x_o = x2 = 0`` the right completion is ``(1, 0)``. For generators kept at 500, 1.5k, 2.5k
and 15k iterations we run gradient descent, AIS and SMC from 100 chains and count the
chains whose reconstruction error ``‖G(z) − (1, 0)‖² / 2`` is below 0.01.

Experiments may write files (the library proper never does); every function here takes
its output directory or returns data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import cogenerate as cg
from cogenerate.methods import method_from_options
from cogenerate.data.toy import ring_of_gaussians
from cogenerate.operators import Gaussian
from cogenerate.result import Completion

__all__ = [
    "ToyConfig",
    "TARGET",
    "toy_observation",
    "reconstruction_error",
    "run_methods",
    "results_rows",
    "reference_posterior",
    "markdown_table",
    "loss_landscape",
    "gd_trajectory",
    "reproduce_toy",
]

TARGET = (1.0, 0.0)
SUCCESS_THRESHOLD = 0.01  # ‖x̂ − (1, 0)‖² / 2 below this counts as a correct reconstruction


@dataclass(frozen=True)
class ToyConfig:
    """Settings of the reproduction; the defaults are the full run, ``quick()`` the CI one."""

    iterations: tuple[int, ...] = (500, 1500, 2500, 15000)
    chains: int = 100
    noise_std: float = 0.05
    seed: int = 0
    gd: Mapping[str, Any] = field(default_factory=lambda: {"steps": 1000, "options": {"lr": 0.01}})
    # The paper's Fig. 3 runs 6,000 AIS loops; 10 leapfrog steps for the 2-D data (§2.2).
    ais: Mapping[str, Any] = field(default_factory=lambda: {"steps": 6000, "leapfrog": 10})
    # Adaptive tempered SMC started from 1,000 prior draws scored by forward passes only.
    smc: Mapping[str, Any] = field(default_factory=lambda: {"leapfrog": 10, "options": {"candidates": 1000, "final_moves": 3}})
    snapshot_fractions: tuple[float, ...] = (0.0, 0.1, 0.3, 0.6, 1.0)

    @classmethod
    def quick(cls) -> ToyConfig:
        return cls(
            iterations=(500, 1500, 2500, 3000),
            gd={"steps": 300, "options": {"lr": 0.01}},
            ais={"steps": 300, "leapfrog": 10},
        )


def toy_observation(*, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``observed`` ``(1, 2)`` and ``mask`` ``(2,)``: x2 = 0 observed, x1 hidden."""
    return torch.zeros(1, 2, dtype=dtype), torch.tensor([0.0, 1.0], dtype=dtype)


def reconstruction_error(x: Tensor) -> Tensor:
    """``‖x − (1, 0)‖² / 2`` over the last dimension."""
    return (x - x.new_tensor(TARGET)).pow(2).sum(-1) / 2


def run_methods(
    generator: nn.Module,
    config: ToyConfig,
    *,
    methods: Sequence[str] = ("gd", "ais", "smc"),
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, Completion]:
    """Co-generate ``x1`` given ``x2 = 0`` with every method, ``config.chains`` chains each."""
    observed, mask = toy_observation()
    settings = {"gd": config.gd, "ais": config.ais, "smc": config.smc}
    results = {}
    for method in methods:
        extra = dict(settings.get(method, {}))
        options = {**({"snapshots": _snapshot_steps(config)} if method == "ais" else {}), **extra.pop("options", {})}
        results[method] = cg.complete(
            generator, observed, mask, method=method_from_options(method, options), chains=config.chains,
            noise_std=config.noise_std, seed=config.seed,
            progress=None if progress is None else lambda f, m=method: progress(m, f), **extra,
        )
    return results


def _snapshot_steps(config: ToyConfig) -> list[int]:
    steps = int(config.ais.get("steps", 200))
    return sorted({round(f * steps) for f in config.snapshot_fractions})


def reference_posterior(generator: nn.Module, config: ToyConfig, *, draws: int = 1_000_000) -> dict[str, float]:
    """The exact answer in 2-D: importance sampling from 10⁶ prior draws.

    Returns the posterior probability that ``‖G(z) − (1, 0)‖²/2 < 0.01``, the posterior
    mean error, log p(x_o) and the ESS of the reference. A correct sampler's weighted
    fraction matches the probability; no sampler can beat it, whatever the generator.
    """
    observed, mask = toy_observation()
    rng = torch.Generator().manual_seed(config.seed + 12345)
    with torch.no_grad():
        z = torch.randn(draws, 2, generator=rng)
        x = generator(z)
    log_lik = Gaussian(config.noise_std).log_prob((x[:, 1:] - observed[:, 1:]).unsqueeze(0), torch.ones(1))[0]
    weights = torch.softmax(log_lik.double(), 0)
    error = reconstruction_error(x).double()
    return {
        "fraction_within_0.01": (weights * (error < SUCCESS_THRESHOLD)).sum().item(),
        "mean_error": (weights * error).sum().item(),
        "log_evidence": (torch.logsumexp(log_lik.double(), 0) - math.log(draws)).item(),
        "ess": 1.0 / weights.pow(2).sum().item(),
    }


def results_rows(
    results: Mapping[int, Mapping[str, Completion]], references: Mapping[int, Mapping[str, float]] | None = None
) -> list[dict[str, Any]]:
    """One row per (checkpoint, method): success fraction, mean error, gradient evaluations;
    with ``references`` a row ``exact posterior`` per checkpoint comes first."""
    rows = []
    for iteration, by_method in results.items():
        if references is not None and iteration in references:
            ref = references[iteration]
            rows.append({
                "iteration": iteration,
                "method": "exact posterior (10⁶ IS draws)",
                "fraction_within_0.01": None,
                "weighted_fraction_within_0.01": round(ref["fraction_within_0.01"], 4),
                "mean_error": round(ref["mean_error"], 5),
                "median_error": None,
                "grad_evals_per_chain": None,
                "log_evidence": round(ref["log_evidence"], 3),
            })
        for method, out in by_method.items():
            error = reconstruction_error(out.samples[0])
            success = (error < SUCCESS_THRESHOLD).double()
            rows.append({
                "iteration": iteration,
                "method": method,
                "fraction_within_0.01": round(success.mean().item(), 4),
                "weighted_fraction_within_0.01": round((out.weights[0].double() * success).sum().item(), 4),
                "mean_error": round(error.mean().item(), 5),
                "median_error": round(error.median().item(), 5),
                "grad_evals_per_chain": out.grad_evals,
                "log_evidence": None if math.isnan(out.log_evidence[0]) else round(out.log_evidence[0].item(), 3),
            })
    return rows


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of ``rows`` (all with the same keys)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("—" if row[k] is None else str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def loss_landscape(generator: nn.Module, *, extent: float = 3.0, resolution: int = 200) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. (1), ``(x2 − G(z)_2)²`` with x2 = 0, on a ``resolution``² grid over ``[-extent, extent]²``."""
    axis = torch.linspace(-extent, extent, resolution)
    z1, z2 = torch.meshgrid(axis, axis, indexing="xy")
    with torch.no_grad():
        x = generator(torch.stack([z1.flatten(), z2.flatten()], 1))
    return z1, z2, x[:, 1].pow(2).reshape(resolution, resolution)


def gd_trajectory(generator: nn.Module, z0: Tensor, *, steps: int, lr: float) -> tuple[Tensor, Tensor]:
    """Adam on Eq. (1) from ``z0`` ``(2,)``: the path ``(steps + 1, 2)`` and losses ``(steps + 1,)``."""
    z = z0.clone().reshape(1, 2).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    path, losses = [], []
    for _ in range(steps + 1):
        loss = generator(z)[0, 1].pow(2)
        path.append(z.detach()[0].clone())
        losses.append(loss.detach())
        optimizer.zero_grad()
        loss.backward(inputs=[z])
        optimizer.step()
    return torch.stack(path), torch.stack(losses)


def _plot_fig1(generators: Mapping[int, nn.Module], config: ToyConfig, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    n = len(generators)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 6.2), squeeze=False)
    z0 = torch.tensor([-1.5, 1.8])  # one fixed start for every checkpoint
    for col, (iteration, generator) in enumerate(generators.items()):
        z1, z2, loss = loss_landscape(generator)
        ax = axes[0, col]
        mesh = ax.pcolormesh(z1.numpy(), z2.numpy(), loss.clamp_min(1e-4).numpy(), norm=LogNorm(), cmap="viridis",
                             shading="auto")
        path_z, losses = gd_trajectory(generator, z0, steps=int(config.gd.get("steps", 1000)), lr=float(config.gd.get("options", {}).get("lr", 0.01)))
        path_z = path_z.numpy()
        ax.plot(path_z[:, 0], path_z[:, 1], color="red", lw=1.5)
        ax.scatter(path_z[-1:, 0], path_z[-1:, 1], color="red", s=20, zorder=3)
        ax.set_title(f"{iteration} iterations")
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
        fig.colorbar(mesh, ax=ax, fraction=0.046)
        axes[1, col].plot(losses.numpy(), color="red")
        axes[1, col].set_yscale("log")
        axes[1, col].set_xlabel("GD iteration")
        axes[1, col].set_ylabel("Eq. (1) loss")
    fig.suptitle("Fig. 1: loss of Eq. (1) in z-space (top) and a gradient-descent run (bottom)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_fig2(generators: Mapping[int, nn.Module], results: Mapping[int, Mapping[str, Completion]], config: ToyConfig,
               path: Path) -> None:
    import matplotlib.pyplot as plt

    data = ring_of_gaussians(1000, rng=torch.Generator().manual_seed(config.seed)).numpy()
    methods = list(next(iter(results.values())))
    ncols = 1 + 2 * len(methods)
    fig, axes = plt.subplots(len(generators), ncols, figsize=(2.5 * ncols, 2.5 * len(generators)), squeeze=False)
    bins = torch.logspace(-5, 1, 31).numpy()
    for row, (iteration, generator) in enumerate(generators.items()):
        with torch.no_grad():
            fake = generator(torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))).numpy()
        ax = axes[row, 0]
        ax.scatter(data[:, 0], data[:, 1], s=2, color="tab:blue", alpha=0.4)
        ax.scatter(fake[:, 0], fake[:, 1], s=2, color="black", alpha=0.5)
        ax.set_ylabel(f"{iteration} it.")
        for m, method in enumerate(methods):
            out = results[iteration][method]
            x = out.samples[0].numpy()
            ax = axes[row, 1 + 2 * m]
            ax.scatter(data[:, 0], data[:, 1], s=2, color="tab:blue", alpha=0.3)
            ax.scatter(x[:, 0], x[:, 1], s=8, color="gold", edgecolor="black", linewidth=0.3)
            ax.scatter([1.0], [0.0], marker="x", color="red", s=40)
            error = reconstruction_error(out.samples[0]).clamp_min(1e-5)
            ax = axes[row, 2 + 2 * m]
            ax.hist(error.numpy(), bins=bins, color="gold", edgecolor="black")
            ax.axvline(SUCCESS_THRESHOLD, color="red", lw=1)
            ax.set_xscale("log")
            if row == 0:
                axes[0, 1 + 2 * m].set_title(f"{method}: reconstructions")
                axes[0, 2 + 2 * m].set_title(f"{method}: error")
    axes[0, 0].set_title("data (blue), G (black)")
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
    for ax in axes[:, [0, *range(1, ncols, 2)]].flat:
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(-1.6, 1.6)
        ax.set_aspect("equal")
    fig.suptitle("Fig. 2: reconstructions of x given $x_2 = 0$ (truth (1, 0), red ×) and their errors")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_fig3(generator: nn.Module, out: Completion, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    snapshots = out.diagnostics["snapshots"]
    z1, z2, loss = loss_landscape(generator)
    fig, axes = plt.subplots(1, len(snapshots), figsize=(3 * len(snapshots), 3.2), squeeze=False)
    for ax, (t, z) in zip(axes[0], sorted(snapshots.items()), strict=True):
        ax.pcolormesh(z1.numpy(), z2.numpy(), loss.clamp_min(1e-4).numpy(), norm=LogNorm(), cmap="Greys_r",
                      shading="auto")
        ax.scatter(z[0, :, 0].numpy(), z[0, :, 1].numpy(), s=6, color="orange", edgecolor="black", linewidth=0.2)
        ax.set_title(f"AIS step {t}")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
    fig.suptitle("Fig. 3 (left): AIS chains in z-space during annealing")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reproduce_toy(
    out_dir: str | Path,
    *,
    config: ToyConfig | None = None,
    generators: Mapping[int, nn.Module] | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Train (or take) the toy generators, run every method, write figures and the table.

    Args:
        out_dir: where ``fig1_landscape.png``, ``fig2_reconstructions.png``,
            ``fig3_annealing.png``, ``results.md``, ``results.json`` and the training
            checkpoints (``checkpoints/``) go.
        config: :class:`ToyConfig` (default: the full run).
        generators: ``{iteration: generator}`` to skip training.
        progress: ``progress(stage, fraction)`` for progress bars.

    Returns:
        ``{"rows": [...], "files": {...}}``.
    """
    from cogenerate.training.gan import train_toy_gan

    config = config or ToyConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if generators is None:
        last = max(config.iterations)
        generators = train_toy_gan(
            iterations=last, keep=config.iterations, seed=config.seed, checkpoint_dir=out / "checkpoints",
            on_step=None if progress is None else lambda i, _: progress("train", i / last),
        )
        generators = {k: generators[k] for k in config.iterations}
    results = {}
    for iteration, generator in generators.items():
        stage = f"{iteration} it."
        results[iteration] = run_methods(
            generator, config, progress=None if progress is None else lambda m, f, s=stage: progress(f"{s} {m}", f)
        )
    references = {iteration: reference_posterior(g, config) for iteration, g in generators.items()}
    rows = results_rows(results, references)
    files = {
        "fig1": out / "fig1_landscape.png",
        "fig2": out / "fig2_reconstructions.png",
        "fig3": out / "fig3_annealing.png",
        "table_md": out / "results.md",
        "table_json": out / "results.json",
    }
    _plot_fig1(generators, config, files["fig1"])
    _plot_fig2(generators, results, config, files["fig2"])
    last = max(generators)
    if "ais" in results[last]:
        _plot_fig3(generators[last], results[last]["ais"], files["fig3"])
    files["table_md"].write_text(markdown_table(rows))
    config_json = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
    files["table_json"].write_text(json.dumps({"config": config_json, "rows": rows}, indent=2))
    return {"rows": rows, "files": {k: str(v) for k, v in files.items()}}
