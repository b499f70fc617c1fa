"""The end-to-end tasks behind the ``brittle`` command: train, attack, evaluate, demo.

Each task is the sequence of library calls a user would otherwise write: load the data and
the model, build the attack under a stated threat model, run it, store and report. Tasks
return what they did; printing is the caller's business (the CLI's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch

from brittle.attacks.base import Attack
from brittle.attacks.registry import describe_attack, make_attack
from brittle.attacks.result import AttackResult
from brittle.attacks.targets import TargetSpec
from brittle.classifier import Classifier
from brittle.data import Dataset, load_dataset
from brittle.errors import InputError
from brittle.eval.runner import Evaluation, evaluate, run_attack
from brittle.eval.store import ResultStore, file_sha256, run_key
from brittle.models import (
    TrainHistory,
    accuracy,
    build_model,
    load_checkpoint,
    load_classifier,
    save_checkpoint,
    train_model,
)
from brittle.report.content import build_report, threat_section
from brittle.report.html import ReportPaths, write_report
from brittle.threat import Goal, Norm, ThreatModel

DEMO_EPS = (0.05, 0.1, 0.2, 0.3)
"""The FGSM budgets of ``brittle demo`` (Goodfellow 2015 used 0.1 to 0.3 on MNIST)."""
DEMO_TRAIN = 15000
DEMO_LR = 3e-3
"""The demo trains for one epoch on this many samples at this learning rate: about 97% test
accuracy on MNIST in well under a minute of two CPU cores."""

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    """A log that drops its messages."""


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> torch.device:
    """The torch device named ``device`` (default :func:`default_device`), checked."""
    name = device or default_device()
    try:
        resolved = torch.device(name)
    except RuntimeError as err:
        raise InputError(f"unknown device {name!r}: use cpu, cuda or cuda:N ({err})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} was asked for but no CUDA GPU is available; use cpu")
    return resolved


# ---------------------------------------------------------------------------------- train
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

    ``n_train`` samples (drawn with ``seed``) are used, all when ``None``. The checkpoint
    records the test accuracy, the data set, its classes, the seed and the epochs.
    """
    torch_device = resolve_device(device)
    train_set = load_dataset(dataset, "train", data_dir)
    if n_train is not None:
        train_set = train_set.subset(n_train, seed)
    test_set = load_dataset(dataset, "test", data_dir)
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


# ---------------------------------------------------------------------------------- attack
@dataclass(frozen=True)
class _Target:
    """Who is attacked: the classifier, its checkpoint metadata and the evaluated samples."""

    classifier: Classifier
    meta: dict[str, Any]
    data: Dataset
    split: str
    seed: int


def _load_target(
    model: str | Path,
    dataset: str | None,
    data_dir: str | Path | None,
    split: str,
    n: int | None,
    seed: int,
    device: str | None,
) -> _Target:
    """The checkpoint at ``model`` and ``n`` samples (drawn with ``seed``) of ``split``.

    ``dataset=None`` uses the data set the model was trained on.
    """
    torch_device = resolve_device(device)
    _, meta = load_checkpoint(model)
    classifier = load_classifier(model, torch_device)
    name = dataset or meta.get("dataset")
    if not name:
        raise InputError(f"{model} does not record its data set; give one with --dataset")
    data = load_dataset(name, split, data_dir).subset(n, seed)
    if not len(data):
        raise InputError("n must be at least 1: there is nothing to attack")
    info = {**meta, "path": str(model), "sha256": file_sha256(model)}
    return _Target(classifier=classifier, meta=info, data=data, split=split, seed=seed)


def _goal(targeted: bool, target: str | None) -> TargetSpec:
    """The targets to aim at: ``target`` implies a targeted attack; random by default."""
    if target == "least_likely":
        return "least_likely"
    if target == "random" or (targeted and target is None):
        return "random"
    if target is not None:
        raise InputError(f"unknown target {target!r}: use random or least_likely")
    return None


def _default_target(attack: Attack, target: TargetSpec) -> TargetSpec:
    """Random targets for an attack that is targeted by default (L-BFGS) when none are given."""
    return "random" if attack.targeted and target is None else target


