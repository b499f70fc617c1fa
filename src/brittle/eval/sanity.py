"""Sanity checks against gradient masking on an evaluation's numbers (SPEC section 4).

Athalye et al. (2018) list signs that an evaluation measures a masked gradient rather than
robustness. The ones an epsilon sweep can show: robust accuracy that rises with the budget,
and success that does not reach 100% as the budget grows. A failed check is returned as a
warning for the report to show, never dropped.
"""

from __future__ import annotations

import math
from typing import Any

_TOLERANCE = 1e-9


def sanity_warnings(eps: list[float], summaries: list[dict[str, Any]]) -> list[str]:
    """Warnings for the per-budget ``summaries`` (ascending ``eps``); empty when all pass."""
    warnings = []
    robust = [s["robust_accuracy"] for s in summaries]
    for i in range(1, len(eps)):
        if robust[i] > robust[i - 1] + _TOLERANCE:
            warnings.append(
                f"robust accuracy rises from {robust[i - 1]:.1%} at eps={eps[i - 1]:g} to "
                f"{robust[i]:.1%} at eps={eps[i]:g}: a larger budget should never help the "
                "model. The attack is not finding the adversarial examples it should "
                "(masked gradients, or too few steps); try an iterative attack such as PGD."
            )
    if summaries:
        top = summaries[-1]["success_rate"]
        if math.isnan(top):
            warnings.append(
                "the model classifies none of the evaluated samples correctly, so the attack's "
                "success rate is undefined; check the model and the data set"
            )
        elif top < 1 - _TOLERANCE:
            warnings.append(
                f"success rate at the largest budget eps={eps[-1]:g} is {top:.1%}, not 100%. "
                "Either the budget is still small for this model, or its gradients are masked "
                "and the attack underestimates it; add larger budgets or try a stronger attack "
                "(PGD with restarts)."
            )
    for e, s in zip(eps, summaries, strict=True):
        if s.get("nonfinite_outputs"):
            warnings.append(
                f"the model returned NaN or inf outputs on {s['nonfinite_outputs']} of the "
                f"adversarial inputs at eps={e:g}: they count as not robust (a non-finite "
                "output is never a correct answer); check the model on such inputs"
            )
    return warnings


def unbounded_failure_warnings(attack: str, success_rate: float) -> list[str]:
    """A minimal-perturbation attack run without a budget that leaves samples unbroken.

    "Without a budget" means none, or one at least the box's diameter in the attack's norm,
    so that every input of the box is within it. Every correctly classified input can be
    misclassified by a large enough change inside the box, so such an attack has no budget
    to excuse a failure: the failures say the attack is too weak as set, never that the
    model is robust. ``success_rate`` is among the correctly classified samples (NaN: there
    were none, nothing to warn about).
    """
    if math.isnan(success_rate) or success_rate >= 1 - _TOLERANCE:
        return []
    return [
        f"{attack} ran without a budget (none, or one the whole input box fits in) but left "
        f"{1 - success_rate:.1%} of the correctly classified samples unbroken. Without a "
        "budget every input can be misclassified, so this measures the attack's weakness, "
        "not the model's robustness: give it more steps (or larger lr / initial_const for "
        "C&W) before reading robust accuracy from it."
    ]
