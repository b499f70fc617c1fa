"""Theorem 3 of Fawzi, Fawzi & Fawzi (NeurIPS 2018) on samples: the bound on how often one
perturbation fools two classifiers at once, beside how often an attack on both finds one.

For classifiers f and h with delta = P(f(g(z)) != h(g(z))),

    P(exists v, ||v||_2 <= eta : f(g(z) + v) != f(g(z)) and h(g(z) + v) != h(g(z)))
        >= 1 - sqrt(pi/2) exp(-omega^{-1}(eta)^2 / 2) - 2 delta

(:func:`~.theorems.transfer_bound`). :func:`theorem3_check` estimates delta on generator
samples with a one-sided Clopper-Pearson upper limit, evaluates the bound at the estimate and
at that limit, and measures the left-hand side with
:func:`~.joint_attack.common_perturbation_share`.
"""

from __future__ import annotations

from typing import Any

from scipy import stats
from torch import nn

from brittle.classifier import Classifier
from brittle.validation import check_fraction, check_positive_integer

from .analysis import DEFAULT_SAMPLES, generated_predictions
from .estimate import json_float
from .inputs import check_pair
from .joint_attack import common_perturbation_share
from .theorems import corollary_robustness_upper_bound, transfer_bound


def disagreement_upper(disagreements: int, n: int, confidence: float) -> float:
    """The one-sided Clopper-Pearson upper limit of a rate seen ``disagreements`` times in ``n``:

    upper = Beta^{-1}(confidence; k + 1, n - k)     (1 when k = n).
    """
    if disagreements >= n:
        return 1.0
    return float(stats.beta.ppf(confidence, disagreements + 1, n - disagreements))


def theorem3_check(
    f: Classifier,
    h: Classifier,
    generator: nn.Module,
    n: int,
    *,
    eta: float | None = None,
    lipschitz: float | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Theorem 3 for ``f`` and ``h`` on ``generator``'s data, in image space (omega(t) = L t
    with ``lipschitz`` = L; latent units when ``None``).

    delta is estimated on ``n_samples`` draws (seed ``seed + 1``, the class probabilities'
    draws) with its upper limit at ``confidence``; ``eta`` defaults to the radius at which the
    corollary's bound on one classifier reaches 1/2 (L sqrt(log(2 pi))), where Theorem 3
    promises at least 1/2 - 2 delta. The measured share comes from ``n`` other draws (seed
    ``seed``); it is a lower estimate of the probability (the attack may miss a common v),
    so ``attack_reaches_bound`` says whether the attack alone already confirms the
    conservative bound. Both classifiers and the generator are checked before any work.
    """
    check_pair(f, generator)
    check_pair(h, generator)
    check_positive_integer(n_samples, "n_samples")
    check_fraction(confidence, "confidence")
    radius = corollary_robustness_upper_bound(0.5, lipschitz) if eta is None else eta
    labels_f = generated_predictions(f, generator, n_samples, seed + 1)
    labels_h = generated_predictions(h, generator, n_samples, seed + 1).to(labels_f.device)
    disagreements = int((labels_f != labels_h).sum())
    delta = disagreements / n_samples
    delta_upper = disagreement_upper(disagreements, n_samples, confidence)
    measured = common_perturbation_share(f, h, generator, n, radius, seed=seed)
    return {
        "eta": radius,
        "lipschitz": lipschitz,
        "delta": delta,
        "delta_upper": delta_upper,
        "delta_samples": n_samples,
        "confidence": confidence,
        "bound": json_float(float(transfer_bound(radius, delta, lipschitz))),
        "bound_conservative": json_float(float(transfer_bound(radius, delta_upper, lipschitz))),
        "share": measured["share"],
        "found": measured["found"],
        "n": n,
        "method": measured["method"],
        "attack_reaches_bound": measured["share"]
        >= float(transfer_bound(radius, delta_upper, lipschitz)),
    }
