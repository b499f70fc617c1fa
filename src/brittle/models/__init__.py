"""The models layer: the papers' networks, their training loop, and safe checkpoints."""

from .checkpoint import load_checkpoint, load_classifier, save_checkpoint
from .train import Objective, TrainHistory, TrainingStep, accuracy, train_model
from .zoo import ARCHITECTURES, build_model

__all__ = [
    "ARCHITECTURES",
    "Objective",
    "TrainHistory",
    "TrainingStep",
    "accuracy",
    "build_model",
    "load_checkpoint",
    "load_classifier",
    "save_checkpoint",
    "train_model",
]
