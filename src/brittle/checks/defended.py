"""The gradient-masking check of a defended model, before its robustness is believed.

A model is defended when its file's metadata name a ``defense``. Defences that mask the
gradient (Athalye et al. 2018) make gradient attacks fail without making the model robust;
the check (:func:`~brittle.checks.masking.gradient_masking_check`) compares them with
attacks that need no gradient, on the first :data:`MASKING_SAMPLES` samples.
"""

from __future__ import annotations

from brittle.attacks.base import Attack
from brittle.checks.masking import NORMS, MaskingCheck, gradient_masking_check
from brittle.eval.victim import Victim
from brittle.perturbation import box_diameter
from brittle.threat import Norm

MASKING_SAMPLES = 500
"""The check runs on the first this many samples."""
MASKING_FALLBACK_EPS = 0.1
"""The check's Linf budget, as a share of the box's width, when the attack's budget cannot
serve: an L0 budget (FGSM and PGD take no L0 step), or none that binds (an unbounded minimal
attack)."""


def defense_check(
    victim: Victim, attack: Attack, batch_size: int, seed: int
) -> MaskingCheck | None:
    """The gradient-masking check of a defended model, in ``attack``'s norm and at its
    budget (:func:`masking_budget`); ``None`` for an undefended one."""
    if not victim.meta.get("defense"):
        return None
    norm, eps = masking_budget(victim, attack.norm, attack.eps)
    x, y, ids = victim.first(MASKING_SAMPLES)
    return gradient_masking_check(
        victim.model,  # type: ignore[arg-type]
        x,
        y,
        eps,
        norm=norm,
        seed=seed,
        batch_size=batch_size,
        ids=ids,
    )


def masking_budget(victim: Victim, norm: Norm, eps: float | None) -> tuple[Norm, float]:
    """The norm and budget of the check for an attack in ``norm`` at ``eps``: the same when
    the check works in that norm and the budget binds (below the box's diameter), else Linf
    at :data:`MASKING_FALLBACK_EPS` of the box's width."""
    low, high = victim.model.envelope()
    diameter = box_diameter(norm, (low, high), victim.features)
    if norm in NORMS and eps is not None and eps < diameter:
        return norm, eps
    return Norm.LINF, MASKING_FALLBACK_EPS * (high - low)
