"""``brittle train``: train a model of the zoo, optionally with a defence, and save a
checkpoint with its metadata.

Under ``torchrun`` every process runs it with the same arguments: each loads the data, the
training is data-parallel (:func:`brittle.zoo.train_model`) and rank 0 alone measures
the model and writes the checkpoint, whose metadata every process returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from brittle.distributed import from_leader, join, together
from brittle.errors import InputError
from brittle.files import check_outputs
from brittle.validation import check_positive_integer
from brittle.zoo import (
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
from brittle.zoo.sharding import check_global_batch

from .common import Log, draw, quiet

_TEACHER = "--out's teacher (NAME.teacher.pt)"
"""The teacher ``--defense distill`` trains and saves beside ``--out``, in messages."""


@dataclass(frozen=True)
class TrainOutcome:
    """A trained model: where its checkpoint is, its metadata and its training history, and
    the network itself (in memory on every process, also where the file is not)."""

    path: Path
    meta: dict[str, Any]
    history: TrainHistory
    model: nn.Module | None = field(default=None, repr=False, compare=False)


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

    Started by ``torchrun`` (:func:`brittle.distributed.join`), every process trains on its
    share of each global batch of ``batch_size`` (a multiple of the number of processes) on
    ``device`` or its local rank's GPU; rank 0 alone checks and writes ``out``, logs and
    shows progress. A process that fails before training stops them all with its message.
    """
    place, where = join(device)
    log, progress = (log, progress) if place.leader else (quiet, False)
    with together("checking the options and loading the data"):
        if n_train is not None:
            check_positive_integer(n_train, "--n-train")
        check_global_batch(batch_size, place.size)
        new_teacher = defense is not None and defense.name == "distill" and defense.teacher is None
        out = _check_out(out, new_teacher, defense, data_dir) if place.leader else Path(out)
        recipe = Recipe(arch, epochs, batch_size, lr, optimizer, weight_decay, l1, seed)
        fixed: dict[str, tuple[nn.Module, dict[str, Any]]] = {}
        if defense is not None:
            defense.check()
            fixed = {
                path: load_checkpoint(path) for path in (*defense.static, defense.teacher) if path
            }
        train_set = load_dataset(dataset, "train", data_dir)
        if n_train is not None:
            train_set = draw(train_set, n_train, seed, "train", "--n-train")
        test_set = load_dataset(dataset, "test", data_dir)
        for path, (_, meta) in fixed.items():
            check_fits(meta, train_set, path)
    device = str(where)
    left = len(train_set) % batch_size
    if place.distributed and left and len(train_set) > batch_size:
        log(
            f"{place.size} processes: each epoch trains on {len(train_set) - left} of the "
            f"{len(train_set)} samples, in global batches of {batch_size}; the other {left} "
            "(different ones every epoch) are left out of it, so that every process takes "
            "the same steps"
        )
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


def _check_out(
    out: str | Path, new_teacher: bool, defense: DefenseOptions | None, data_dir: str | Path | None
) -> Path:
    """``--out`` (and the teacher's file beside it) checked as a place to write, apart from
    every file the command reads."""
    return check_outputs(
        {"--out": out, _TEACHER: teacher_path(Path(out)) if new_teacher else None},
        {
            "--static": defense.static if defense else None,
            "--teacher": defense.teacher if defense else None,
            "--data-dir": data_dir,
        },
    )["--out"]


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
        assert taught.model is not None
        teacher, where = taught.model, str(taught.path)
    labels = soft_labels(teacher.to(device), train_set.x, temperature)
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

    ``objective`` replaces the architecture's own (:func:`~brittle.zoo.default_objective`:
    a defence), ``labels`` the training labels (soft labels for distillation). The RBF
    network's prototypes start at the class means. The checkpoint (written atomically) records the test accuracy
    (at T = 1), the data set, its classes, the seed, the epochs, the number of training
    samples, the training recipe (with the number of processes) and the defence (``None``
    without one). Under several processes, rank 0 alone measures the model and writes the
    checkpoint; every process returns its metadata.
    """
    torch_device = join(device)[1]
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
        "seed": recipe.seed,
        "epochs": recipe.epochs,
        "n_train": len(train_set),
        "training": {
            "batch_size": recipe.batch_size,
            "lr": recipe.lr,
            "optimizer": recipe.optimizer,
            "weight_decay": recipe.weight_decay,
            "l1": recipe.l1,
            "processes": history.processes,
            "seconds": round(history.seconds, 3),
        },
        "defense": defense,
    }

    def measure_and_save() -> tuple[Path, dict[str, Any]]:
        measured = {
            **meta,
            "accuracy": accuracy(model, test_set.x, test_set.y, device=torch_device),
        }
        path = save_checkpoint(out, model, measured)
        return path, load_checkpoint(path)[1]

    path, saved = from_leader(measure_and_save)
    return TrainOutcome(path=path, meta=saved, history=history, model=model)
