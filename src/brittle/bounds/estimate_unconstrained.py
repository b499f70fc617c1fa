"""r_unc(x) = min ||r||_2 s.t. f(x + r) != f(x): the unconstrained robustness of Fawzi, Fawzi
& Fawzi (NeurIPS 2018), per sample, by the gradient suite's minimal attacks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from brittle.attacks import CarliniWagnerL2, DeepFool
from brittle.attacks.base import Attack
from brittle.classifier import Classifier
from brittle.errors import InputError

from .bisection import MAX_BISECTIONS, TOLERANCE
from .candidates import BATCH_SIZE, by_chunks, closest_change
from .estimate import RobustnessEstimate, attack_names, describe_attacks
from .inputs import check_attacks, check_refinement


def default_unconstrained_attacks(classifier: Classifier) -> tuple[Attack, ...]:
    """DeepFool (L2) and Carlini & Wagner L2 (defaults); DeepFool alone in an unbounded box,
    which C&W's change of variables cannot take."""
    if classifier.bounded:
        return DeepFool(norm="l2"), CarliniWagnerL2()
    return (DeepFool(norm="l2"),)


def unconstrained_robustness(
    classifier: Classifier,
    x: Tensor,
    *,
    attacks: Sequence[Attack] | None = None,
    candidates: Tensor | None = None,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
    batch_size: int = BATCH_SIZE,
) -> RobustnessEstimate:
    """r_unc(x) = min ||r||_2 s.t. f(x + r) != f(x), per sample: the gradient suite's minimal
    attacks, best per sample.

    Each of ``attacks`` (default :func:`default_unconstrained_attacks`: DeepFool and C&W L2)
    runs on every sample through the attack base with y = f(x); each success is refined by
    bisection along the segment from x (inside the box, which is convex). ``candidates``:
    further inputs to consider, one per sample (e.g. the images g(z + r) of an in-distribution
    search: a latent move is an image move, so r_unc <= r_in holds per sample as it does for
    the true values); they count only where the model's label differs there. Per sample the
    smallest verified L2 change. Normalised by the mean ||x|| over the samples given.
    """
    if not isinstance(classifier, Classifier):
        raise InputError(
            f"the classifier must be a brittle.Classifier, got {type(classifier).__name__}"
        )
    x = classifier.check_inputs(x)
    if not len(x):
        raise InputError("x holds no samples")
    if candidates is not None:
        candidates = classifier.check_inputs(candidates, "candidates")
        if candidates.shape != x.shape:
            raise InputError(f"candidates must have the shape of x, {tuple(x.shape)}")
    chosen = default_unconstrained_attacks(classifier) if attacks is None else attacks
    attacks = check_attacks(chosen, classifier.bounded, "the classifier's box")
    check_refinement(tolerance, max_steps, batch_size)
    ids = torch.arange(len(x), device=x.device)

    def work(rows: slice) -> tuple[Tensor, Tensor]:
        extra = None if candidates is None else candidates[rows]
        return closest_change(
            classifier, x[rows], ids[rows], attacks, (tolerance, max_steps), extra
        )

    values, points = by_chunks(len(x), batch_size, work)
    given = " and the candidates given" if candidates is not None else ""
    method = (
        f"r_unc(x) = min ||r||_2 s.t. f(x + r) != f(x): {attack_names(attacks)}{given} through "
        "brittle's attack base (successes re-verified), each refined by bisection along the "
        f"segment from x (relative tolerance {tolerance:g}); per sample the smallest verified "
        "L2 change, inf where none"
    )
    config = {
        "attacks": describe_attacks(attacks),
        "candidates": candidates is not None,
        "tolerance": tolerance,
        "max_steps": max_steps,
    }
    scale = float(x.flatten(1).norm(dim=1).mean())
    return RobustnessEstimate("r_unc", values, points, scale, "mean ||x||_2", method, config)
