"""Evaluations over budgets that can stop and resume: per-sample store, runner, checks."""

from .runner import Evaluation, Examples, evaluate, run_attack
from .sanity import sanity_warnings
from .store import ResultStore, file_sha256, run_key

__all__ = [
    "Evaluation",
    "Examples",
    "ResultStore",
    "evaluate",
    "file_sha256",
    "run_attack",
    "run_key",
    "sanity_warnings",
]
