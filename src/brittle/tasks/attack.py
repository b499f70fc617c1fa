"""``brittle attack``: one attack over samples of a data set, summarised, optionally saved."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brittle.attacks.result import AttackResult
from brittle.attacks.targets import all_other_targets
from brittle.checks.defended import defense_check
from brittle.criteria import TARGET_CHOICES
from brittle.data import Limits
from brittle.eot import use_eot_if_randomised
from brittle.errors import InputError
from brittle.eval.plan import failure_warnings, settle
from brittle.eval.runner import run_attack
from brittle.eval.spec import AttackSpec, check_target
from brittle.files import check_outputs, write_atomic
from brittle.metrics import source_target_matrices
from brittle.report.content import threat_section, write_json
from brittle.threat import Capability, ThreatModel

from .common import DEFAULT_BATCH_SIZE, ModelOptions, load_victim

EVERY_TARGET = "all"
"""The ``--target`` choice that attacks each sample once per other class."""
TARGETS = (*TARGET_CHOICES, EVERY_TARGET)
"""The target choices of the command line (``--target``)."""


@dataclass(frozen=True)
class AttackOutcome:
    """One attack over a data set: the per-sample result, its JSON summary, the clean
    inputs, and the files written (``None`` when not asked for)."""

    result: AttackResult
    summary: dict[str, Any]
    x: torch.Tensor
    json: Path | None = None
    saved: Path | None = None


def attack(
    *,
    model: str | Path,
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
    save_path: str | Path | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    model_options: ModelOptions | None = None,
    limits: Limits | None = None,
) -> AttackOutcome:
    """Attack ``n`` samples of ``dataset`` with ``attack`` against ``model`` (a file of any
    format :func:`~brittle.loading.loaders.load_model` reads; ``model_options`` its weights,
    preprocessing and class names).

    ``n=None``: 1,000 samples, or the whole split when it holds fewer; more than the split
    holds is refused. ``dataset=None``: the data set the model was trained on.
    ``params`` are the attack's declared parameters (``None`` values: the attack's defaults).
    ``target="all"`` attacks each sample once per other class (:func:`every_other_class`)
    and adds the source x target matrices to the summary.
    The attack is checked against ``threat``, or against the threat built from ``targeted``,
    ``target``, ``capability``, the norm and ``eps`` (:func:`~brittle.eval.plan.settle`),
    before any sample is attacked. The summary holds :meth:`AttackResult.summary` plus the
    threat model, the attack's parameters, where the model and data came from and
    ``warnings``: a minimal attack without a budget that binds (none, or at least the box's
    diameter) that leaves correctly classified samples unbroken is too weak as set
    (:func:`~brittle.checks.sweep.unbounded_failure_warnings`); a defended model (checkpoint
    metadata ``defense``) also gets the warnings of its gradient-masking check
    (:func:`~brittle.checks.defended.defense_check`), whose numbers are under ``gradient_masking``. The summary is
    written to ``json_path`` and the inputs and results to ``save_path`` (``.npz``), both
    checked before any work (:func:`~brittle.files.check_outputs`: writable, regular files
    or absent, not links, not the same file, neither the model nor the data) and written
    atomically.
    """
    check_outputs(
        {"--json": json_path, "--save": save_path}, {"--model": model, "--data-dir": data_dir}
    )
    every = target == EVERY_TARGET
    stated = {k: v for k, v in (params or {}).items() if v is not None}
    spec = AttackSpec(
        name=attack,
        params=stated,
        minimize=minimize,
        target=check_target(None if every else target, targeted or every),
        seed=seed,
    )
    victim = load_victim(model, dataset, data_dir, split, n, seed, device, model_options, limits)
    if eps is None and threat is not None:
        eps = threat.eps
    (spec,), threat = settle((spec,), threat, eps, capability, victim.model, victim.features)
    built = spec.build(eps)
    x, y, ids, aims = victim.data.x, victim.data.y, victim.data.ids, spec.target
    eot = use_eot_if_randomised(victim.classifier, x[:batch_size])  # a randomised model
    if eot is not None:
        victim.meta["eot"] = eot.describe()
    if every:
        x, y, aims, ids = every_other_class(x, y, ids, victim.classifier.num_classes)
    result = run_attack(
        victim.classifier,
        built,
        x,
        y,
        batch_size=batch_size,
        target=aims,
        ids=ids,
        progress=progress,
    )
    stats = result.summary()
    described = {**spec.spec}
    if every:
        described["target"] = EVERY_TARGET
        stats["source_target"] = source_target_section(result, victim.classifier.num_classes)
    summary = {
        **stats,
        "warnings": failure_warnings(
            spec, built, victim.model, victim.features, stats["success_rate"]
        ),
        "threat_model": threat_section(threat, [threat.eps]),
        "attack_params": described,
        "model": victim.model_info(),
        "dataset": victim.dataset_info(),
    }
    check = defense_check(victim, built, batch_size, seed)
    if check is not None:
        summary["warnings"].extend(check.warnings)
        summary["gradient_masking"] = check.as_json()
        summary["model"]["defense"] = victim.meta["defense"]
    outcome = AttackOutcome(result=result, summary=summary, x=x)
    if json_path is not None:
        outcome = replace(outcome, json=write_json(json_path, summary))
    if save_path is not None:
        outcome = replace(outcome, saved=save_adversarial(save_path, outcome))
    return outcome


def every_other_class(
    x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, num_classes: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each sample once per other class (``--target all``): inputs, labels, targets and ids,
    sample ``i``'s ``j``-th other class in row ``i * (K - 1) + j``, with id
    ``ids[i] * (K - 1) + j`` (distinct, so per-sample random draws stay per row)."""
    if num_classes is None or num_classes < 2:
        raise InputError("--target all needs a model with at least two known classes")
    x_all, y_all, t_all = all_other_targets(x, y, num_classes)
    j = torch.arange(num_classes - 1, device=ids.device).repeat(len(ids))
    return x_all, y_all, t_all, ids.repeat_interleave(num_classes - 1) * (num_classes - 1) + j


def source_target_section(result: AttackResult, num_classes: int | None) -> dict[str, Any]:
    """Papernot 2016's source x target matrices of success rate and mean distortion (L0
    share, over successes) of a ``--target all`` run; ``None`` where undefined."""
    assert result.target is not None and num_classes is not None
    matrices = source_target_matrices(
        result.y, result.target, result.success, result.l0, num_classes
    )
    return {
        "success_rate": matrices.success_rate.tolist(),
        "mean_l0": matrices.mean_distortion.tolist(),
    }


def save_adversarial(path: str | Path, outcome: AttackOutcome) -> Path:
    """Save the clean and adversarial inputs and every per-sample field as ``.npz``.

    The file is written atomically (:func:`brittle.files.write_atomic`): on failure the
    previous file is kept and a :class:`~brittle.errors.StorageError` says why. It is
    written at ``path`` exactly (no ``.npz`` is appended).
    """
    arrays: dict[str, Any] = {"x": outcome.x.numpy()}
    for key, value in outcome.result.numpy().items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
    return write_atomic(path, lambda file: np.savez_compressed(file, **arrays))
