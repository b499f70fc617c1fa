"""Attacks: every one is called as ``attack(classifier, x, y, target=None)``."""

from .base import Attack, AttackRun
from .cw import CarliniWagnerL2
from .deepfool import DeepFool
from .fgsm import FGSM
from .iterative import BIM, PGD
from .lbfgs import LBFGS
from .mifgsm import MIFGSM
from .minimize import Minimize
from .result import AttackResult
from .worst_case import WorstCase

__all__ = [
    "BIM",
    "FGSM",
    "LBFGS",
    "MIFGSM",
    "PGD",
    "Attack",
    "AttackResult",
    "AttackRun",
    "CarliniWagnerL2",
    "DeepFool",
    "Minimize",
    "WorstCase",
]
