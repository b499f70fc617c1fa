"""RayS (Chen & Gu 2020): labels only, every query counted and within the per-sample budget,
results verified, independent of the batch, and near the closed-form Linf distance to a
linear boundary."""

from __future__ import annotations

import pytest
import torch

from brittle import Capability, Classifier, Oracle
from brittle.attacks import FGSM, Attack
from brittle.attacks.host_syncs import count_host_syncs, forward_passes
from brittle.attacks.rays import RayS, block, next_block
from brittle.attacks.registry import make_attack
from brittle.testing import check_attack
from helpers import softmax_on_digits
from test_hopskipjump import Counted, linear_problem

pytestmark = pytest.mark.usefixtures("one_thread")


def test_targeted_rays_keeps_the_attack_contract() -> None:
    """Untargeted is checked with every registered attack (test_attack_contract)."""
    check_attack(RayS, targeted=True, max_queries=30)


def test_it_is_registered_as_a_label_only_minimal_attack() -> None:
    attack = make_attack("rays", max_queries=50)
    assert isinstance(attack, RayS)
    assert attack.capability is Capability.ORACLE_LABELS and attack.norm.value == "linf"


def test_the_blocks_halve_level_by_level_and_cover_every_feature() -> None:
    """Level k cuts d features into 2^k blocks of ceil(d / 2^k): each level covers 0..d once."""
    d, level, index = 10, 0, 0
    seen: dict[int, list[tuple[int, int]]] = {}
    for _ in range(40):
        seen.setdefault(level, []).append(block(level, index, d))
        level, index = next_block(level, index, d)
    assert seen[0] == [(0, 10)]
    assert seen[1] == [(0, 5), (5, 10)]
    assert seen[2] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    for blocks in list(seen.values())[:-1]:
        assert [i for a, b in blocks for i in range(a, b)] == list(range(d))


def test_every_row_the_oracle_saw_is_counted_per_sample() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:5], y[:5]
    budget = 200
    whole = RayS(max_queries=budget)(Oracle(Counted(clf.module), 10, (1, 8, 8)), x, y)
    for i in range(len(x)):  # alone, so that the rows are this sample's
        predict = Counted(clf.module)
        one = RayS(max_queries=budget)(
            Oracle(predict, 10, (1, 8, 8)), x[i : i + 1], y[i : i + 1], ids=[i]
        )
        assert predict.rows == int(one.queries[0] + one.verification_queries[0])
        assert int(one.queries[0]) == budget  # no cap: it searches until the budget is spent
        assert torch.equal(one.x_adv, whole.x_adv[i : i + 1])  # the batch does not matter
    assert whole.queries.tolist() == [budget] * len(x)


def test_the_results_are_in_the_box_and_verified() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:8], y[:8]
    result = RayS(max_queries=300)(clf, x, y)
    assert float(result.x_adv.min()) >= 0 and float(result.x_adv.max()) <= 1
    pred = clf.predict(result.x_adv)
    assert torch.equal(result.pred_adv, pred)
    assert torch.equal(result.success, pred != y)
    assert bool(result.success.all())
    assert torch.equal((result.x_adv == x).flatten(1).all(1), ~result.success)


def test_a_cap_stops_samples_within_it_and_saves_queries() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:6], y[:6]
    capped = RayS(eps=0.3, max_queries=500)(clf, x, y)
    assert bool((capped.linf[capped.success] <= 0.3 + 1e-6).all())
    assert int(capped.queries.max()) < 500


def test_it_approaches_the_linf_distance_to_a_linear_boundary_from_above() -> None:
    """The smallest Linf perturbation that crosses w.x + b = 0 is |w.x + b| / ||w||_1 (at
    x - r sign(w) sign(w.x + b), inside the box here): RayS' is at least that and, with enough
    queries, near it (its sign search finds the vertex sign(w) feature by feature). One
    sample lies 8e-6 from the boundary: the tolerance is set below it."""
    module, x, y, _, linf = linear_problem()
    result = RayS(max_queries=2_000, tolerance=1e-7)(Classifier(module), x, y)
    assert bool(result.success.all())
    assert bool((result.linf >= linf * (1 - 1e-6)).all())
    ratio = result.linf / linf
    assert float(ratio.max()) < 1.01, ratio.tolist()


def test_about_one_host_sync_per_model_call() -> None:
    """Each model call is sized by one host sync (the count of its rows); each block's binary
    search ends with one more (the count that finds no sample left to search), and the box's
    widest side is read once. The base's own checks are measured on FGSM and taken off."""
    clf, x, y = softmax_on_digits()
    x, y = x[:6], y[:6]

    def measured(attack: Attack) -> tuple[int, int]:
        attack(clf, x, y)  # the model's first-call checks
        with forward_passes(clf.module) as passes:
            syncs = count_host_syncs(lambda: attack(clf, x, y)).total
        return syncs, passes[0]

    base_syncs, base_passes = measured(FGSM(0.1))
    syncs, passes = measured(RayS(max_queries=100))
    calls = passes - base_passes
    checks = 100 - 1  # ray checks: at most one block per query left after the clean one
    assert calls <= syncs - base_syncs <= calls + checks + 2
