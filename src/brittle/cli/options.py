"""The options that are not an attack's: the model and data, training, seed and device.

Each ``add_*`` function has a ``*_request`` partner where the options go to a task as the
task's keyword arguments, so no command repeats them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brittle import tasks
from brittle.data import DATASET_NAMES, SPLITS
from brittle.models import ARCHITECTURES

from .parser import choice, integer, number

Options = argparse.ArgumentParser | argparse._ArgumentGroup

_TARGET = ("model", "dataset", "data_dir", "split", "n", "batch_size")
"""The destinations of :func:`add_target`, keyword arguments of ``attack`` and ``evaluate``."""
_TRAINING = (
    "arch",
    "dataset",
    "data_dir",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "l1",
    "n_train",
    "out",
)
"""The destinations of :func:`add_training`, keyword arguments of :func:`brittle.tasks.train`."""


def add_common(parser: Options) -> None:
    """``--seed`` and ``--device``: every command."""
    parser.add_argument(
        "--seed",
        type=integer,
        default=0,
        metavar="N",
        help="Seed of the data subsets, the initialisation and the attacks (default: 0).",
    )
    parser.add_argument(
        "--device", metavar="NAME", help="cpu, cuda or cuda:N (default: cuda if available)."
    )


def common_request(args: argparse.Namespace) -> dict[str, Any]:
    return {"seed": args.seed, "device": args.device}


def add_data_dir(parser: Options) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="PATH",
        help="MNIST/Fashion-MNIST IDX folder, .npz file or image folder.",
    )


def add_target(parser: argparse.ArgumentParser) -> None:
    """The model and the samples attacked (``attack`` and ``evaluate``)."""
    group = parser.add_argument_group("model and data")
    group.add_argument(
        "--model",
        type=Path,
        default=Path("runs/lenet.pt"),
        metavar="PATH",
        help="Checkpoint written by `brittle train` (default: runs/lenet.pt).",
    )
    group.add_argument(
        "--dataset",
        metavar="NAME",
        help=f"{', '.join(DATASET_NAMES)} (default: the model's training data set).",
    )
    add_data_dir(group)
    group.add_argument(
        "--split", default="test", metavar="|".join(SPLITS), help="Data split (default: test)."
    )
    group.add_argument(
        "--n",
        type=integer,
        metavar="N",
        help="Samples to attack, drawn with --seed; at least 1 and at most the split's size "
        f"(default: {tasks.DEFAULT_N:,}, or the whole split when it has fewer).",
    )
    group.add_argument(
        "--batch-size",
        type=integer,
        default=256,
        metavar="N",
        help="Samples per batch (default: 256).",
    )


def target_request(args: argparse.Namespace) -> dict[str, Any]:
    """The model and samples of ``attack`` and ``evaluate``, as their tasks take them."""
    return {name: getattr(args, name) for name in _TARGET}


def add_training(parser: argparse.ArgumentParser) -> None:
    """The options of ``train``."""
    parser.add_argument(
        "--arch",
        default="lenet",
        metavar="NAME",
        help=f"Architecture: {', '.join(ARCHITECTURES)} (default: lenet).",
    )
    parser.add_argument(
        "--dataset",
        default="auto",
        metavar="NAME",
        help=f"{', '.join(DATASET_NAMES)} (default: auto, MNIST if found, else mnist5k).",
    )
    add_data_dir(parser)
    settings: list[tuple[str, Callable[[str], Any], Any, str, str]] = [
        ("--epochs", integer, 5, "N", "Passes over the training data (default: 5)."),
        ("--batch-size", integer, 128, "N", "Samples per batch (default: 128)."),
        ("--lr", number, 1e-3, "X", "Learning rate (default: 0.001)."),
        ("--optimizer", choice(("adam", "sgd")), "adam", "adam|sgd", "Optimiser (default: adam)."),
        ("--weight-decay", number, 0.0, "X", "L2 weight decay (default: 0)."),
        ("--l1", number, 0.0, "X", "L1 penalty on the weights (default: 0)."),
        ("--n-train", integer, None, "N", "Training samples, at least 1 (default: all)."),
    ]
    for flag, convert, default, metavar, text in settings:
        parser.add_argument(flag, type=convert, default=default, metavar=metavar, help=text)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/lenet.pt"),
        metavar="PATH",
        help="Where to write the checkpoint (default: runs/lenet.pt).",
    )


def training_request(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``train``, as :func:`brittle.tasks.train` takes them."""
    return {name: getattr(args, name) for name in _TRAINING}
