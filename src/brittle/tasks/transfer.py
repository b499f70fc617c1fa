"""``brittle transfer``: adversarial examples crafted on each of several models and classified
by every one of them (Goodfellow et al. 2015, section 8; :mod:`brittle.metrics.goodfellow2014.transfer`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from brittle.classifier import Classifier
from brittle.data import Limits, open_source
from brittle.errors import InputError
from brittle.eval.plan import settle
from brittle.eval.spec import AttackSpec, check_target
from brittle.eval.store import file_sha256
from brittle.eval.victim import draw_ids
from brittle.files import check_outputs
from brittle.metrics.goodfellow2014.transfer import (
    TransferMatrix,
    check_compatible,
    transfer_matrix,
)
from brittle.report.content import threat_section, write_json
from brittle.threat import Capability, ThreatModel
from brittle.validation import check_positive_integer
from brittle.zoo import load_checkpoint, load_classifier

from .attack import EVERY_TARGET
from .common import DEFAULT_BATCH_SIZE, Victim, resolve_device


@dataclass(frozen=True)
class TransferOutcome:
    """The transfer matrices, their JSON summary, and the file written (``None`` when not
    asked for)."""

    matrix: TransferMatrix
    summary: dict[str, Any]
    json: Path | None = None


def transfer(
    *,
    models: Sequence[str | Path],
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    attack: str = "fgsm",
    eps: float | None = None,
    n: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    targeted: bool = False,
    target: str | None = None,
    minimize: bool = False,
    params: dict[str, Any] | None = None,
    capability: Capability = Capability.WHITE_BOX,
    threat: ThreatModel | None = None,
    json_path: str | Path | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    limits: Limits | None = None,
) -> TransferOutcome:
    """Attack ``n`` samples of ``dataset`` on each checkpoint of ``models`` with ``attack``
    and classify the examples crafted on each with every model.

    Before any work: ``json_path`` is checked (:func:`~brittle.files.check_outputs`:
    writable, a regular file or absent, not a link, not a model or the data), every file of
    ``models`` must be a brittle checkpoint, and all must take the same input shape and
    number of classes.
    ``dataset=None`` uses the data set the models were trained on (they must agree then).
    ``n``, the attack, its parameters and the threat model are as for
    :func:`~brittle.tasks.attack`; the threat is built against the first model's box. The
    summary holds :meth:`TransferMatrix.as_json` (rows: the model the examples were crafted
    on; columns: the model that classifies them), the threat model, the attack's parameters,
    the models and the data; it is written atomically to ``json_path``.
    """
    if n is not None:
        check_positive_integer(n, "--n")
    check_outputs({"--json": json_path}, {"--models": models, "--data-dir": data_dir})
    if target == EVERY_TARGET:
        raise InputError(
            "--target all (each sample once per other class) is an option of `brittle "
            "attack`; transfer takes one target per sample: random, least_likely or next"
        )
    paths = [Path(m) for m in models]
    if len(paths) < 2:
        raise InputError(
            f"--models needs at least two checkpoints, comma-separated, got {len(paths)}"
        )
    names = model_names(paths)
    torch_device = resolve_device(device)
    loaded = [_load(path, torch_device) for path in paths]
    classifiers = [classifier for classifier, _ in loaded]
    check_compatible(classifiers, names)
    name = _dataset_name(dataset, names, [meta for _, meta in loaded])
    source = open_source(name, split, data_dir, limits=limits)
    ids = draw_ids(len(source), n, seed, f"the {split} split of {source.name}")
    targets = [Victim(c, meta, source, ids, seed) for c, meta in loaded]
    data = targets[0].data
    spec = AttackSpec(
        name=attack,
        params={k: v for k, v in (params or {}).items() if v is not None},
        minimize=minimize,
        target=check_target(target, targeted),
        seed=seed,
    )
    if eps is None and threat is not None:
        eps = threat.eps
    (spec,), threat = settle((spec,), threat, eps, capability, classifiers[0], targets[0].features)
    built = spec.build(eps)
    matrix = transfer_matrix(
        classifiers,
        built,
        data.x,
        data.y,
        names=names,
        target=spec.target,
        ids=data.ids,
        batch_size=batch_size,
        progress=progress,
    )
    summary = {
        **matrix.as_json(),
        "threat_model": threat_section(threat, [threat.eps]),
        "attack_params": spec.spec,
        "models": [{"name": m, **t.model_info()} for m, t in zip(names, targets, strict=True)],
        "dataset": targets[0].dataset_info(),
    }
    outcome = TransferOutcome(matrix=matrix, summary=summary)
    if json_path is not None:
        outcome = replace(outcome, json=write_json(json_path, summary))
    return outcome


def model_names(paths: Sequence[Path]) -> list[str]:
    """The models' names: the files' stems, with ``#i`` (the place in the list) after a stem
    that two files share (the summary's ``models`` gives each name's path)."""
    stems = [p.stem for p in paths]
    return [s if stems.count(s) == 1 else f"{s}#{i}" for i, s in enumerate(stems)]


def _load(path: Path, device: Any) -> tuple[Classifier, dict[str, Any]]:
    """The checkpoint at ``path`` as a classifier, and its metadata with ``path`` and
    ``sha256`` (a :class:`~brittle.errors.CheckpointError` if it is none)."""
    _, meta = load_checkpoint(path)
    info = {**meta, "path": str(path), "sha256": file_sha256(path)}
    return load_classifier(path, device), info


def _dataset_name(
    dataset: str | None, names: Sequence[str], metas: Sequence[dict[str, Any]]
) -> str:
    """``dataset``, or the one data set every model records it was trained on."""
    if dataset:
        return dataset
    recorded = [meta.get("dataset") for meta in metas]
    if None in recorded or len(set(recorded)) > 1:
        listed = ", ".join(
            f"{m}: {d or 'not recorded'}" for m, d in zip(names, recorded, strict=True)
        )
        raise InputError(
            f"the models do not record one common training data set ({listed}); give the "
            "data to attack with --dataset"
        )
    return str(recorded[0])
