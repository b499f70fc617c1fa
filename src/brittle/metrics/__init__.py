"""The papers' analyses of attack results, one subpackage per paper:
:mod:`~brittle.metrics.papernot2016` (source/target matrices, hardness, adversarial distance,
the adjacent-pixel detector) and :mod:`~brittle.metrics.goodfellow2014` (transferability, the
epsilon sweep, first-layer weights). Athalye et al.'s gradient-masking check is a check, in
:mod:`brittle.checks.masking`."""

from .goodfellow2014 import (
    EpsilonSweep,
    TransferMatrix,
    check_compatible,
    epsilon_sweep,
    first_layer_filters,
    sign_gradient,
    transfer_matrix,
)
from .papernot2016 import (
    Roc,
    SourceTargetMatrices,
    SuccessCurve,
    adjacent_pixel_score,
    adversarial_distance,
    detector_roc,
    hardness,
    robustness,
    source_target_matrices,
    success_at_budgets,
    success_curve,
)

__all__ = [
    "EpsilonSweep",
    "Roc",
    "SourceTargetMatrices",
    "SuccessCurve",
    "TransferMatrix",
    "adjacent_pixel_score",
    "adversarial_distance",
    "check_compatible",
    "detector_roc",
    "epsilon_sweep",
    "first_layer_filters",
    "hardness",
    "robustness",
    "sign_gradient",
    "source_target_matrices",
    "success_at_budgets",
    "success_curve",
    "transfer_matrix",
]
