"""The content of an evaluation report, as plain JSON-ready data (``report.json``).

Everything a reader needs to trust the numbers is here: the threat model, the model's
provenance, the data, the attack and its parameters, the per-budget table, timing, the
sanity checks that failed and, for a defended model, its gradient-masking check. The HTML
page shows the same dict.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brittle.checks.masking import MaskingCheck
from brittle.checks.outcome import SanityCheck
from brittle.checks.sweep import sweep_checks
from brittle.errors import InputError
from brittle.eval.runner import CONFIDENCE, Evaluation
from brittle.files import write_text_atomic
from brittle.threat import ThreatModel
from brittle.validation import is_real
from brittle.version import __version__

COLUMNS = (
    "eps",
    "clean_accuracy",
    "success_rate",
    "robust_accuracy",
    "mean_confidence_misclassified",
    "mean_l0",
    "mean_l2",
    "mean_linf",
    "median_l2",
    "median_linf",
    "gradient_evaluations",
    "nonfinite_outputs",
    "n",
    "seconds",
    "robust_count",
    "robust_ci_low",
    "robust_ci_high",
)
"""The per-budget columns of the report's table, in order (the last three: the number of
robust samples and the Clopper-Pearson interval of robust accuracy, at ``confidence``)."""
WORST_CASE_COLUMNS = ("broken_by", "broken_alone", "robust_after")
"""The per-budget columns of the worst case over several attacks: how many samples each
attack broke first (in the evaluation's order), and alone, and robust accuracy (with its
interval) after each attack and those before it."""


def threat_section(
    threat: ThreatModel, eps: list[float], eps_text: Sequence[str] | None = None
) -> dict[str, Any]:
    """The threat model as a description and its fields; ``eps`` is the largest budget,
    ``eps_list`` the budgets evaluated and ``eps_text`` (when given) each as the user wrote it
    (``8/255``)."""
    section: dict[str, Any] = {
        "description": threat.describe(),
        "goal": threat.goal.value,
        "capability": threat.capability.name,
        "norm": threat.norm.value,
        "eps": threat.eps,
        "eps_list": eps,
        "bounds": list(threat.bounds),
        "in_distribution": threat.in_distribution,
    }
    if eps_text is not None:
        texts = [str(t).strip() for t in eps_text]
        if len(texts) != len(eps) or not all(texts):
            raise InputError(
                f"eps_text must give one text for each of the {len(eps)} budgets, got "
                f"{list(eps_text)}"
            )
        section["eps_text"] = texts
    return section


def short_number(value: float) -> str:
    """A number in at most 4 significant digits, as ``:g`` writes it (``0.0313725`` as
    ``0.03137``, ``0.1`` as ``0.1``)."""
    return f"{value:.4g}"


def eps_labels(report: Mapping[str, Any]) -> dict[float, str]:
    """Each budget of ``report`` (``threat_model.eps_list``) and the text to show for it:
    its ``eps_text`` when the report has one, else :func:`short_number`."""
    threat = report.get("threat_model", {})
    budgets = [float(e) for e in threat.get("eps_list", [])]
    texts = threat.get("eps_text") or [short_number(e) for e in budgets]
    return dict(zip(budgets, texts, strict=True))


def eps_label(labels: Mapping[float, str], value: Any) -> str:
    """The text of the budget ``value``: its label in ``labels`` (:func:`eps_labels`; the
    nearest within a relative 1e-6, as JSON may round), else :func:`short_number`; ``n/a``
    for what is not a finite number."""
    if not is_real(value) or not math.isfinite(value):
        return "n/a"
    for budget, text in labels.items():
        if math.isclose(budget, value, rel_tol=1e-6, abs_tol=1e-12):
            return text
    return short_number(float(value))


def build_report(
    evaluation: Evaluation,
    *,
    threat: ThreatModel,
    model: dict[str, Any],
    dataset: dict[str, Any],
    attack: dict[str, Any],
    masking: MaskingCheck | None = None,
    attacks: list[dict[str, Any]] | None = None,
    run: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
    checks: Sequence[SanityCheck] | None = None,
    classes: Sequence[str] | None = None,
    device: str | None = None,
    eps_text: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The report of ``evaluation`` under ``threat``.

    ``model``, ``dataset`` and ``attack`` describe what was evaluated (checkpoint metadata,
    data set name/split/size/seed, :func:`~brittle.attacks.registry.describe_attack`; with
    several attacks, the worst case of them). ``results`` has one row per budget (the
    worst case over the attacks when there are several, with ``broken_by`` and
    ``broken_alone``), ``per_attack`` each attack's own rows, and every row the
    Clopper-Pearson interval of robust accuracy at ``confidence``. ``attacks`` lists each
    attack's label, store key and spec; ``run`` is the run's identity and ``store`` where the
    per-sample results are. ``masking``, the gradient-masking check of a defended model,
    adds ``gradient_masking`` (its numbers) and its warnings after the sanity checks';
    without it there is no such key.

    ``sanity_checks`` are ``checks`` (default: those of the sweep,
    :func:`~brittle.checks.sweep.sweep_checks`), each passed, a warning or not run;
    ``warnings`` holds the messages of those that warned, then any other warning.
    ``confusion`` counts, at the largest budget, each (label, prediction on the adversarial
    input) pair of the worst case, over ``classes`` (default: as many as the labels show);
    ``environment`` is the versions and the ``device`` the numbers were computed with.
    ``eps_text`` gives each budget of ``evaluation.eps`` as the user wrote it (``8/255``):
    kept as ``threat_model.eps_text``, the page and the figures show budgets so (else to 4
    significant digits, :func:`short_number`).
    """
    several = len(evaluation.attacks) > 1
    columns = (*COLUMNS, *WORST_CASE_COLUMNS) if several else COLUMNS
    rows = [
        {key: s.get(key, e) for key in columns}
        for e, s in zip(evaluation.eps, evaluation.summaries, strict=True)
    ]
    per_attack = {
        label: [
            {key: s.get(key, e) for key in COLUMNS}
            for e, s in zip(evaluation.eps, summaries, strict=True)
        ]
        for label, summaries in evaluation.per_attack.items()
    }
    report: dict[str, Any] = {
        "brittle_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "run_key": evaluation.run_key,
        "threat_model": threat_section(threat, evaluation.eps, eps_text),
        "model": model,
        "dataset": dataset,
        "attack": attack,
        "attacks": attacks or [],
        "confidence": {"level": CONFIDENCE, "method": "Clopper-Pearson (exact binomial)"},
        "results": rows,
        "per_attack": per_attack,
        "timing": {
            "attack_seconds": sum(float(s["seconds"]) for s in evaluation.summaries),
            "session_seconds": evaluation.seconds,
            "samples_reused": evaluation.reused,
            "samples_attacked": evaluation.attacked,
        },
        "run": run or {},
        "store": store or {},
        "environment": environment(device),
    }
    if checks is None:
        checks = sweep_checks(evaluation.eps, evaluation.summaries)
    report["sanity_checks"] = [c.as_json() for c in checks]
    report["warnings"] = [c.message for c in checks if c.warned]
    if evaluation.pred_adv:
        report["confusion"] = confusion(
            evaluation.eps[-1], evaluation.y, evaluation.pred_adv[-1], classes
        )
    if masking is not None:
        report["gradient_masking"] = masking.as_json()
        report["warnings"].extend(masking.warnings)
    return report


def confusion(
    eps: float, y: torch.Tensor, pred: torch.Tensor, classes: Sequence[str] | None
) -> dict[str, Any]:
    """The counts of (label, adversarial prediction) at budget ``eps``: ``matrix[i][j]``
    samples of label ``i`` predicted ``j``."""
    k = len(classes) if classes else int(max(int(y.max()), int(pred.max())) + 1)
    counts = torch.bincount(y.long() * k + pred.long(), minlength=k * k).view(k, k)
    names = list(classes) if classes else [str(i) for i in range(k)]
    return {"eps": eps, "classes": names, "matrix": counts.tolist()}


def environment(device: str | None = None) -> dict[str, Any]:
    """The versions and the machine a report's numbers come from."""
    return {
        "brittle": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": device or "cpu",
        "threads": torch.get_num_threads(),
    }


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON, NaN as ``null``; parent folders are created.

    The file is written atomically (:func:`~brittle.files.write_text_atomic`): if writing
    fails, a :class:`~brittle.errors.StorageError` is raised and a previous file is kept.
    """
    return write_text_atomic(path, json.dumps(finite(data), indent=2, allow_nan=False) + "\n")
