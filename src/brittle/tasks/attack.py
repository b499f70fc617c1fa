"""``brittle attack``: one attack over samples of a data set, summarised, optionally saved."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brittle.attacks.base import Attack
from brittle.attacks.result import AttackResult
from brittle.attacks.targets import all_other_targets
from brittle.errors import InputError
from brittle.eval.runner import run_attack
from brittle.files import check_outputs, write_atomic
from brittle.metrics import source_target_matrices
from brittle.metrics.masking import NORMS, MaskingCheck, gradient_masking_check
from brittle.perturbation import box_diameter
from brittle.report.content import threat_section, write_json
from brittle.threat import Capability, Norm, ThreatModel

from .adversary import EVERY_TARGET, prepare
from .common import Target, check_count, load_target

MASKING_SAMPLES = 500
"""The gradient-masking check of a defended model runs on the first this many samples."""
MASKING_FALLBACK_EPS = 0.1
"""The check's Linf budget, as a share of the box's width, when the attack's budget cannot
serve: an L0 budget (FGSM and PGD take no L0 step), or none that binds (an unbounded minimal
attack)."""


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
    batch_size: int = 256,
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
) -> AttackOutcome:
    """Attack ``n`` samples of ``dataset`` with ``attack`` against the checkpoint ``model``.

    ``n=None``: 1,000 samples, or the whole split when it holds fewer; more than the split
    holds is refused. ``dataset=None``: the data set the model was trained on.
    ``params`` are the attack's declared parameters (``None`` values: the attack's defaults).
    ``target="all"`` attacks each sample once per other class (:func:`every_other_class`)
    and adds the source x target matrices to the summary.
    The attack is checked against ``threat``, or against the threat built from ``targeted``,
    ``target``, ``capability``, the norm and ``eps`` (:mod:`brittle.tasks.adversary`),
    before any sample is attacked. The summary holds :meth:`AttackResult.summary` plus the
    threat model, the attack's parameters, where the model and data came from and
    ``warnings``: a minimal attack without a budget that binds (none, or at least the box's
    diameter) that leaves correctly classified samples unbroken is too weak as set
    (:func:`~brittle.eval.sanity.unbounded_failure_warnings`); a defended model (checkpoint
    metadata ``defense``) also gets the warnings of its gradient-masking check
    (:func:`defense_check`), whose numbers are under ``gradient_masking``. The summary is
    written to ``json_path`` and the inputs and results to ``save_path`` (``.npz``), both
    checked before any work (:func:`~brittle.files.check_outputs`: writable, regular files
    or absent, not links, not the same file, neither the model nor the data) and written
    atomically.
    """
    check_count(n, "--n")
    check_outputs(
        {"--json": json_path, "--save": save_path}, {"--model": model, "--data-dir": data_dir}
    )
    victim = load_target(model, dataset, data_dir, split, n, seed, device)
    every = target == EVERY_TARGET
    adversary, built = prepare(
        attack,
        victim,
        eps=eps,
        params=params,
        minimize=minimize,
        targeted=targeted or every,
        target=None if every else target,
        capability=capability,
        threat=threat,
        seed=seed,
    )
    x, y, ids, aims = victim.data.x, victim.data.y, victim.data.ids, adversary.target
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
    described = adversary.describe(built)
    if every:
        described["target"] = EVERY_TARGET
        stats["source_target"] = source_target_section(result, victim.classifier.num_classes)
    summary = {
        **stats,
        "warnings": adversary.failure_warnings(built, victim, stats["success_rate"]),
        "threat_model": threat_section(adversary.threat, [adversary.threat.eps]),
        "attack_params": described,
        "model": victim.model_info(),
        "dataset": victim.dataset_info(data_dir),
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


def defense_check(
    victim: Target, attack: Attack, batch_size: int, seed: int
) -> MaskingCheck | None:
    """The gradient-masking check of a defended model; ``None`` for an undefended one.

    A model is defended when its checkpoint metadata name a ``defense``. The check
    (:func:`~brittle.metrics.masking.gradient_masking_check`) runs on the first
    :data:`MASKING_SAMPLES` of ``victim``'s samples, in ``attack``'s norm and at its budget
    (:func:`masking_budget`).
    """
    if not victim.meta.get("defense"):
        return None
    norm, eps = masking_budget(victim, attack.norm, attack.eps)
    k = min(len(victim.data), MASKING_SAMPLES)
    data = victim.data
    return gradient_masking_check(
        victim.classifier,
        data.x[:k],
        data.y[:k],
        eps,
        norm=norm,
        seed=seed,
        batch_size=batch_size,
        ids=data.ids[:k],
    )


def masking_budget(victim: Target, norm: Norm, eps: float | None) -> tuple[Norm, float]:
    """The norm and budget of the gradient-masking check for an attack in ``norm`` at ``eps``:
    the same when the check works in that norm and the budget binds (below the box's
    diameter), else Linf at :data:`MASKING_FALLBACK_EPS` of the box's width."""
    low, high = victim.classifier.envelope()
    diameter = box_diameter(norm, (low, high), victim.features)
    if norm in NORMS and eps is not None and eps < diameter:
        return norm, eps
    return Norm.LINF, MASKING_FALLBACK_EPS * (high - low)


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
