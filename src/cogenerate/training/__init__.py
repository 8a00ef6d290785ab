"""Training: the family registry, the one training loop, run folders, and GAN losses.

A model family registers a :class:`Family` (``training/<family>.py``); :func:`train` runs any
family's step with checkpoints, sample grids and resume; :func:`train_family` trains a
registered family on images into a run folder (what ``cogen train`` calls).
"""

from cogenerate.checkpoint import (
    Checkpoint,
    CheckpointError,
    TrainingState,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from cogenerate.training.dcgan import DCGAN, discriminator_loss, gan_step, generator_loss
from cogenerate.training.families import (
    COMMON_SETTINGS,
    FAMILIES,
    Family,
    Option,
    family_names,
    get_family,
    register_family,
    resolve_settings,
)
from cogenerate.training.gan import TOY_GAN_SETTINGS, init_parameters_, train_gan, train_toy_gan
from cogenerate.training.loop import TrainResult, checkpoint_name, train
from cogenerate.training.runs import RunPlan, plan_run, train_family, train_run

__all__ = [
    "COMMON_SETTINGS",
    "Checkpoint",
    "CheckpointError",
    "DCGAN",
    "FAMILIES",
    "Family",
    "Option",
    "RunPlan",
    "TOY_GAN_SETTINGS",
    "TrainResult",
    "TrainingState",
    "checkpoint_name",
    "discriminator_loss",
    "family_names",
    "gan_step",
    "generator_loss",
    "get_family",
    "init_parameters_",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "plan_run",
    "register_family",
    "resolve_settings",
    "restore_checkpoint",
    "save_checkpoint",
    "train",
    "train_family",
    "train_gan",
    "train_run",
    "train_toy_gan",
]
