"""``--certify``: the evaluation's certified radii beside its attacked ones (the sandwich).

The certificates of the run's samples are computed once and kept in the store's
``certificates`` table, so a resumed or repeated evaluation reuses them; the smallest
perturbation found per sample is read from every stored attack row of the run. The report
gains ``sandwich`` (the curves and per-sample values,
:func:`~brittle.certify.sandwich.sandwich_record`) and the sanity check that no certified
radius exceeds an attacked one (:func:`~brittle.certify.sandwich.sandwich_check`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from brittle.certify.result import Certificates
from brittle.certify.sandwich import (
    Sandwich,
    attacked_robustness,
    certified_robustness,
    sandwich_check,
    sandwich_record,
)
from brittle.errors import InputError
from brittle.eval.plan import Plan
from brittle.eval.runner import Evaluation
from brittle.eval.store import ResultStore
from brittle.model import Model
from brittle.threat import Norm

METHODS = ("auto", "ibp", "smoothing")
"""What ``--certify`` takes: ``auto`` picks smoothing for a smoothed classifier and
interval bound propagation for any other model."""

Certifier = Callable[[Tensor, Tensor, Tensor], Certificates]
"""``(x, y, ids) -> Certificates`` for one chunk of samples."""


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`; an :class:`InputError` otherwise."""
    if method not in METHODS:
        raise InputError(f"--certify takes {', '.join(METHODS)}, not {method!r}")
    return method


def certifier(model: Model, method: str, norm: Norm, batch_size: int) -> tuple[str, Certifier]:
    """The certifier of ``model`` by ``method`` in ``norm``, and the name its certificates
    are stored under. A smoothed classifier (one with its own ``certify``) is certified by
    smoothing, in L2 only; any other model by interval bound propagation."""
    check_method(method)
    smoothed = callable(getattr(model, "certify", None))
    if method == "ibp" and smoothed:
        raise InputError(
            "--certify ibp certifies a deterministic network, and this model is a smoothed "
            "classifier (it answers with noise): use --certify smoothing or auto"
        )
    if method == "smoothing" or (method == "auto" and smoothed):
        if not smoothed:
            raise InputError(
                "--certify smoothing certifies a smoothed classifier (brittle.certify."
                "smoothed_model.SmoothedClassifier); this model is a base model: use --certify ibp"
            )
        if norm != Norm.L2:
            raise InputError(
                f"randomised smoothing certifies L2 radii, and this evaluation is in {norm}; "
                "evaluate with --norm l2 to certify the smoothed classifier"
            )

        def smooth(x: Tensor, y: Tensor, ids: Tensor) -> Certificates:
            cert: Certificates = model.certify(x, ids=ids)  # type: ignore[attr-defined]
            return cert

        return "smoothing", smooth
    from brittle.certify.bound_propagation import certify
    from brittle.certify.layers import network_ops

    network_ops(model)  # refuse an unsupported model before any work

    def bound(x: Tensor, y: Tensor, ids: Tensor) -> Certificates:
        return certify(model, x, norm=norm, y=y, ids=ids, batch_size=batch_size)

    return "ibp", bound


def run_certificates(
    plan: Plan,
    store: ResultStore,
    method: str,
    log: Callable[[str], None],
) -> Certificates:
    """The certificates of the run's samples, those the store lacks computed and stored
    chunk by chunk."""
    victim, norm = plan.victim, plan.threat.norm
    batch = plan.spec.batch_size
    name, certify = certifier(victim.model, method, norm, batch)
    stored = store.certificates(plan.key, name, norm.value)
    todo = [i for i in victim.ids if i not in stored]
    if todo:
        log(f"certifying {len(todo)} samples by {name} in {norm.value}")
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        x, y = victim.source.fetch(chunk)
        ids = torch.tensor(chunk, dtype=torch.long)
        found = certify(x, y, ids)
        store.put_certificates(plan.key, name, norm.value, chunk, found.label, found.radius)
        stored.update(
            zip(chunk, zip(found.label.tolist(), found.radius.tolist(), strict=True), strict=True)
        )
    rows = [stored[i] for i in victim.ids]
    return Certificates(
        label=torch.tensor([r[0] for r in rows], dtype=torch.long),
        radius=torch.tensor([r[1] for r in rows], dtype=torch.float64),
        norm=norm,
        method=name,
        ids=torch.tensor(victim.ids, dtype=torch.long),
    )


def add_sandwich(
    report: dict[str, Any],
    plan: Plan,
    evaluation: Evaluation,
    store: ResultStore,
    method: str,
    log: Callable[[str], None],
) -> Sandwich:
    """Certify the run's samples and put the sandwich and its check into ``report`` (the
    check's failure first among the warnings, and said in the log)."""
    certificates = run_certificates(plan, store, method, log)
    norm = plan.threat.norm
    results = [
        store.result(plan.key, key, eps)
        for key in evaluation.keys.values()
        for eps in evaluation.eps
    ]
    ids, y = evaluation.ids.cpu(), evaluation.y.cpu()
    certified, agrees = certified_robustness(certificates, ids, y)
    attacked, correct = attacked_robustness(results, ids, norm)
    sandwich = Sandwich(ids, certified, agrees, attacked, correct, norm, certificates.method)
    check = sandwich_check(sandwich)
    report["sanity_checks"].append(check.as_json())
    if check.warned:
        report["warnings"].insert(0, check.message)
        log(check.message)
    fawzi = [
        {"eps": row["eps"], "share": row["robust_accuracy_bound"]}
        for row in report.get("bound", {}).get("rows", [])
    ]
    report["sandwich"] = sandwich_record(sandwich, max(evaluation.eps, default=0.0), fawzi)
    return sandwich
