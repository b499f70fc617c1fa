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
from brittle.data import DATASET_NAMES, SPLITS, Limits
from brittle.defenses import DefenseOptions
from brittle.defenses.registry import defense_names, defense_options, option_help
from brittle.zoo import ARCHITECTURES

from .parser import UsageError, choice, integer, number, seed

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
    """``--seed``, ``--device`` and ``--quiet``: every command."""
    parser.add_argument(
        "--seed",
        type=seed,
        default=0,
        metavar="N",
        help="Seed of the data subsets, the initialisation and the attacks (default: 0).",
    )
    parser.add_argument(
        "--device", metavar="NAME", help="cpu, cuda or cuda:N (default: cuda if available)."
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="No progress: neither bars on a terminal nor the periodic lines written to logs.",
    )


def common_request(args: argparse.Namespace) -> dict[str, Any]:
    return {"seed": args.seed, "device": args.device}


def add_data_dir(parser: Options) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="PATH",
        help="Where the data are: the IDX folder (mnist, fashion-mnist), the .npz file, the "
        "image folder (CLASS/ or train/CLASS/ and test/CLASS/ sub-folders), the CIFAR-10 "
        "binary folder (cifar10) or the folder of SVHN's .mat files (svhn).",
    )


def add_target(parser: argparse.ArgumentParser) -> None:
    """The model and the samples attacked (``attack`` and ``evaluate``)."""
    group = parser.add_argument_group("model and data")
    group.add_argument(
        "--model",
        default="runs/lenet.pt",
        metavar="SPEC",
        help="The model: a checkpoint of `brittle train`, a TorchScript file (torch.jit.save), "
        "a torch.export program (.pt2), an ONNX file (query-only: score-based attacks; needs "
        "onnxruntime), or FILE.py:FACTORY / package.module:FACTORY (a function or class "
        "returning an nn.Module) with --weights. FILE.py:FACTORY imports and runs your own "
        "code: give only code you trust. (default: runs/lenet.pt)",
    )
    group.add_argument(
        "--weights",
        metavar="PATH",
        help="The state_dict of a FILE.py:FACTORY model: a .pt file (read with "
        "weights_only=True: no code is unpickled) or a .safetensors file.",
    )
    group.add_argument(
        "--preprocess",
        type=_preprocess,
        metavar="MEAN/STD",
        help="Per-channel normalisation the model expects, applied inside it so that eps stays "
        "in pixel units: comma-separated means, a slash, comma-separated stds (e.g. "
        "0.49,0.48,0.45/0.25,0.24,0.26).",
    )
    group.add_argument(
        "--classes",
        type=_classes,
        metavar="NAMES",
        help="The model's class names in the order of its outputs, comma-separated or a text "
        "file with one per line; checked against the data's class names.",
    )
    group.add_argument(
        "--amp",
        choices=("bf16", "fp16"),
        help="Run the attacks' forward passes (and their gradients) under torch.autocast at "
        "this precision; the clean prediction and the re-check of every returned input stay "
        "at the model's own precision. bf16 keeps float32's range; fp16 can underflow small "
        "gradients. For white-box models only.",
    )
    add_samples(group)


def _preprocess(text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from brittle.loading.loaders import parse_preprocess

    mean, std = _converted(parse_preprocess, text)
    return tuple(mean), tuple(std)


def _classes(text: str) -> tuple[str, ...]:
    from brittle.loading.loaders import parse_classes

    return tuple(_converted(parse_classes, text))


def _converted(convert: Callable[[str], Any], text: str) -> Any:
    """``convert(text)``, its input errors turned into argparse's (one usage line)."""
    from brittle.errors import BrittleError

    try:
        return convert(text)
    except BrittleError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def model_options(args: argparse.Namespace) -> tasks.ModelOptions:
    """The options of ``--model`` that are not the model itself."""
    return tasks.ModelOptions(
        weights=args.weights, preprocess=args.preprocess, classes=args.classes, amp=args.amp
    )


def add_samples(group: Options) -> None:
    """The samples attacked and their batches (``attack``, ``evaluate`` and ``transfer``)."""
    group.add_argument(
        "--dataset",
        metavar="NAME",
        help=f"{', '.join(DATASET_NAMES)}, or python:MODULE:FACTORY / python:FILE.py:FACTORY "
        "(a function returning a map-style torch Dataset; runs your own code) (default: the "
        "data set the model records).",
    )
    add_data_dir(group)
    group.add_argument(
        "--split", default="test", metavar="|".join(SPLITS), help="Data split (default: test)."
    )
    group.add_argument(
        "--num-samples",
        "--n",
        dest="n",
        type=integer,
        metavar="N",
        help="Samples to attack, drawn with --seed; at least 1 and at most the split's size "
        f"(default: {tasks.DEFAULT_N:,}, or the whole split when it has fewer). Under torchrun "
        "write --num-samples: torchrun reads --n as one of its own options.",
    )
    group.add_argument(
        "--batch-size",
        type=integer,
        default=tasks.DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"Samples per batch (default: {tasks.DEFAULT_BATCH_SIZE}).",
    )
    defaults = Limits()
    for name, what in _LIMITS.items():
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=integer,
            metavar="N",
            help=f"The most {what} a data file may make brittle read (default: "
            f"{getattr(defaults, name):,}); raise it only for a file you mean to read.",
        )


_LIMITS = {
    "max_bytes": "bytes decompressed at once",
    "max_elements": "values in one array",
    "max_pixels": "pixels in one image",
    "max_classes": "classes",
}
"""The ceilings of :class:`~brittle.data.limits.Limits`, one option each."""


def limits_request(args: argparse.Namespace) -> Limits | None:
    """The ceilings the command line raises or lowers (``None``: the defaults)."""
    given = {name: getattr(args, name) for name in _LIMITS if getattr(args, name) is not None}
    return Limits(**given) if given else None


def target_request(args: argparse.Namespace) -> dict[str, Any]:
    """The model and samples of ``attack`` and ``evaluate``, as their tasks take them."""
    return {
        **{name: getattr(args, name) for name in _TARGET},
        "model_options": model_options(args),
        "limits": limits_request(args),
    }


def samples_request(args: argparse.Namespace) -> dict[str, Any]:
    """The samples of ``transfer``, as its task takes them."""
    return {**{name: getattr(args, name) for name in _SAMPLES}, "limits": limits_request(args)}


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
