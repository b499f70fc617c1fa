"""The end-to-end tasks behind the ``brittle`` command: train, attack, evaluate, demo,
reproduce, transfer.

Each task is the sequence of library calls a user would otherwise write: load the data and
the model, build the attack and check it against the threat model, run it, store and
report. Every output place is checked before any work and every file is written atomically
(:mod:`brittle.files`). Tasks return what they did; printing is the caller's business (the
command line's, :mod:`brittle.cli`).
"""

from .attack import TARGETS, AttackOutcome, attack, save_adversarial
from .bound import BoundOutcome, bound
from .common import DEFAULT_BATCH_SIZE, DEFAULT_N, ModelOptions, default_device, resolve_device
from .compare import CompareOutcome, compare
from .demo import DEMO_EPS, DEMO_LR, DEMO_TRAIN, demo
from .evaluate import (
    DEFAULT_EPS_LIST,
    STORE_NAME,
    EvaluateOutcome,
    evaluate_model,
    evaluation_spec,
    resume_evaluation,
)
from .generator import GeneratorOutcome, generator_train
from .reproduce import REPRODUCTION_NAMES, ReproduceOutcome, reproduce
from .train import Recipe, TrainOutcome, train, train_on
from .transfer import TransferOutcome, transfer

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPS_LIST",
    "DEFAULT_N",
    "DEMO_EPS",
    "DEMO_LR",
    "DEMO_TRAIN",
    "REPRODUCTION_NAMES",
    "STORE_NAME",
    "TARGETS",
    "AttackOutcome",
    "BoundOutcome",
    "CompareOutcome",
    "EvaluateOutcome",
    "GeneratorOutcome",
    "ModelOptions",
    "Recipe",
    "ReproduceOutcome",
    "TrainOutcome",
    "TransferOutcome",
    "attack",
    "bound",
    "compare",
    "default_device",
    "demo",
    "evaluate_model",
    "evaluation_spec",
    "generator_train",
    "reproduce",
    "resolve_device",
    "resume_evaluation",
    "save_adversarial",
    "train",
    "train_on",
    "transfer",
]
