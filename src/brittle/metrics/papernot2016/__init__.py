"""Papernot et al. 2016's analyses of a saliency-map attack (sections 5 and 6): the
source/target matrices of success and distortion, hardness, adversarial distance and
robustness, and the adjacent-pixel detector."""

from .detector import Roc, adjacent_pixel_score, detector_roc
from .saliency import adversarial_distance, robustness
from .source_target import (
    SourceTargetMatrices,
    SuccessCurve,
    hardness,
    source_target_matrices,
    success_at_budgets,
    success_curve,
)

__all__ = [
    "Roc",
    "SourceTargetMatrices",
    "SuccessCurve",
    "adjacent_pixel_score",
    "adversarial_distance",
    "detector_roc",
    "hardness",
    "robustness",
    "source_target_matrices",
    "success_at_budgets",
    "success_curve",
]