def _box_diameter(norm: Norm, bounds: tuple[float, float], features: int) -> float:
    """The largest perturbation the box allows in ``norm``: the budget of an unbounded attack."""
    width = bounds[1] - bounds[0]
    sizes = {
        Norm.LINF: width,
        Norm.L2: width * features**0.5,
        Norm.L1: width * features,
        Norm.L0: 1.0,  # every feature
    }
    return sizes[norm]


def _threat(attack: Attack, target: _Target, eps: float | None) -> ThreatModel:
    """The threat model ``attack`` runs under: its goal and norm, budget ``eps``, the box.

    A minimal attack without a budget is bounded by the box only (its diameter in the norm).
    """
    bounds = target.classifier.bounds
    budget = (
        eps if eps is not None else _box_diameter(attack.norm, bounds, target.data.x[0].numel())
    )
    threat = ThreatModel(
        goal=Goal.TARGETED if attack.targeted else Goal.UNTARGETED,
        capability=attack.capability,
        norm=attack.norm,
        eps=budget,
        bounds=bounds,
    )
    attack.check_threat(threat)
    return threat


def _attack_info(attack: Attack, minimize: bool, target: TargetSpec) -> dict[str, Any]:
    info = describe_attack(attack)
    info["params"].pop("eps", None)
    return {**info, "minimize": minimize, "target": target}


def _dataset_info(target: _Target, data_dir: str | Path | None) -> dict[str, Any]:
    digest = hashlib.sha256(target.data.x.numpy().tobytes() + target.data.y.numpy().tobytes())
    return {
        "name": target.data.name,
        "split": target.split,
        "n": len(target.data),
        "seed": target.seed,
        "data_dir": None if data_dir is None else str(data_dir),
        "sha256": digest.hexdigest(),
    }


@dataclass(frozen=True)
class AttackOutcome:
    """One attack over a data set: the per-sample result and its JSON summary."""

    result: AttackResult
    summary: dict[str, Any]
    x: torch.Tensor


