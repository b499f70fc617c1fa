"""Goodfellow et al. 2014's analyses of the linear view: transferability between models
(section 8), the epsilon sweep of logits (Figure 4) and first-layer weights as images
(Figure 3)."""

from .sweep import EpsilonSweep, epsilon_sweep, sign_gradient
from .transfer import TransferMatrix, check_compatible, transfer_matrix
from .weights import first_layer_filters

__all__ = [
    "EpsilonSweep",
    "TransferMatrix",
    "check_compatible",
    "epsilon_sweep",
    "first_layer_filters",
    "sign_gradient",
    "transfer_matrix",
]
