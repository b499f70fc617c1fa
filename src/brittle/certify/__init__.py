"""Certified lower bounds on a classifier's robustness: radii within which no perturbation can
change the prediction, from randomised smoothing (for the smoothed classifier) and from bound
propagation (for the base model)."""

from .result import Certificates, certified_accuracy
from .smoothed_model import SmoothedClassifier
from .smoothing import Smoothed

__all__ = ["Certificates", "Smoothed", "SmoothedClassifier", "certified_accuracy"]
