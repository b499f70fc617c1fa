"""Attack suites chosen from the threat model: what ``brittle evaluate --suite`` runs.

The ``standard`` suite follows AutoAttack's plan (Croce & Hein 2020, section 5): parameter-free
attacks of complementary losses, each run on the samples the earlier ones left standing, and
per sample the worst case:

1. APGD on the cross-entropy (:class:`~brittle.attacks.apgd.APGD`, 100 steps);
2. APGD-T on the targeted DLR loss over the 9 classes of highest clean logit
   (:class:`~brittle.attacks.apgd.APGDT`), which the cross-entropy's scale cannot mask;
3. FAB-T (:class:`~brittle.attacks.fab.FABT`, Croce & Hein's fast adaptive boundary attack,
   aimed in turn at the same 9 classes, 100 iterations, 1 restart), which steps to the
   linearised decision boundary instead of ascending a loss, so that it depends on no loss's
   scale and no step size;
4. a score-based attack, which uses no gradient at all: a sample it breaks after the gradient
   attacks failed is the sign of a masked gradient. On images, AutoAttack's own, the Square
   attack (:class:`~brittle.attacks.square.Square`, 5,000 queries, p_init 0.8); on inputs
   without an image layout, where Square's windows mean nothing, SimBA
   (:class:`~brittle.attacks.simba.SimBA`).

A weaker threat gets the strongest attacks it allows (Papernot et al. 2016's capabilities):

- score queries (``oracle_scores``): the Square attack on every sample, then SimBA on the
  samples it left standing (SimBA alone on inputs without an image layout);
- label queries (``oracle_labels``): HopSkipJump (:mod:`brittle.attacks.hopskipjump`) on every
  sample, then in Linf RayS (:mod:`brittle.attacks.rays`) on the survivors; each with
  :data:`LABEL_QUERIES` queries per sample;
- the training data (``training_data``): a substitute trained on the whole training split of
  the evaluated data set with its own labels; labelled samples only (``samples``): a
  substitute trained on :data:`SAMPLES_HELD` of them, no query at all. Either way its
  adversarial examples (FGSM) are transferred to the model
  (:mod:`brittle.attacks.substitute`, Papernot et al. 2017).

The suite is untargeted (any misclassification) and defined in Linf and L2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from brittle.errors import InputError
from brittle.eval.spec import AttackSpec
from brittle.threat import Capability, Norm

STANDARD = "standard"
SUITES = (STANDARD,)
"""The suites ``--suite`` offers."""
SCORE_QUERIES = 5_000
"""The score-based attack's queries per sample (AutoAttack's Square attack spends 5,000)."""
LABEL_QUERIES = 5_000
"""The decision-based attacks' queries per sample: the score stage's budget."""
RAISE = 4
"""How many times its budget a black-box stage gets when it is raised (once) because it broke
samples that every stronger attack left standing."""
SAMPLES_HELD = 150
"""The labelled samples a ``samples`` adversary holds (Papernot et al. 2017's seed set)."""
SQUARE_SIDE = 3
"""The shortest image side the Square attack works on."""


def suite_attacks(
    suite: str,
    norm: Norm | str,
    capability: Capability,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
    data: str | None = None,
) -> tuple[AttackSpec, ...]:
    """The attacks of ``suite`` for a threat in ``norm`` with ``capability``, in order, for
    inputs of ``input_shape`` (per sample; ``None``: images), drawing with ``seed``; ``data``
    names the data set whose training split a ``training_data`` or ``samples`` adversary
    holds.

    Refused, saying what to do instead: an unknown suite, a norm the suite does not cover,
    and a substitute suite without a named data set.
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
            member("fab-t", True),
            member(score, True, max_queries=SCORE_QUERIES),
        )
    if capability >= Capability.TRAINING_DATA:
        return (_substitute(member, capability, data, seed_size=None),)
    if capability >= Capability.ORACLE_SCORES:
        first = member(score, False, max_queries=SCORE_QUERIES)
        if score == "simba":
            return (first,)
        return (first, member("simba", True, max_queries=SCORE_QUERIES))
    if capability >= Capability.ORACLE_LABELS:
        first = member("hopskipjump", False, max_queries=LABEL_QUERIES)
        if norm is not Norm.LINF:
            return (first,)
        return (first, member("rays", True, max_queries=LABEL_QUERIES))
    return (_substitute(member, capability, data, seed_size=SAMPLES_HELD),)


def _substitute(
    member: Callable[..., AttackSpec],
    capability: Capability,
    data: str | None,
    seed_size: int | None,
) -> AttackSpec:
    """The transfer stage: a substitute trained on ``seed_size`` labelled samples (``None``:
    all) of ``data``'s training split, no label asked of the model."""
    if data is None:
        raise InputError(
            f"under {capability.name.lower()} the suite trains a substitute on the training "
            "split of a data set brittle loads by its name alone (mnist or fashion-mnist from "
            "$BRITTLE_DATA, mnist5k, digits, ...): name it with --dataset and no --data-dir, or "
            "list --attack substitute:data=NAME with your own choices"
        )
    return member(
        "substitute", False, data=data, split="train", labels="given", rounds=0,
        seed_size=seed_size,
    )  # fmt: skip


def _score_attack(input_shape: Sequence[int] | None) -> str:
    """Square on images (C, H, W) of sides >= :data:`SQUARE_SIDE`, SimBA on other inputs."""
    if input_shape is None:
        return "square"
    shape = tuple(input_shape)
    images = len(shape) == 3 and min(shape[1:]) >= SQUARE_SIDE
    return "square" if images else "simba"
