"""``brittle attack``: one attack over samples of a data set, summarised, optionally saved."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brittle.attacks.result import AttackResult
from brittle.eval.runner import run_attack
from brittle.files import check_writable, write_atomic
from brittle.report.content import threat_section, write_json
from brittle.threat import Capability, ThreatModel

from .adversary import prepare
from .common import check_count, load_target


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
    The attack is checked against ``threat``, or against the threat built from ``targeted``,
    ``target``, ``capability``, the norm and ``eps`` (:mod:`brittle.tasks.adversary`),
    before any sample is attacked. The summary holds :meth:`AttackResult.summary` plus the
    threat model, the attack's parameters, where the model and data came from and
    ``warnings``: a minimal attack without a budget that binds (none, or at least the box's
    diameter) that leaves correctly classified samples unbroken is too weak as set
    (:func:`~brittle.eval.sanity.unbounded_failure_warnings`). The summary is
    written to ``json_path`` and the inputs and results to ``save_path`` (``.npz``), both
    checked to be writable before any work and written atomically.
    """
    check_count(n, "--n")
    for path, option in ((json_path, "--json"), (save_path, "--save")):
        if path is not None:
            check_writable(path, option=option)
    victim = load_target(model, dataset, data_dir, split, n, seed, device)
    adversary, built = prepare(
        attack,
        victim,
        eps=eps,
        params=params,
        minimize=minimize,
        targeted=targeted,
        target=target,
        capability=capability,
        threat=threat,
        seed=seed,
    )
    result = run_attack(
        victim.classifier,
        built,
        victim.data.x,
        victim.data.y,
        batch_size=batch_size,
        target=adversary.target,
        ids=victim.data.ids,
        progress=progress,
    )
    stats = result.summary()
    summary = {
        **stats,
        "warnings": adversary.failure_warnings(built, victim, stats["success_rate"]),
        "threat_model": threat_section(adversary.threat, [adversary.threat.eps]),
        "attack_params": adversary.describe(built),
        "model": victim.model_info(),
        "dataset": victim.dataset_info(data_dir),
    }
    outcome = AttackOutcome(result=result, summary=summary, x=victim.data.x)
    if json_path is not None:
        outcome = replace(outcome, json=write_json(json_path, summary))
    if save_path is not None:
        outcome = replace(outcome, saved=save_adversarial(save_path, outcome))
    return outcome


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
