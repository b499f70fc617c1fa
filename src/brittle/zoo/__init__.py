"""The model zoo: the papers' networks (:mod:`~brittle.zoo.architectures`), their training
loop (:mod:`~brittle.zoo.train`) and brittle's own safe checkpoints
(:mod:`~brittle.zoo.checkpoint`). Models as users keep them are loaded by
:mod:`brittle.loading`."""

from .architectures import ARCHITECTURES, build_model, class_means, initial_kwargs
from .checkpoint import load_checkpoint, load_classifier, save_checkpoint
from .train import (
    Objective,
    TrainHistory,
    TrainingStep,
    accuracy,
    default_objective,
    radial_likelihood,
    train_model,
)

__all__ = [
    "ARCHITECTURES",
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
    "radial_likelihood",
    "save_checkpoint",
    "train_model",
]
