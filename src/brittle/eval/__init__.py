"""Evaluations over budgets that can stop and resume: per-sample store and runner. The
checks run on an evaluation are in :mod:`brittle.checks`."""

from .runner import (
    Evaluation,
    Examples,
    WorstCaseRecord,
    clopper_pearson,
    evaluate,
    run_attack,
    worst_case,
)
from .spec import AttackSpec, DataRef, EvaluationSpec, ModelRef
from .store import SCHEMA_VERSION, ResultStore, attack_key, file_sha256, run_key

__all__ = [
    "SCHEMA_VERSION",
    "AttackSpec",
    "DataRef",
    "Evaluation",
    "EvaluationSpec",
    "Examples",
    "ModelRef",
    "ResultStore",
    "WorstCaseRecord",
    "attack_key",
    "clopper_pearson",
    "evaluate",
    "file_sha256",
    "run_attack",
    "run_key",
    "worst_case",
]
