"""The robustness estimators of Fawzi, Fawzi & Fawzi (NeurIPS 2018), per sample and batched.

For a classifier f on images and a generator g: R^d -> images, at x = g(z):

- latent robustness,          r_Z(z)   = min ||r||_2               s.t. f(g(z + r)) != f(g(z));
- in-distribution robustness, r_in(z)  = min ||g(z + r) - g(z)||_2 s.t. f(g(z + r)) != f(g(z));
- unconstrained robustness,   r_unc(x) = min ||r||_2               s.t. f(x + r) != f(x).

The label to move away from is always f's own prediction at the clean point, never a ground
truth. Every estimate is the size of a change the model was seen to make: each search offers
candidate adversarial points, each candidate is refined by bisection along the segment from
the clean point to it (:func:`refine_segment`), and a candidate counts only once a batched
pass of the model at it confirms the change of label (the attack base's rule, applied to the
refined points too). So every value is an upper bound on the true minimum, and a sample that
no search flips is ``inf`` (and counted: :attr:`RobustnessEstimate.success_rate`).

Theorem 3 (transferability) is measured by :func:`common_perturbation_share`.

The work is split by job: the checks of the inputs (:mod:`.inputs`), f o g as a classifier
(:mod:`.latent`), bisection along segments and rays (:mod:`.bisection`), the candidates of a
search (:mod:`.candidates`), the record (:mod:`.estimate`), one module per estimator
(:mod:`.estimate_latent`, :mod:`.estimate_in_distribution`, :mod:`.estimate_unconstrained`)
and Theorem 3's joint attack (:mod:`.joint_attack`). This module runs all three on the same
samples (:func:`estimate_all`) and keeps every name importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from brittle.attacks.base import Attack
from brittle.classifier import Classifier

from .bisection import MAX_BISECTIONS, TOLERANCE, bisect_path, ray_search, refine_segment
from .candidates import BATCH_SIZE, Closest, Rays
from .estimate import Quantity, RobustnessEstimate, json_float
from .estimate_in_distribution import PenaltySearch, in_distribution_robustness
from .estimate_latent import LATENT_RADIUS, default_latent_attacks, latent_robustness
from .estimate_unconstrained import default_unconstrained_attacks, unconstrained_robustness
from .inputs import check_generator, check_latents, check_pair
from .joint_attack import common_perturbation_share
from .latent import LatentClassifier, LatentModule, sample_latents

__all__ = [
    "BATCH_SIZE",
    "LATENT_RADIUS",
    "MAX_BISECTIONS",
    "TOLERANCE",
    "Closest",
    "LatentClassifier",
    "LatentModule",
    "PenaltySearch",
    "Quantity",
    "Rays",
    "RobustnessEstimate",
    "RobustnessEstimates",
    "bisect_path",
    "check_generator",
    "check_latents",
    "check_pair",
    "common_perturbation_share",
    "default_latent_attacks",
    "default_unconstrained_attacks",
    "estimate_all",
    "in_distribution_robustness",
    "json_float",
    "latent_robustness",
    "ray_search",
    "refine_segment",
    "sample_latents",
    "unconstrained_robustness",
]


@dataclass(frozen=True, eq=False)
class RobustnessEstimates:
    """r_Z, r_in and r_unc on the same generated samples x = g(z)."""

    z: Tensor
    latent: RobustnessEstimate
    in_distribution: RobustnessEstimate
    unconstrained: RobustnessEstimate

    def as_json(self) -> dict[str, Any]:
        """The three summaries and the share of samples where r_unc <= r_in."""
        order = self.unconstrained.values.cpu() <= self.in_distribution.values.cpu()
        return {
            "n": len(self.z),
            "r_Z": self.latent.as_json(),
            "r_in": self.in_distribution.as_json(),
            "r_unc": self.unconstrained.as_json(),
            "share_r_unc_at_most_r_in": float(order.float().mean()),
        }


def estimate_all(
    classifier: Classifier,
    generator: nn.Module,
    n: int,
    seed: int = 0,
    *,
    latent_attacks: Sequence[Attack] | None = None,
    unconstrained_attacks: Sequence[Attack] | None = None,
    search: PenaltySearch | None = None,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
    batch_size: int = BATCH_SIZE,
) -> RobustnessEstimates:
    """r_Z, r_in and r_unc of ``classifier`` at ``n`` samples x = g(z), z ~ N(0, I) drawn
    with ``seed`` (:func:`sample_latents`).

    r_in reuses r_Z's solutions; r_unc also considers the images of r_in's solutions as
    candidates (a latent move is an image move), so r_unc <= r_in per sample.
    """
    d, _ = check_pair(classifier, generator)
    z = sample_latents(n, d, seed)
    options: dict[str, Any] = {
        "tolerance": tolerance,
        "max_steps": max_steps,
        "batch_size": batch_size,
    }
    latent = latent_robustness(classifier, generator, z, attacks=latent_attacks, **options)
    ind = in_distribution_robustness(
        classifier, generator, z, latent=latent, search=search, **options
    )
    model = LatentClassifier(classifier, generator)
    unc = unconstrained_robustness(
        classifier,
        model.images(z),
        attacks=unconstrained_attacks,
        candidates=model.images(ind.adversarial),
        **options,
    )
    return RobustnessEstimates(z, latent, ind, unc)
