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
from brittle.defenses import DefenseOptions
from brittle.defenses.registry import defense_names, defense_options, option_help
from brittle.models import ARCHITECTURES

from .parser import UsageError, choice, integer, number

Options = argparse.ArgumentParser | argparse._ArgumentGroup

_SAMPLES = ("dataset", "data_dir", "split", "n", "batch_size")
"""The destinations of :func:`add_samples`, keyword arguments of ``attack``, ``evaluate``
and ``transfer``."""
_TARGET = ("model", *_SAMPLES)
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
    add_samples(group)


def add_samples(group: Options) -> None:
    """The samples attacked and their batches (``attack``, ``evaluate`` and ``transfer``)."""
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


def samples_request(args: argparse.Namespace) -> dict[str, Any]:
    """The samples of ``transfer``, as its task takes them."""
    return {name: getattr(args, name) for name in _SAMPLES}


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
    add_defense(parser.add_argument_group("defence (brittle.defenses)"))


def add_defense(group: Options) -> None:
    """The options of ``train --defense``, from the defences' registrations
    (:mod:`brittle.defenses.registry`); those a defence does not use are refused."""
    names = defense_names()
    group.add_argument(
        "--defense",
        type=choice(names),
        default=None,
        metavar="NAME",
        help=f"Train with a defence: {', '.join(names)} (default: none).",
    )
    converters: dict[type, Callable[[str], Any]] = {float: number, int: integer, str: str}
    for option in defense_options():
        group.add_argument(
            option.flag,
            type=paths if option.kind is tuple else converters[option.kind],
            default=() if option.kind is tuple else None,
            metavar=option.metavar,
            help=option_help(option).replace("%", "%%"),
        )


def paths(text: str) -> tuple[str, ...]:
    """Comma-separated file names, e.g. ``runs/a.pt,runs/b.pt``."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"must name at least one file, got {text!r}")
    return names


def training_request(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``train``, as :func:`brittle.tasks.train` takes them."""
    request = {name: getattr(args, name) for name in _TRAINING}
    options = {o.name: getattr(args, o.name) for o in defense_options()}
    if args.defense is None:
        given = [f"--{k.replace('_', '-')}" for k, v in options.items() if v not in (None, ())]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --defense (see brittle train --help)")
        return request
    return {**request, "defense": DefenseOptions(args.defense, **options)}
