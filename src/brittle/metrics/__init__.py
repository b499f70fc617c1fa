"""Analyses of Papernot et al. 2016 (section 5 and 6): source/target matrices, hardness,
adversarial distance and robustness, and the adjacent-pixel detector; and of Goodfellow et
al. 2015: transferability between models (section 8), the epsilon sweep of logits (Figure 4)
and first-layer weights as images (Figure 3); and the gradient-masking check of a defended
model (Athalye et al. 2018)."""

from .detector import Roc, adjacent_pixel_score, detector_roc
from .masking import MaskingCheck, gradient_masking_check
from .saliency import adversarial_distance, robustness
from .source_target import (
    SourceTargetMatrices,
    SuccessCurve,
    hardness,
    source_target_matrices,
    success_at_budgets,
    success_curve,
)
from .sweep import EpsilonSweep, epsilon_sweep, sign_gradient
from .transfer import TransferMatrix, check_compatible, transfer_matrix
from .weights import first_layer_filters

__all__ = [
    "EpsilonSweep",
    "MaskingCheck",
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
    "gradient_masking_check",
    "hardness",
    "robustness",
    "sign_gradient",
    "source_target_matrices",
    "success_at_budgets",
    "success_curve",
    "transfer_matrix",
]
