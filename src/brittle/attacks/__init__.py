"""Attacks: every one is called as ``attack(classifier, x, y, target=None)``."""

from .base import Attack, AttackRun
from .fgsm import FGSM
from .result import AttackResult

__all__ = ["FGSM", "Attack", "AttackResult", "AttackRun"]
