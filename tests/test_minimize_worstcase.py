"""Minimize (bisection over eps) and WorstCase (several attacks, the worst case per sample).

Closed form for Minimize(FGSM): with the binary linear model of logits [0, m(x)],
m(x) = w.x + b, the Linf FGSM step moves m by eps * ||w||_1 towards the other class (the
cross-entropy gradient is +-(1 - p_y) w, its sign +-sign(w)), so while the box is inactive the
attack succeeds exactly when eps >= |m(x)| / ||w||_1, monotone in eps: the smallest
successful budget is |w.x + b| / ||w||_1.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from brittle import Classifier
from brittle.attacks import (
    FGSM,
    LBFGS,
    AttackResult,
    FixedBudgetAttack,
    MinimizationAttack,
    Minimize,
    Smallest,
    WorstCase,
)
from brittle.errors import InputError
from brittle.threat import Capability, Norm, ThreatModel
from helpers import Hyperplane, softmax_on_digits

HIGH = 0.25


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def linear() -> tuple[Classifier, Tensor, Tensor, Tensor]:
    """Classifier, inputs in [0.3, 0.7] (the box stays inactive up to eps 0.3), their
    predicted labels, and the closed-form smallest FGSM budget |w.x + b| / ||w||_1 (<= 0.2)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, generator=g)
    b = -(0.5 * w).sum()
    x = 0.3 + 0.4 * torch.rand(24, 10, generator=g)
    clf = Classifier(Hyperplane(w, b))
    y = clf.predict(x)
    exact = ((x.double() @ w.double() + b.double()).abs() / w.double().abs().sum()).float()
    return clf, x, y, exact


@pytest.fixture(scope="module")
def digits() -> tuple[Classifier, Tensor, Tensor]:
    """Softmax regression on sklearn's 8x8 digits (/16, (N, 1, 8, 8)); 16 correct samples."""
    clf, x, y = softmax_on_digits()
    return clf, x[:16], y[:16]


# ---------------------------------------------------------------------------- Minimize
def test_minimize_fgsm_matches_closed_form(linear: tuple[Classifier, Tensor, Tensor, Tensor]):
    clf, x, y, exact = linear
    tol = 1e-4
    res = Minimize(FGSM(HIGH), tolerance=tol).attack(clf, x, y)
    assert res.min_eps is not None and res.success.all()
    assert (res.min_eps >= exact - 1e-5).all() and (res.min_eps <= exact + tol + 1e-5).all()
    # the returned inputs lie within their own min_eps, and fool the model
    assert (res.linf <= res.min_eps * (1 + 1e-5) + 1e-6).all()
    assert (clf.predict(res.x_adv) != y).all()
    # costs: one FGSM gradient per call, one call at high then one per bisection step
    steps = math.ceil(math.log2(HIGH / tol))
    assert (res.gradients >= 2).all() and (res.gradients <= 1 + steps).all()
    assert (res.queries > res.gradients).all()


def test_minimize_matches_dense_fgsm_sweep(linear: tuple[Classifier, Tensor, Tensor, Tensor]):
    clf, x, y, _ = linear
    x, y, tol, step = x[:6], y[:6], 1e-3, 2e-3
    grid = torch.arange(0, HIGH + step / 2, step)
    # one batched FGSM call: every sample at every budget of the grid
    sweep = FGSM(HIGH).attack(
        clf, x.repeat(len(grid), 1), y.repeat(len(grid)), eps=grid.repeat_interleave(len(x))
    )
    fooled = sweep.success.view(len(grid), len(x))
    assert (fooled.int().diff(dim=0) >= 0).all()  # monotone in eps on this model
    smallest = grid[fooled.int().argmax(0)]
    res = Minimize(FGSM(HIGH), tolerance=tol).attack(clf, x, y)
    assert res.min_eps is not None
    assert (res.min_eps > smallest - step - 1e-6).all()
    assert (res.min_eps <= smallest + tol + 1e-6).all()


def test_minimize_clean_failures_low_and_override(
    linear: tuple[Classifier, Tensor, Tensor, Tensor],
):
    clf, x, y, exact = linear
    wrong = y.clone()
    wrong[0] = 1 - y[0]  # already misclassified: min eps 0, no gradient spent
    res = Minimize(FGSM(HIGH)).attack(clf, x, wrong)
    assert res.min_eps is not None
    assert res.success[0] and res.min_eps[0] == 0 and res.gradients[0] == 0
    assert torch.equal(res.x_adv[0], x[0])

    res = Minimize(FGSM(HIGH), high=0.05).attack(clf, x, y)
    assert res.min_eps is not None
    failed = exact > 0.05 + 1e-5
    assert failed.any() and not res.success[failed].any()
    assert torch.isinf(res.min_eps[failed]).all()
    assert torch.equal(res.x_adv[failed], x[failed])
    assert res.success[exact < 0.05 - 1e-5].all()

    res = Minimize(FGSM(HIGH), low=0.1).attack(clf, x, y)
    assert res.min_eps is not None and res.success.all()
    below = exact < 0.1 - 1e-5
    assert below.any() and (res.min_eps[below] == 0.1).all()

    res = Minimize(FGSM(HIGH)).attack(clf, x, y, eps=0.05)  # per-call high
    assert res.eps == pytest.approx(0.05) and res.success[exact < 0.05 - 1e-5].all()
    assert not res.success[failed].any()


