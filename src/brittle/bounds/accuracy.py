"""The most robust accuracy any classifier can reach at a budget on a generator's data.

Robust accuracy at budget eps is at most ``P(r(x) > eps)``, and Theorem 1 (Fawzi et al. 2018)
bounds ``P(r_in(x) <= eta)`` from below for every classifier with class probabilities ``p``
on ``x = g(z)``, with ``omega^{-1}(eta) = eta / L`` for an L-Lipschitz ``g`` (in L2). Since
``r_unc <= r_in``, the same bound holds for the robustness the evaluation's attacks measure.
For another norm, ``||v||_p <= c_p ||v||_2`` (``c_inf = 1``, ``c_1 = sqrt(d)``) gives
``r_p <= c_p r_2``, so ``P(r_p <= eps) >= P(r_2 <= eps / c_p)``. Hence, for any classifier:

    robust accuracy at eps  <=  1 - min_{p in B} sum_i [Phi(a_{!=i}(p) + eps / (c_p L)) - Phi(a_{!=i}(p))]

with the class probabilities' simultaneous confidence box ``B``
(:func:`~brittle.bounds.theorems.in_distribution_bound_interval`), so that the bound holds
with that confidence. ``L`` is estimated from the generator (a lower estimate of the true
constant, which makes the bound tighter than proven; the report says how it was found).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.generators import Generator
from brittle.threat import Norm

from .analysis import DEFAULT_SAMPLES, bound_inputs
from .inputs import check_pair
from .theorems import in_distribution_bound_interval

NORM_FACTORS = {Norm.L2: "1", Norm.LINF: "1", Norm.L1: "sqrt(d)"}
"""c_p with ||v||_p <= c_p ||v||_2 on R^d, for the norms the bound covers."""


def robust_accuracy_bound(
    classifier: Classifier,
    generator: Generator,
    eps_list: Sequence[float],
    norm: Norm | str,
    *,
    n_samples: int = DEFAULT_SAMPLES,
    confidence: float = 0.95,
    lipschitz: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The bound above at each budget of ``eps_list`` in ``norm``, for the generator's data.

    The class probabilities are those of ``classifier`` on ``n_samples`` generated inputs
    (the bound itself holds for any classifier with those probabilities); ``lipschitz`` is L
    when known, else estimated. JSON-ready: ``rows`` (``eps``, ``robust_accuracy_bound``),
    the norm, L and how it was found, the confidence and a ``method`` sentence.
    """
    norm = Norm(norm)
    if norm not in NORM_FACTORS:
        raise InputError(
            f"the bound on robust accuracy covers {', '.join(n.value for n in NORM_FACTORS)}, "
            f"not {norm.value}; evaluate without --generator in this norm"
        )
    probs, lipschitz, how = bound_inputs(
        classifier, generator, n_samples, confidence, lipschitz, seed
    )
    _, shape = check_pair(classifier, generator)
    factor = math.sqrt(math.prod(shape)) if norm is Norm.L1 else 1.0
    etas = np.asarray([float(e) / factor for e in eps_list])
    lower = np.atleast_1d(in_distribution_bound_interval(etas, probs, float(lipschitz)))
    rows = [
        {"eps": float(e), "robust_accuracy_bound": float(1.0 - low)}
        for e, low in zip(eps_list, lower, strict=True)
    ]
    return {
        "norm": norm.value,
        "lipschitz": float(lipschitz),
        "lipschitz_method": how,
        "confidence": confidence,
        "class_samples": n_samples,
        "method": (
            "Fawzi et al. 2018, Theorem 1: no classifier has more robust accuracy at eps on the "
            f"generator's data than 1 - P(r_in <= eps / {NORM_FACTORS[norm]}) bounded from "
            f"below with L = {float(lipschitz):.4g}, over the {confidence:.0%} confidence box "
            f"of the class probabilities of {n_samples} generated samples"
        ),
        "note": (
            "the bound is for the generator's distribution, the measured robust accuracy for "
            "the evaluated data: the gap is meaningful as far as the generator models that "
            "data; L is estimated from the generator (a lower estimate), so the bound may be "
            "tighter than proven"
        ),
        "rows": rows,
    }
