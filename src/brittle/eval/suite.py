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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from brittle.attacks.base import Attack
from brittle.attacks.registry import describe_attack, make_attack
from brittle.errors import InputError
from brittle.threat import Capability, Norm

from .runner import AttackPlan

STANDARD = "standard"
SUITES = (STANDARD,)
"""The suites ``--suite`` offers."""
SCORE_QUERIES = 5_000
"""The score-based attack's queries per sample (AutoAttack's Square attack spends 5,000)."""
SQUARE_SIDE = 3
"""The shortest image side the Square attack works on."""


@dataclass(frozen=True)
class SuiteAttack:
    """One attack of a suite: its registered name, its parameters, and whether it attacks
    only the samples still standing after the suite's earlier attacks."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    survivors_only: bool = False

    @property
    def label(self) -> str:
        """``NAME[:PARAM=VALUE...]``, as ``--attack`` writes it."""
        return ":".join([self.name, *(f"{k}={v}" for k, v in self.params.items())])


def suite_attacks(
    suite: str,
    norm: Norm | str,
    capability: Capability,
    input_shape: Sequence[int] | None = None,
) -> list[SuiteAttack]:
    """The attacks of ``suite`` for a threat in ``norm`` with ``capability``, in order, for
    inputs of ``input_shape`` (per sample; ``None``: images).

    Refused, saying what to do instead: an unknown suite, a norm the suite does not cover, and
    a capability below score queries (the suite has no decision-based or transfer attack).
    """
    if suite != STANDARD:
        raise InputError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    norm = Norm(norm)
    if norm not in (Norm.LINF, Norm.L2):
        raise InputError(
            f"the standard suite is defined in linf and l2 (APGD, Square, SimBA), not {norm.value}; "
            "list the attacks for this norm with --attack instead"
        )
    score = SuiteAttack(_score_attack(input_shape), {"max_queries": SCORE_QUERIES})
    if capability >= Capability.WHITE_BOX:
        return [
            SuiteAttack("apgd", {"loss": "ce"}),
            SuiteAttack("apgd-t", {}, survivors_only=True),
            replace(score, survivors_only=True),
        ]
    if capability >= Capability.ORACLE_SCORES:
        return [score]
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


def standard_plans(
    norm: Norm | str = Norm.LINF,
    *,
    capability: Capability = Capability.WHITE_BOX,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
) -> list[AttackPlan]:
    """The standard suite as :class:`~brittle.eval.runner.AttackPlan` for
    :func:`~brittle.eval.runner.evaluate` (the Python API's ``--suite standard``), for inputs
    of ``input_shape`` per sample (``None``: images)."""
    norm = Norm(norm)
    plans = []
    for item in suite_attacks(STANDARD, norm, capability, input_shape):
        build = _builder(item, norm, seed)
        spec = describe_attack(build(1.0))
        spec["params"].pop("eps", None)
        spec["target"] = None
        plans.append(AttackPlan(item.label, spec, build, survivors_only=item.survivors_only))
    return plans


def _builder(item: SuiteAttack, norm: Norm, seed: int) -> Callable[[float], Attack]:
    def build(eps: float) -> Attack:
        return make_attack(item.name, eps=eps, norm=norm.value, seed=seed, **item.params)

    return build
