"""HopSkipJump (Chen, Jordan & Wainwright 2020): labels only, every query counted and within
the per-sample budget, results verified, independent of the batch, near the closed-form
distance to a linear boundary, and no worse than Foolbox 3's at the same budget."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from brittle import Capability, Classifier, Oracle
from brittle.attacks import FGSM, Attack
from brittle.attacks.hopskipjump import HopSkipJump
from brittle.attacks.host_syncs import count_host_syncs, forward_passes
from brittle.attacks.registry import make_attack
from brittle.testing import check_attack
from helpers import softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")


class Counted:
    """A label oracle's predict function that counts the rows it is asked about."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.rows = 0

    def __call__(self, x: Tensor) -> Tensor:
        self.rows += len(x)
        with torch.no_grad():
            return self.module(x).argmax(1)


def linear_problem(
    n: int = 6, d: int = 36, seed: int = 0
) -> tuple[nn.Sequential, Tensor, Tensor, Tensor, Tensor]:
    """A two-class linear classifier f(x) = [0, w.x + b] (float64) on (1, 6, 6) inputs, and
    ``n`` inputs near the box's centre whose nearest boundary points lie inside the box: the
    module, x, labels, and the L2 and Linf distances |w.x + b| / ||w||_2 and / ||w||_1."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    x = 0.5 + 0.05 * torch.randn(n, d, generator=g, dtype=torch.float64)
    b = -(x @ w).mean()
    layer = nn.Linear(d, 2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.stack([torch.zeros(d, dtype=torch.float64), w]))
        layer.bias.copy_(torch.stack([torch.zeros((), dtype=torch.float64), b]))
    module = nn.Sequential(nn.Flatten(), layer)
    margin = (x @ w + b).abs()
    y = (x @ w + b > 0).long()
    return module, x.view(n, 1, 6, 6), y, margin / w.norm(), margin / w.abs().sum()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm": "linf", "max_queries": 60, "steps": 2, "init_evals": 8},
        {"targeted": True, "max_queries": 40, "steps": 1, "init_evals": 8, "init_trials": 10},
    ],
    ids=["linf", "targeted"],
)
def test_hopskipjump_keeps_the_attack_contract(kwargs: dict[str, Any]) -> None:
    """L2 untargeted is checked with every registered attack (test_attack_contract)."""
    check_attack(HopSkipJump, **kwargs)


def test_it_is_registered_as_a_label_only_minimal_attack() -> None:
    attack = make_attack("hopskipjump", max_queries=50)
    assert isinstance(attack, HopSkipJump)
    assert attack.capability is Capability.ORACLE_LABELS and attack.eps is None


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_every_row_the_oracle_saw_is_counted_per_sample(norm: str) -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:5], y[:5]
    budget = 150
    whole = HopSkipJump(norm=norm, max_queries=budget, init_evals=20)(
        Oracle(Counted(clf.module), 10, (1, 8, 8)), x, y
    )
    for i in range(len(x)):  # alone, so that the rows are this sample's
        predict = Counted(clf.module)
        oracle = Oracle(predict, 10, (1, 8, 8))
        one = HopSkipJump(norm=norm, max_queries=budget, init_evals=20)(
            oracle, x[i : i + 1], y[i : i + 1], ids=[i]
        )
        assert predict.rows == int(one.queries[0] + one.verification_queries[0])
        assert 0 < int(one.queries[0]) <= budget
        assert int(one.queries[0]) == int(whole.queries[i])
        assert torch.equal(one.x_adv, whole.x_adv[i : i + 1])  # the batch does not matter
    assert bool((whole.queries <= budget).all())


def test_the_results_are_in_the_box_and_verified() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:8], y[:8]
    result = HopSkipJump(max_queries=400, init_evals=20)(clf, x, y)
    assert float(result.x_adv.min()) >= 0 and float(result.x_adv.max()) <= 1
    pred = clf.predict(result.x_adv)
    assert torch.equal(result.pred_adv, pred)
    assert torch.equal(result.success, pred != y)
    assert bool(result.success.all())  # a softmax regression is fooled by noise
    unchanged = (result.x_adv == x).flatten(1).all(1)
    assert torch.equal(unchanged, ~result.success)


def test_a_cap_stops_samples_within_it_and_saves_queries() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:6], y[:6]
    free = HopSkipJump(max_queries=600, init_evals=20)(clf, x, y)
    capped = HopSkipJump(eps=3.0, max_queries=600, init_evals=20)(clf, x, y)
    assert bool((capped.l2[capped.success] <= 3.0 + 1e-6).all())
    assert int(capped.queries.sum()) < int(free.queries.sum())


def test_no_starting_point_fails_honestly_with_counted_queries() -> None:
    """A target that uniform noise never reaches: the sample fails, unchanged, having spent
    exactly its noise draws (and the clean query)."""
    module, x, y, _, _ = linear_problem(n=3)
    # class 1 only where w.x + b > 1e6: never inside the box
    with torch.no_grad():
        module[1].bias[1] -= 1e6
    clf = Classifier(module)
    y = clf.predict(x)
    target = torch.ones(len(x), dtype=torch.long)
    result = HopSkipJump(init_trials=7, max_queries=100)(clf, x, y, target=target)
    assert not bool(result.success.any())
    assert torch.equal(result.x_adv, x)
    assert result.queries.tolist() == [1 + 7] * len(x)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_it_approaches_the_distance_to_a_linear_boundary_from_above(norm: str) -> None:
    """The smallest L2 perturbation that crosses w.x + b = 0 is |w.x + b| / ||w||_2 (Linf:
    / ||w||_1); HopSkipJump's, always confirmed, is at least that and, with enough queries,
    within a few percent of it."""
    module, x, y, l2, linf = linear_problem()
    clf = Classifier(module)
    result = HopSkipJump(norm=norm, max_queries=3_000)(clf, x, y)
    assert bool(result.success.all())
    exact = l2 if norm == "l2" else linf
    found = result.l2 if norm == "l2" else result.linf
    assert bool((found >= exact * (1 - 1e-6)).all())
    ratio = found / exact
    assert float(ratio.max()) < (1.05 if norm == "l2" else 1.1), ratio.tolist()


def test_median_l2_no_worse_than_foolbox_at_the_same_budget() -> None:
    """Foolbox 3's HopSkipJump on the same model; brittle gets, per sample, at most the
    queries Foolbox spent on average (its model calls counted, initialisation included)."""
    fb = pytest.importorskip("foolbox")
    clf, x, y = softmax_on_digits()
    x, y = x[:20], y[:20]
    module = clf.module.eval()
    rows = [0]

    def count(_: nn.Module, args: tuple[Tensor, ...]) -> None:
        rows[0] += len(args[0])

    handle = module.register_forward_pre_hook(count)
    try:
        torch.manual_seed(0)
        fmodel = fb.PyTorchModel(module, bounds=(0, 1))
        attack = fb.attacks.HopSkipJumpAttack(steps=10)
        _, theirs, success = attack(fmodel, x, fb.criteria.Misclassification(y), epsilons=None)
    finally:
        handle.remove()
    per_sample = math.floor(rows[0] / len(x))
    ours = HopSkipJump(max_queries=per_sample)(clf, x, y)
    assert bool(ours.success.all()) and bool(success.all())
    their_l2 = (theirs - x).flatten(1).norm(dim=1)
    assert float(ours.l2.median()) <= float(their_l2.median())
    assert int(ours.queries.max()) <= per_sample


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_about_one_host_sync_per_model_call(norm: str) -> None:
    """Each model call is sized by one host sync (the count of its rows); each search ends
    with one more (the count that finds no sample left). The base's own checks are measured
    on FGSM and taken off."""
    clf, x, y = softmax_on_digits()
    x, y = x[:6], y[:6]

    def measured(attack: Attack) -> tuple[int, int]:
        attack(clf, x, y)  # the model's first-call checks
        with forward_passes(clf.module) as passes:
            syncs = count_host_syncs(lambda: attack(clf, x, y)).total
        return syncs, passes[0]

    base_syncs, base_passes = measured(FGSM(0.1))
    syncs, passes = measured(HopSkipJump(norm=norm, steps=8, init_evals=10))
    calls = passes - base_passes
    # one more per iteration (the step size search's last count), for the start's noise
    # search and for the count that finds nothing left to estimate
    assert calls <= syncs - base_syncs <= calls + 8 + 2
