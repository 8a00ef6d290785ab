"""Explicit training loops, GAN losses and checkpoints (safetensors + JSON config)."""

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
from cogenerate.training.gan import TOY_GAN_SETTINGS, init_parameters_, train_gan, train_toy_gan
from cogenerate.training.losses import discriminator_loss, generator_loss

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "TOY_GAN_SETTINGS",
    "TrainingState",
    "discriminator_loss",
    "generator_loss",
    "init_parameters_",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
    "train_gan",
    "train_toy_gan",
]
