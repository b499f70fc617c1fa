"""The checks an epsilon sweep's numbers answer, against gradient masking.

Athalye, Carlini & Wagner (2018) and Croce & Hein (2020, AutoAttack) list signs that an
evaluation measures a masked gradient rather than robustness. Each check is a
:class:`~brittle.checks.outcome.SanityCheck`.

This module holds the checks an epsilon sweep's numbers can answer: robust accuracy never
rises with the budget, and the model's outputs stay finite. Those that query the model
(iterative against single step, success at an unbounded budget, random noise, gradients,
randomness, black box against white box) are in :mod:`brittle.checks.probes`.
"""

from __future__ import annotations

import math
from typing import Any

from brittle.eval.runner import CONFIDENCE, clopper_pearson

from .outcome import NOT_RUN, PASSED, WARNING, SanityCheck

_TOLERANCE = 1e-9
RECORDED_MARGIN = 0.02
"""How far (a fraction: 2 percentage points) a model's recorded accuracy may lie above the
upper end of the interval of the measured clean accuracy before
:func:`recorded_accuracy_check` warns."""


def monotone_check(eps: list[float], summaries: list[dict[str, Any]]) -> SanityCheck:
    """Robust accuracy never rises with the budget (``eps`` ascending): a larger budget
    contains every perturbation of a smaller one, so a rise means the attack missed
    adversarial examples it had found at the smaller budget."""
    robust = [float(s["robust_accuracy"]) for s in summaries]
    title = "Robust accuracy never rises as eps grows"
    numbers = {"eps": list(eps), "robust_accuracy": robust}
    rises = [i for i in range(1, len(eps)) if robust[i] > robust[i - 1] + _TOLERANCE]
    if not rises:
        return SanityCheck(
            "monotone", title, PASSED, "robust accuracy falls or stays with eps", numbers
        )
    i = rises[0]
    return SanityCheck(
        "monotone",
        title,
        WARNING,
        f"robust accuracy rises from {robust[i - 1]:.1%} at eps={eps[i - 1]:.4g} to "
        f"{robust[i]:.1%} at eps={eps[i]:.4g}: a larger budget should never help the model. The "
        "attack is not finding the adversarial examples it should (masked gradients, or too "
        "few steps); try an iterative attack such as PGD or the standard suite.",
        numbers,
    )


def finite_outputs_check(eps: list[float], summaries: list[dict[str, Any]]) -> SanityCheck:
    """The model's outputs on the adversarial inputs are finite (a NaN or inf output counts
    as not robust, but it is a fault of the model to report)."""
    counts = [int(s.get("nonfinite_outputs") or 0) for s in summaries]
    title = "Model outputs finite on the adversarial inputs"
    numbers = {"eps": list(eps), "nonfinite_outputs": counts}
    bad = [(e, c) for e, c in zip(eps, counts, strict=True) if c]
    if not bad:
        return SanityCheck("finite_outputs", title, PASSED, "every output is finite", numbers)
    e, c = bad[0]
    return SanityCheck(
        "finite_outputs",
        title,
        WARNING,
        f"the model returned NaN or inf outputs on {c} of the adversarial inputs at eps={e:.4g}: "
        "they count as not robust (a non-finite output is never a correct answer); check the "
        "model on such inputs",
        numbers,
    )


def recorded_accuracy_check(
    clean_accuracy: float, n: int, recorded: float | None, *, margin: float = RECORDED_MARGIN
) -> SanityCheck:
    """The measured clean accuracy is not far below the accuracy the model records.

    A checkpoint records the accuracy it reached on its test set (``meta["accuracy"]``). The
    clean accuracy measured here on ``n`` samples has the Clopper-Pearson interval
    ``[low, high]`` (at :data:`~brittle.eval.runner.CONFIDENCE`, of ``k = round(clean_accuracy
    * n)`` correct in ``n``). A warning when ``recorded > high + margin``: the recorded figure
    is beyond what sampling explains, by more than ``margin`` (a fraction, default
    :data:`RECORDED_MARGIN`, for a test set that is not quite this data). Then the data
    likely do not reach the model as they did in training: classes in another order,
    another preprocessing or scale, another channel order. Not run without a recorded
    accuracy (``None``, or not a fraction in ``[0, 1]``) or without samples.
    """
    title = "Clean accuracy near the accuracy the model records"
    numbers: dict[str, Any] = {"clean_accuracy": clean_accuracy, "n": n, "recorded": recorded}
    if recorded is None:
        return SanityCheck(
            "recorded_accuracy", title, NOT_RUN, "the model records no accuracy", numbers
        )
    if not 0 <= recorded <= 1:
        return SanityCheck(
            "recorded_accuracy",
            title,
            NOT_RUN,
            f"the recorded accuracy {recorded:g} is not a fraction in [0, 1]",
            numbers,
        )
    if n < 1 or math.isnan(clean_accuracy):
        return SanityCheck("recorded_accuracy", title, NOT_RUN, "no sample was classified", numbers)
    _, high = clopper_pearson(round(clean_accuracy * n), n)
    numbers.update(ci_high=high, margin=margin)
    level = f"{100 * CONFIDENCE:g}%"
    if recorded <= high + margin:
        return SanityCheck(
            "recorded_accuracy",
            title,
            PASSED,
            f"the recorded accuracy {recorded:.1%} is at most {100 * margin:g} points above "
            f"{high:.1%}, the upper end of the {level} interval of the measured clean "
            f"accuracy {clean_accuracy:.1%} ({n} samples)",
            numbers,
        )
    return SanityCheck(
        "recorded_accuracy",
        title,
        WARNING,
        f"the model records an accuracy of {recorded:.1%}, but classifies only "
        f"{clean_accuracy:.1%} of these {n} samples correctly (the {level} interval ends at "
        f"{high:.1%}, more than {100 * margin:g} points below): the data likely do not reach "
        "the model as in training. Check the order of the class names, the preprocessing "
        "(scale to [0, 1], mean/std), the channel order and the image size before reading "
        "robustness from this evaluation.",
        numbers,
    )


def sweep_checks(eps: list[float], summaries: list[dict[str, Any]]) -> list[SanityCheck]:
    """The checks of an epsilon sweep's per-budget ``summaries`` (ascending ``eps``)."""
    return [monotone_check(eps, summaries), finite_outputs_check(eps, summaries)]


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