def attack(
    *,
    model: str | Path,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    attack: str = "fgsm",
    eps: float | None = None,
    n: int | None = 1000,
    batch_size: int = 256,
    targeted: bool = False,
    target: str | None = None,
    minimize: bool = False,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> AttackOutcome:
    """Attack ``n`` samples of ``dataset`` with ``attack`` against the checkpoint ``model``.

    ``params`` are the attack's parameters (``None`` values: the attack's defaults). The
    summary holds :meth:`AttackResult.summary` plus the threat model, the attack's
    parameters and where the model and data came from.
    """
    victim = _load_target(model, dataset, data_dir, split, n, seed, device)
    target_spec = _goal(targeted, target)
    built = make_attack(
        attack,
        minimize=minimize,
        seed=seed,
        eps=eps,
        targeted=True if target_spec is not None else None,
        **(params or {}),
    )
    target_spec = _default_target(built, target_spec)
    threat = _threat(built, victim, built.eps)
    result = run_attack(
        victim.classifier,
        built,
        victim.data.x,
        victim.data.y,
        batch_size=batch_size,
        target=target_spec,
        progress=progress,
    )
    summary = {
        **result.summary(),
        "threat_model": threat_section(threat, [threat.eps]),
        "attack_params": _attack_info(built, minimize, target_spec),
        "model": {k: victim.meta.get(k) for k in ("path", "sha256", "arch", "dataset", "accuracy")},
        "dataset": _dataset_info(victim, data_dir),
    }
    return AttackOutcome(result=result, summary=summary, x=victim.data.x)


def save_adversarial(path: str | Path, outcome: AttackOutcome) -> Path:
    """Save the clean and adversarial inputs and every per-sample field as ``.npz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"x": outcome.x.numpy()}
    for key, value in outcome.result.numpy().items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
    np.savez_compressed(path, **arrays)
    return path


# ---------------------------------------------------------------------------------- evaluate
@dataclass(frozen=True)
class EvaluateOutcome:
    """An evaluation over budgets and the report written for it."""

    evaluation: Evaluation
    report: dict[str, Any]
    paths: ReportPaths
    store: Path


def evaluate_model(
    *,
    model: str | Path,
    out: str | Path,
    eps_list: Sequence[float],
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    attack: str = "fgsm",
    n: int | None = 1000,
    batch_size: int = 256,
    targeted: bool = False,
    target: str | None = None,
    minimize: bool = False,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    log: Log = _quiet,
) -> EvaluateOutcome:
    """Evaluate ``attack`` at each budget of ``eps_list``; write ``out/results.sqlite``,
    ``out/report.json`` and ``out/report.html``.

    The run is identified by the model file's content, the evaluated samples, the attack and
    its parameters: rerunning the same evaluation in the same folder resumes it, attacking
    only what is not stored yet (``log`` says how much was found).
    """
    if not eps_list:
        raise InputError("give at least one budget in eps_list (e.g. --eps 0.1,0.2,0.3)")
    victim = _load_target(model, dataset, data_dir, split, n, seed, device)
    target_spec = _goal(targeted, target)
    options = dict(params or {})

    def factory(eps: float) -> Attack:
        return make_attack(
            attack,
            minimize=minimize,
            seed=seed,
            eps=eps,
            targeted=True if target_spec is not None else None,
            **options,
        )

    largest = factory(max(eps_list))
    target_spec = _default_target(largest, target_spec)
    threat = _threat(largest, victim, max(eps_list))
    attack_info = _attack_info(largest, minimize, target_spec)
    data_info = _dataset_info(victim, data_dir)
    config = {
        "model_sha256": victim.meta["sha256"],
        "data_sha256": data_info["sha256"],
        "dataset": data_info["name"],
        "split": split,
        "n": len(victim.data),
        "seed": seed,
        "attack": attack_info,
    }
    key = run_key(config)
    store_path = Path(out) / "results.sqlite"
    with ResultStore(store_path) as store:
        store.register(key, config)
        found = sum(len(store.done(key, float(e))) for e in set(eps_list))
        if found:
            total = len(set(eps_list)) * len(victim.data)
            log(
                f"resuming run {key}: {found} of {total} (eps, sample) results are already in "
                f"{store_path}; attacking only the remaining {total - found}"
            )
        evaluation = evaluate(
            victim.classifier,
            factory,
            victim.data.x,
            victim.data.y,
            eps_list,
            batch_size=batch_size,
            store=store,
            run_key=key,
            target=target_spec,
            progress=progress,
        )
    model_info = {k: v for k, v in victim.meta.items() if k != "classes"}
    report = build_report(
        evaluation, threat=threat, model=model_info, dataset=data_info, attack=attack_info
    )
    paths = write_report(out, report, evaluation, victim.data.classes)
    return EvaluateOutcome(evaluation=evaluation, report=report, paths=paths, store=store_path)


# ---------------------------------------------------------------------------------- demo
def demo(
    *,
    out: str | Path = "runs/demo",
    dataset: str = "auto",
    data_dir: str | Path | None = None,
    n_train: int | None = DEMO_TRAIN,
    epochs: int = 1,
    n: int = 500,
    batch_size: int = 256,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    log: Log = _quiet,
) -> tuple[TrainOutcome, EvaluateOutcome]:
    """Train a LeNet on ``dataset``, then evaluate FGSM at :data:`DEMO_EPS` and report."""
    out = Path(out)
    trained = train(
        arch="lenet",
        dataset=dataset,
        data_dir=data_dir,
        epochs=epochs,
        lr=DEMO_LR,
        n_train=n_train,
        out=out / "lenet.pt",
        seed=seed,
        device=device,
        progress=progress,
    )
    log(
        f"trained a LeNet on {trained.meta['dataset']}: test accuracy {trained.meta['accuracy']:.1%}"
    )
    evaluated = evaluate_model(
        model=trained.path,
        out=out,
        data_dir=data_dir,
        eps_list=DEMO_EPS,
        attack="fgsm",
        n=n,
        batch_size=batch_size,
        seed=seed,
        device=device,
        progress=progress,
        log=log,
    )
    return trained, evaluated