def test_minimize_targeted_and_declared_threat(linear: tuple[Classifier, Tensor, Tensor, Tensor]):
    clf, x, y, exact = linear
    res = Minimize(FGSM(HIGH, targeted=True), tolerance=1e-4).attack(clf, x, y, target=1 - y)
    assert res.min_eps is not None and res.success.all()
    assert (res.min_eps - exact).abs().max() <= 1e-4 + 1e-5
    attack = Minimize(FGSM(0.3, norm="l2"))
    assert attack.norms == {Norm.L2} and attack.goals == FGSM.goals and attack.eps == 0.3
    assert attack.capability is Capability.WHITE_BOX
    assert ThreatModel(norm="l2", eps=0.3).permits(attack)
    assert not ThreatModel(norm="linf", eps=0.3).permits(attack)
    with pytest.raises(InputError):
        Minimize(LBFGS())  # no budget to bisect
    with pytest.raises(InputError):
        Minimize(FGSM(0.1), low=0.2)


def test_result_min_eps_select_and_concat(linear: tuple[Classifier, Tensor, Tensor, Tensor]):
    clf, x, y, _ = linear
    res = Minimize(FGSM(HIGH)).attack(clf, x[:4], y[:4])
    assert res.min_eps is not None
    part = res.select(torch.tensor([True, False, True, False]))
    assert part.min_eps is not None and torch.equal(part.min_eps, res.min_eps[[0, 2]])
    joined = AttackResult.concat([res, part])
    assert joined.min_eps is not None and len(joined.min_eps) == 6
    plain = FGSM(HIGH).attack(clf, x[:4], y[:4])
    assert plain.min_eps is None and plain.select(plain.success).min_eps is None
    assert AttackResult.concat([plain, plain]).min_eps is None
    with pytest.raises(ValueError, match="min_eps"):
        AttackResult.concat([res, plain])
    called = Minimize(FGSM(HIGH))(clf, x[:4], y[:4])  # __call__ is attack
    assert called.min_eps is not None and torch.equal(called.min_eps, res.min_eps)
    empty = Minimize(FGSM(HIGH)).attack(clf, x[:0], y[:0])  # nothing runs on an empty batch
    assert len(AttackResult.concat([empty, res]).min_eps) == len(res)


# ---------------------------------------------------------------------------- WorstCase
def _no_worse(combined: AttackResult, alone: AttackResult) -> None:
    assert (combined.success | ~alone.success).all()
    assert combined.robust.sum() <= alone.robust.sum()


def test_worst_case_fixed_budget(digits: tuple[Classifier, Tensor, Tensor]):
    clf, x, y = digits
    first = FGSM(0.1).attack(clf, x, y)
    assert 0 < first.success.sum() < len(x)
    res = WorstCase([FGSM(0.1), FGSM(0.05)]).attack(clf, x, y)
    _no_worse(res, first)
    assert res.eps == 0.1 and (res.linf <= 0.1 + 1e-6).all()
    # later attacks run only on the samples not broken yet
    assert torch.equal(res.gradients, torch.where(first.success, 1, 2))
    assert torch.equal(res.x_adv[first.success], first.x_adv[first.success])

    mixed = WorstCase([FGSM(0.1), FGSM(1.5, norm="l2")]).attack(clf, x, y)
    _no_worse(mixed, first)
    assert mixed.norm == "linf" and mixed.eps == 1.5
    assert mixed.success.sum() > first.success.sum()

    scaled = WorstCase([FGSM(0.1), FGSM(0.05)]).attack(clf, x, y, eps=0.2)  # both doubled
    _no_worse(scaled, FGSM(0.2).attack(clf, x, y))


def test_worst_case_with_pgd(digits: tuple[Classifier, Tensor, Tensor]):
    iterative = pytest.importorskip("brittle.attacks.iterative")
    clf, x, y = digits
    first = FGSM(0.1).attack(clf, x, y)
    pgd = iterative.PGD(0.1, steps=10)
    res = WorstCase([FGSM(0.1), pgd]).attack(clf, x, y)
    _no_worse(res, first)
    assert (res.gradients[first.success] == 1).all()
    assert (res.gradients[~first.success] > 1).all()


def test_worst_case_minimal_keeps_the_smallest(digits: tuple[Classifier, Tensor, Tensor]):
    clf, x, y = digits
    x, y = x[:8], y[:8]
    attacks = [Minimize(FGSM(3.0, norm="l2"), tolerance=1e-2), LBFGS(False, binary_steps=3)]
    alone = [a.attack(clf, x, y) for a in attacks]
    worst = Smallest(attacks)
    assert isinstance(worst, MinimizationAttack) and worst.eps is None and worst.norm is Norm.L2
    res = worst.attack(clf, x, y)
    assert torch.equal(res.success, alone[0].success | alone[1].success)
    sizes = torch.stack([torch.where(r.success, r.l2, torch.inf) for r in alone]).amin(0)
    assert torch.allclose(res.l2[res.success], sizes[res.success], atol=1e-5)
    assert torch.equal(res.gradients, alone[0].gradients + alone[1].gradients)


def test_worst_case_declarations_and_errors():
    smallest = Smallest([FGSM(0.1), Minimize(FGSM(0.2, norm="l2"))])
    assert smallest.goals == FGSM.goals and smallest.norms == {Norm.LINF}
    assert smallest.capability is Capability.WHITE_BOX and smallest.eps == 0.2
    assert isinstance(smallest, MinimizationAttack)
    assert isinstance(WorstCase([FGSM(0.1)]), FixedBudgetAttack)
    with pytest.raises(InputError, match="use Smallest"):
        WorstCase([FGSM(0.1), Minimize(FGSM(0.2, norm="l2"))])
    for make in (WorstCase, Smallest):
        with pytest.raises(InputError):
            make([])
        with pytest.raises(InputError):
            make([FGSM(0.1), FGSM(0.1, targeted=True)])
