"""Evaluations over budgets that can stop and resume: per-sample store, runner, checks."""

from .runner import (
    AttackPlan,
    Evaluation,
    Examples,
    WorstCase,
    clopper_pearson,
    evaluate,
    run_attack,
    worst_case,
)
from .sanity import sanity_warnings
from .store import SCHEMA_VERSION, ResultStore, attack_key, file_sha256, run_key

__all__ = [
    "SCHEMA_VERSION",
    "AttackPlan",
    "Evaluation",
    "Examples",
    "ResultStore",
    "WorstCase",
    "attack_key",
    "clopper_pearson",
    "evaluate",
    "file_sha256",
    "run_attack",
    "run_key",
    "sanity_warnings",
    "worst_case",
]
