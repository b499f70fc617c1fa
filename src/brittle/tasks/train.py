"""``brittle train``: train a model of the zoo, optionally with a defence, and save a
checkpoint with its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from torch import Tensor, nn

from brittle.data import Dataset, load_dataset
from brittle.defenses import (
    DefenseOptions,
    MixedObjective,
    TemperatureCrossEntropy,
    build_objective,
    describe_distillation,
    soft_labels,
)
from brittle.errors import InputError
from brittle.files import check_outputs
from brittle.models import (
    Objective,
    TrainHistory,
    TrainingStep,
    accuracy,
    build_model,
    default_objective,
    initial_kwargs,
    load_checkpoint,
    save_checkpoint,
    train_model,
)

from .common import Log, check_count, draw, quiet, resolve_device

_TEACHER = "--out's teacher (NAME.teacher.pt)"
"""The teacher ``--defense distill`` trains and saves beside ``--out``, in messages."""


@dataclass(frozen=True)
class TrainOutcome:
    """A trained model: where its checkpoint is, its metadata and its training history."""

    path: Path
    meta: dict[str, Any]
    history: TrainHistory


@dataclass(frozen=True)
class Recipe:
    """How to train: everything of ``brittle train`` but the data and the defence."""

    arch: str = "lenet"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    l1: float = 0.0
    seed: int = 0


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
    defense: DefenseOptions | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    log: Log = quiet,
) -> TrainOutcome:
    """Train ``arch`` on the training split of ``dataset`` and save a checkpoint at ``out``.

    ``n_train`` samples (drawn with ``seed``) are used, all when ``None``; more than the
    split holds is refused. ``defense`` trains with a defence (:mod:`brittle.defenses`),
    recorded in the checkpoint's metadata under ``"defense"``. Before anything is loaded:
    ``out`` is checked (:func:`~brittle.files.check_outputs`: writable, a regular file or
    absent, not a link, not a checkpoint or data file read), the defence's options are
    checked, and the checkpoints it names (``--static``, ``--teacher``) are loaded; before
    any training, they must take the data's input shape and classes. ``--defense distill`` without a teacher
    trains one at the temperature first and saves it beside ``out`` (``NAME.teacher.pt``).
    """
    check_count(n_train, "--n-train")
    new_teacher = defense is not None and defense.name == "distill" and defense.teacher is None
    out = check_outputs(
        {"--out": out, _TEACHER: teacher_path(Path(out)) if new_teacher else None},
        {
            "--static": defense.static if defense else None,
            "--teacher": defense.teacher if defense else None,
            "--data-dir": data_dir,
        },
    )["--out"]
    recipe = Recipe(arch, epochs, batch_size, lr, optimizer, weight_decay, l1, seed)
    fixed: dict[str, tuple[nn.Module, dict[str, Any]]] = {}
    if defense is not None:
        defense.check()
        fixed = {path: load_checkpoint(path) for path in (*defense.static, defense.teacher) if path}
    train_set = load_dataset(dataset, "train", data_dir)
    if n_train is not None:
        train_set = draw(train_set, n_train, seed, "train", "--n-train")
    test_set = load_dataset(dataset, "test", data_dir)
    for path, (_, meta) in fixed.items():
        check_fits(meta, train_set, path)
    if defense is None:
        return train_on(
            train_set, test_set, recipe=recipe, out=out, device=device, progress=progress
        )
    if defense.name == "distill":
        return _distill(defense, fixed, train_set, test_set, recipe, out, device, progress, log)
    objective = build_objective(defense, [fixed[p][0] for p in defense.static])
    assert isinstance(objective, MixedObjective)
    return train_on(
        train_set,
        test_set,
        recipe=recipe,
        out=out,
        objective=objective,
        defense=objective.describe(),
        device=device,
        progress=progress,
    )


def teacher_path(out: Path) -> Path:
    """Where ``--defense distill`` keeps the teacher it trains: ``NAME.teacher.pt``."""
    return out.with_name(f"{out.stem}.teacher{out.suffix or '.pt'}")


def check_fits(meta: dict[str, Any], data: Dataset, path: str) -> None:
    """Refuse a fixed model (static or teacher) built for another input shape or class count."""
    shape, classes = tuple(meta["input_shape"]), int(meta["num_classes"])
    if shape != tuple(data.input_shape) or classes != len(data.classes):
        raise InputError(
            f"{path} takes inputs of shape {shape} with {classes} classes, but the training "
            f"data ({data.name}) has shape {tuple(data.input_shape)} and {len(data.classes)} "
            "classes; give models trained on the same data"
        )


def _distill(
    defense: DefenseOptions,
    fixed: dict[str, tuple[nn.Module, dict[str, Any]]],
    train_set: Dataset,
    test_set: Dataset,
    recipe: Recipe,
    out: Path,
    device: str | None,
    progress: bool,
    log: Log,
) -> TrainOutcome:
    """Defensive distillation: a teacher at T (given, or trained and saved), its soft labels,
    and the student trained on them at T."""
    objective = build_objective(defense)
    assert isinstance(objective, TemperatureCrossEntropy)
    temperature = objective.temperature
    if defense.teacher is not None:
        teacher, where = fixed[defense.teacher][0], defense.teacher
    else:
        log(f"training the teacher at temperature {temperature:g}")
        taught = train_on(
            train_set,
            test_set,
            recipe=recipe,
            out=teacher_path(out),
            objective=objective,
            defense={"name": "temperature", "temperature": temperature},
            device=device,
            progress=progress,
        )
        teacher, where = load_checkpoint(taught.path)[0], str(taught.path)
    labels = soft_labels(teacher.to(resolve_device(device)), train_set.x, temperature)
    log(f"training the student on the teacher's soft labels at temperature {temperature:g}")
    return train_on(
        train_set,
        test_set,
        recipe=recipe,
        out=out,
        objective=objective,
        labels=labels,
        defense=describe_distillation(temperature, where),
        device=device,
        progress=progress,
    )


def train_on(
    train_set: Dataset,
    test_set: Dataset,
    *,
    recipe: Recipe,
    out: str | Path,
    objective: Objective | TrainingStep | None = None,
    labels: Tensor | None = None,
    defense: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train ``recipe.arch`` on ``train_set``, measure it on ``test_set``, save it at ``out``.

    ``objective`` replaces the architecture's own (:func:`~brittle.models.default_objective`:
    a defence), ``labels`` the training labels (soft labels for distillation). The RBF
    network's prototypes start at the class means. The checkpoint (written atomically) records the test accuracy
    (at T = 1), the data set, its classes, the seed, the epochs, the number of training
    samples, the training recipe and the defence (``None`` without one).
    """
    torch_device = resolve_device(device)
    classes = len(train_set.classes)
    start = initial_kwargs(recipe.arch, train_set.x, train_set.y, classes)
    model = build_model(recipe.arch, train_set.input_shape, classes, seed=recipe.seed, **start)
    history = train_model(
        model,
        train_set.x,
        train_set.y if labels is None else labels,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        optimizer=cast(Literal["adam", "sgd"], recipe.optimizer),  # train_model checks it
        weight_decay=recipe.weight_decay,
        l1=recipe.l1,
        seed=recipe.seed,
        device=torch_device,
        progress=progress,
        objective=objective if objective is not None else default_objective(recipe.arch),
    )
    meta = {
        "dataset": train_set.name,
        "data": train_set.origin,
        "classes": train_set.classes,
        "bounds": [0.0, 1.0],
        "preprocessing": None,
        "accuracy": accuracy(model, test_set.x, test_set.y, device=torch_device),
        "seed": recipe.seed,
        "epochs": recipe.epochs,
        "n_train": len(train_set),
        "training": {
            "batch_size": recipe.batch_size,
            "lr": recipe.lr,
            "optimizer": recipe.optimizer,
            "weight_decay": recipe.weight_decay,
            "l1": recipe.l1,
            "seconds": round(history.seconds, 3),
        },
        "defense": defense,
    }
    path = save_checkpoint(out, model, meta)
    _, saved = load_checkpoint(path)
    return TrainOutcome(path=path, meta=saved, history=history)
