"""Attacks: every one is called as ``attack(model, x, y, target=None, *, eps, ids, criterion)``."""

from .apgd import APGD, APGDT
from .base import Attack, AttackRun, FixedBudgetAttack, MinimizationAttack
from .cw import CarliniWagnerL2
from .deepfool import DeepFool
from .fab import FAB, FABT
from .fgsm import FGSM
from .hopskipjump import HopSkipJump
from .iterative import BIM, PGD
from .jsma import JSMA
from .lbfgs import LBFGS
from .mifgsm import MIFGSM
from .minimize import Minimize
from .rays import RayS
from .result import AttackResult
from .simba import SimBA
from .square import Square
from .substitute import Substitute
from .worst_case import Smallest, WorstCase

__all__ = [
    "APGD",
    "APGDT",
    "BIM",
    "FAB",
    "FABT",
    "FGSM",
    "JSMA",
    "LBFGS",
    "MIFGSM",
    "PGD",
    "Attack",
    "AttackResult",
    "AttackRun",
    "CarliniWagnerL2",
    "DeepFool",
    "FixedBudgetAttack",
    "HopSkipJump",
    "MinimizationAttack",
    "Minimize",
    "RayS",
    "SimBA",
    "Smallest",
    "Square",
    "Substitute",
    "WorstCase",
]
