"""How far from the limit: the bounds of Fawzi, Fawzi & Fawzi (NeurIPS 2018) on the
robustness any classifier can reach when the data come from a smooth generator, and the
measured robustness r_Z, r_in and r_unc of a classifier on the generator's samples.

- :func:`in_distribution_bound` (Theorem 1) and :func:`robustness_upper_bound` (its quantile),
  their corollary, the confidence-interval forms and Theorem 3's :func:`transfer_bound`
  (:mod:`.theorems`);
- :func:`latent_robustness`, :func:`in_distribution_robustness`,
  :func:`unconstrained_robustness` and :func:`estimate_all` (:mod:`.robustness`);
- :class:`ProjectedClassifier` and :func:`theorem2_check` (Theorem 2, :mod:`.projected`);
- :func:`theorem3_check` (Theorem 3 on samples, :mod:`.transferability`);
- :func:`analyse`: the bounds beside the measured robustness (:mod:`.analysis`).
"""

from .analysis import BoundAnalysis, analyse
from .projected import ProjectedClassifier, theorem2_check
from .robustness import (
    RobustnessEstimate,
    RobustnessEstimates,
    common_perturbation_share,
    estimate_all,
    in_distribution_robustness,
    latent_robustness,
    unconstrained_robustness,
)
from .theorems import (
    ClassProbabilities,
    class_probabilities,
    corollary_bound,
    corollary_robustness_upper_bound,
    in_distribution_bound,
    in_distribution_bound_interval,
    robustness_upper_bound,
    robustness_upper_bound_interval,
    transfer_bound,
)
from .transferability import theorem3_check

__all__ = [
    "BoundAnalysis",
    "ClassProbabilities",
    "ProjectedClassifier",
    "RobustnessEstimate",
    "RobustnessEstimates",
    "analyse",
    "class_probabilities",
    "common_perturbation_share",
    "corollary_bound",
    "corollary_robustness_upper_bound",
    "estimate_all",
    "in_distribution_bound",
    "in_distribution_bound_interval",
    "in_distribution_robustness",
    "latent_robustness",
    "robustness_upper_bound",
    "robustness_upper_bound_interval",
    "theorem2_check",
    "theorem3_check",
    "transfer_bound",
    "unconstrained_robustness",
]
