"""``brittle train``: train a model of the zoo and save a checkpoint with its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from brittle.data import Dataset, load_dataset
from brittle.files import check_writable
from brittle.models import (
    TrainHistory,
    accuracy,
    build_model,
    load_checkpoint,
    save_checkpoint,
    train_model,
)

from .common import check_count, draw, resolve_device


@dataclass(frozen=True)
class TrainOutcome:
    """A trained model: where its checkpoint is, its metadata and its training history."""

    path: Path
    meta: dict[str, Any]
    history: TrainHistory


def train(
    *,
    arch: str = "lenet",
    dataset: str = "auto",
    data_dir: str | Path | None = None,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    l1: float = 0.0,
    n_train: int | None = None,
    out: str | Path = "runs/lenet.pt",
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train ``arch`` on the training split of ``dataset`` and save a checkpoint at ``out``.

    ``n_train`` samples (drawn with ``seed``) are used, all when ``None``; more than the
    split holds is refused. ``out`` is checked to be writable before anything is loaded.
    """
    check_count(n_train, "--n-train")
    out = check_writable(out, option="--out")
    train_set = load_dataset(dataset, "train", data_dir)
    if n_train is not None:
        train_set = draw(train_set, n_train, seed, "train", "--n-train")
    return train_on(
        train_set,
        load_dataset(dataset, "test", data_dir),
        arch=arch,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        l1=l1,
        out=out,
        seed=seed,
        device=device,
        progress=progress,
    )


def train_on(
    train_set: Dataset,
    test_set: Dataset,
    *,
    arch: str,
    out: str | Path,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    l1: float = 0.0,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train ``arch`` on ``train_set``, measure it on ``test_set``, save it at ``out``.

    The checkpoint (written atomically) records the test accuracy, the data set, its
    classes, the seed, the epochs and the number of training samples.
    """
    torch_device = resolve_device(device)
    model = build_model(arch, train_set.input_shape, len(train_set.classes), seed=seed)
    history = train_model(
        model,
        train_set.x,
        train_set.y,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=cast(Literal["adam", "sgd"], optimizer),  # train_model checks it
        weight_decay=weight_decay,
        l1=l1,
        seed=seed,
        device=torch_device,
        progress=progress,
    )
    meta = {
        "dataset": train_set.name,
        "classes": train_set.classes,
        "bounds": [0.0, 1.0],
        "preprocessing": None,
        "accuracy": accuracy(model, test_set.x, test_set.y, device=torch_device),
        "seed": seed,
        "epochs": epochs,
        "n_train": len(train_set),
    }
    path = save_checkpoint(out, model, meta)
    _, saved = load_checkpoint(path)
    return TrainOutcome(path=path, meta=saved, history=history)
