"""The models layer: the papers' networks, their training loop, safe checkpoints, and the
loaders of models in the formats users keep them (:func:`load_model`)."""

from .checkpoint import load_checkpoint, load_classifier, save_checkpoint
from .loaders import LoadedModel, load_model
from .train import (
    Objective,
    TrainHistory,
    TrainingStep,
    accuracy,
    default_objective,
    radial_likelihood,
    train_model,
)
from .zoo import ARCHITECTURES, build_model, class_means, initial_kwargs

__all__ = [
    "ARCHITECTURES",
    "LoadedModel",
    "Objective",
    "TrainHistory",
    "TrainingStep",
    "accuracy",
    "build_model",
    "class_means",
    "default_objective",
    "initial_kwargs",
    "load_checkpoint",
    "load_classifier",
    "load_model",
    "radial_likelihood",
    "save_checkpoint",
    "train_model",
]
