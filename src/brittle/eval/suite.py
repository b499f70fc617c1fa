"""Attack suites chosen from the threat model: what ``brittle evaluate --suite`` runs.

The ``standard`` suite follows AutoAttack's plan (Croce & Hein 2020, section 5): parameter-free
attacks of complementary losses, each run on the samples the earlier ones left standing, and
per sample the worst case:

1. APGD on the cross-entropy (:class:`~brittle.attacks.apgd.APGD`, 100 steps);
2. APGD-T on the targeted DLR loss over the 9 classes of highest clean logit
   (:class:`~brittle.attacks.apgd.APGDT`), which the cross-entropy's scale cannot mask;
3. a score-based attack, which uses no gradient at all: a sample it breaks after both gradient
   attacks failed is the sign of a masked gradient. On images, AutoAttack's own, the Square
   attack (:class:`~brittle.attacks.square.Square`, 5,000 queries, p_init 0.8); on inputs
   without an image layout, where Square's windows mean nothing, SimBA
   (:class:`~brittle.attacks.simba.SimBA`).

Under a score-based threat (``oracle_scores``) only the score-based attack is allowed, and it
runs on every sample. The suite is untargeted (any misclassification) and defined in Linf and
L2, where APGD, Square and SimBA work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brittle.errors import InputError
from brittle.threat import Capability, Norm

from .spec import AttackSpec

STANDARD = "standard"
SUITES = (STANDARD,)
"""The suites ``--suite`` offers."""
SCORE_QUERIES = 5_000
"""The score-based attack's queries per sample (AutoAttack's Square attack spends 5,000)."""
SQUARE_SIDE = 3
"""The shortest image side the Square attack works on."""


def suite_attacks(
    suite: str,
    norm: Norm | str,
    capability: Capability,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
) -> tuple[AttackSpec, ...]:
    """The attacks of ``suite`` for a threat in ``norm`` with ``capability``, in order, for
    inputs of ``input_shape`` (per sample; ``None``: images), drawing with ``seed``.

    Refused, saying what to do instead: an unknown suite, a norm the suite does not cover, and
    a capability below score queries (the suite has no decision-based or transfer attack).
    """
    if suite != STANDARD:
        raise InputError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    norm = Norm.parse(norm)
    if norm not in (Norm.LINF, Norm.L2):
        raise InputError(
            f"the standard suite is defined in linf and l2 (APGD, Square, SimBA), not {norm.value}; "
            "list the attacks for this norm with --attack instead"
        )
    score = _score_attack(input_shape)

    def member(name: str, survivors_only: bool, **params: Any) -> AttackSpec:
        label = ":".join([name, *(f"{k}={v}" for k, v in params.items())])
        return AttackSpec(
            name=name,
            params={**params, "norm": norm.value},
            label=label,
            survivors_only=survivors_only,
            seed=seed,
        )

    if capability >= Capability.WHITE_BOX:
        return (
            member("apgd", False, loss="ce"),
            member("apgd-t", True),
            member(score, True, max_queries=SCORE_QUERIES),
        )
    if capability >= Capability.ORACLE_SCORES:
        return (member(score, False, max_queries=SCORE_QUERIES),)
    raise InputError(
        f"the standard suite needs at least score queries (oracle_scores), but the threat "
        f"grants {capability.name.lower()}; list a decision-based or transfer attack with "
        "--attack instead"
    )


def _score_attack(input_shape: Sequence[int] | None) -> str:
    """Square on images (C, H, W) of sides >= :data:`SQUARE_SIDE`, SimBA on other inputs."""
    if input_shape is None:
        return "square"
    shape = tuple(input_shape)
    images = len(shape) == 3 and min(shape[1:]) >= SQUARE_SIDE
    return "square" if images else "simba"
