"""Evaluations over budgets that can stop and resume: per-sample store, runner, checks."""

from .probes import probe_checks
from .runner import (
    Evaluation,
    Examples,
    WorstCase,
    clopper_pearson,
    evaluate,
    run_attack,
    worst_case,
)
from .sanity import SanityCheck, sweep_checks
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
    "SanityCheck",
    "WorstCase",
    "attack_key",
    "clopper_pearson",
    "evaluate",
    "file_sha256",
    "probe_checks",
    "run_attack",
    "run_key",
    "sweep_checks",
    "worst_case",
]
