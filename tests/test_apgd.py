"""APGD and APGD-T (Croce & Hein 2020): the paper's schedule and step-size rule, Algorithm 1
against a literal transcription, the known optimum of a linear model, box and budget, early
stopping and batch independence, bad input, and a differential test against torchattacks.
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import APGD, APGDT, Attack
from brittle.attacks.apgd import Objective, Rows, advance, apgd, checkpoints
from brittle.attacks.iterative import random_start
from brittle.attacks.registry import make_attack
from brittle.attacks.result import AttackResult
from brittle.errors import InputError, ThreatModelError
from brittle.perturbation import within_budget
from brittle.threat import Norm
from helpers import Hyperplane, make_run

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = {"linf": 0.1, "l2": 0.6}
"""Budgets on 8x8 digits at which APGD fools some of the MLP's samples, not all."""


class Counting(nn.Module):
    """Wraps a module; counts the rows of forward passes with and without an input gradient."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows_with_grad = 0
        self.rows = 0

    def forward(self, x: Tensor) -> Tensor:
        self.rows += x.shape[0]
        if torch.is_grad_enabled() and x.requires_grad:
            self.rows_with_grad += x.shape[0]
        out: Tensor = self.inner(x)
        return out


@pytest.fixture(scope="module")
def digits() -> tuple[Counting, Classifier, Tensor, Tensor]:
    """An MLP trained on 1,500 digits, in float64, and 150 held-out digits it gets right."""
    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float64).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(net(x[:1500]), y[:1500]).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        right = net(x[1500:]).argmax(1) == y[1500:]
    module = Counting(net)
    clf = Classifier(module, bounds=(0.0, 1.0))
    clf.check_outputs(x[:8])
    clf.check_gradients(x[:8])  # the door's checks run once per shape, before counts are compared
    return module, clf, x[1500:][right][:150], y[1500:][right][:150]


# ---------------------------------------------------------------------------- the schedule
def paper_checkpoints(n_iter: int) -> list[int]:
    """w_j = ceil(p_j N_iter), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
    0.06), while p_j <= 1: exact rationals, so no ceiling is pushed up by rounding."""
    p = [Fraction(0), Fraction(22, 100)]
    while p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100)) <= 1:
        p.append(p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100)))
    return sorted({math.ceil(q * n_iter) for q in p})


def test_checkpoints_are_the_papers() -> None:
    assert paper_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    for n_iter in (1, 2, 10, 37, 100, 250, 1000):
        w = paper_checkpoints(n_iter)
        windows = checkpoints(n_iter)
        assert list(windows) == w[1:], n_iter
        assert list(windows.values()) == [b - a for a, b in pairwise(w)]


def rows_at_a_checkpoint(increases: list[int], moved: list[bool], halved: list[bool]) -> Rows:
    """Samples of one pixel: x = 0.5 (f = 1.5), x_max = 0.9 (f_max = 2); f_max at the last
    checkpoint 1.5 where ``moved``, else 2."""
    n = len(increases)
    one = torch.ones(n, 1)
    f_max = torch.full((n,), 2.0)
    return Rows(
        pos=torch.arange(n),
        idx=torch.arange(n),
        x0=0.5 * one,
        eps=0.5 * one,
        eta=1.0 * one,
        x=0.5 * one,
        x_prev=0.4 * one,
        grad=0.1 * one,
        f=torch.full((n,), 1.5),
        x_max=0.9 * one,
        grad_max=0.3 * one,
        f_max=f_max,
        increases=torch.tensor(increases),
        f_checked=torch.where(torch.tensor(moved), 1.5, f_max),
        halved=torch.tensor(halved),
    )


def test_the_step_size_rule_is_the_papers() -> None:
    """At w_j = 22 (a stretch of 22 steps, rho = 0.75: 16.5): 16 increases halve (condition 1),
    17 do not; 17 with an unchanged best loss halve unless eta was halved at the last
    checkpoint (condition 2). A halving restarts from x_max with its gradient, and the next
    stretch counts f(x^(23)) > f(x^(22)) with x^(23) = x_max."""
    windows = checkpoints(100)
    assert windows[22] == 22
    moved, halved = [True, True, False, False], [False, False, False, True]
    rows = rows_at_a_checkpoint([16, 17, 17, 17], moved, halved)
    new_x, new_grad, new_f = torch.full((4, 1), 0.7), torch.full((4, 1), -0.2), torch.ones(4)
    advance(rows, 22, windows, 0.75, new_x, new_grad, new_f)
    halve = torch.tensor([True, False, True, False])
    assert torch.equal(rows.halved, halve)
    assert torch.equal(rows.eta.flatten(), torch.where(halve, 0.5, 1.0))
    assert torch.equal(rows.x.flatten(), torch.where(halve, 0.9, 0.7))
    assert torch.equal(rows.grad.flatten(), torch.where(halve, 0.3, -0.2))
    assert torch.equal(rows.f, torch.where(halve, 2.0, 1.0))
    assert torch.equal(rows.x_prev.flatten(), torch.full((4,), 0.5))
    assert torch.equal(rows.f_checked, torch.full((4,), 2.0))
    assert torch.equal(rows.increases, halve.long())  # 1.5 -> 2 (x_max) rose; 1.5 -> 1 fell
    # at w_j = 57 the stretch is 16 steps and rho 16 = 12: 12 increases keep eta, 11 halve
    assert windows[57] == 16
    rows = rows_at_a_checkpoint([12, 11], [True, True], [False, False])
    advance(rows, 57, windows, 0.75, new_x[:2], new_grad[:2], new_f[:2])
    assert torch.equal(rows.halved, torch.tensor([False, True]))
    # between checkpoints nothing halves, whatever the counts; a better point becomes x_max
    rows = rows_at_a_checkpoint([0, 0, 0, 0], [False] * 4, [False] * 4)
    advance(rows, 23, windows, 0.75, new_x, new_grad, torch.tensor([3.0, 1.0, 3.0, 1.0]))
    assert torch.equal(rows.eta.flatten(), torch.ones(4))
    assert torch.equal(rows.x_max.flatten(), torch.tensor([0.7, 0.9, 0.7, 0.9]))
    assert torch.equal(rows.f_max, torch.tensor([3.0, 2.0, 3.0, 2.0]))


# ---------------------------------------------------------------------------- Algorithm 1
def reference_apgd(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    x_start: Tensor,
    eps: float,
    steps: int,
    norm: str,
    rho: float,
) -> tuple[Tensor, list[str]]:
    """Algorithm 1 of Croce & Hein 2020 written out for one sample at a time, without early
    stopping, on the cross-entropy. P_S is brittle's projection: clip to [0, 1], then (L2)
    scale the perturbation down to eps. Returns x_max per sample and the checkpoint events."""
    alpha = 0.75
    w = paper_checkpoints(steps)
    events: list[str] = []

    def f_and_grad(v: Tensor, label: Tensor) -> tuple[float, Tensor]:
        v = v.clone().requires_grad_(True)
        loss = F.cross_entropy(net(v[None]), label[None])
        (g,) = torch.autograd.grad(loss, v)
        return float(loss.detach()), g

    def direction(g: Tensor) -> Tensor:
        return g.sign() if norm == "linf" else g / g.norm().clamp_min(1e-12)

    def project(v: Tensor, x0: Tensor) -> Tensor:
        if norm == "linf":
            return torch.minimum(torch.maximum(v, x0 - eps), x0 + eps).clamp(0, 1)
        d = v.clamp(0, 1) - x0
        size = d.norm()
        return (x0 + d * (eps / size)).clamp(0, 1) if size > eps * (1 + 1e-5) + 1e-6 else x0 + d

    out = []
    for i in range(len(x)):
        x0, label = x[i], y[i]
        eta = 2 * eps
        xs = [x_start[i]]
        f0, g0 = f_and_grad(xs[0], label)
        xs.append(project(xs[0] + eta * direction(g0), x0))
        f1, g1 = f_and_grad(xs[1], label)
        fs, grads = [f0, f1], [g0, g1]
        f_max, x_max, g_max = (f0, xs[0], g0) if f0 >= f1 else (f1, xs[1], g1)
        etas, f_maxs = [eta, eta], [f0, f_max]  # eta^(k) and f_max^(k), k = 0, 1
        for k in range(1, steps):
            z = project(xs[k] + eta * direction(grads[k]), x0)
            x_new = project(xs[k] + alpha * (z - xs[k]) + (1 - alpha) * (xs[k] - xs[k - 1]), x0)
            f_new, g_new = f_and_grad(x_new, label)
            if f_new > f_max:
                f_max, x_max, g_max = f_new, x_new, g_new
            if k in w[1:]:
                before = w[w.index(k) - 1]
                increases = sum(fs[j + 1] > fs[j] for j in range(before, k))
                condition1 = increases < rho * (k - before)
                condition2 = etas[before] == etas[k] and f_maxs[before] == f_maxs[k]
                if k < steps - 1:
                    events.append("1" * condition1 + "2" * condition2 or "-")
                if condition1 or condition2:
                    eta /= 2
                    x_new, f_new, g_new = x_max, f_max, g_max
            xs.append(x_new)
            fs.append(f_new)
            grads.append(g_new)
            etas.append(eta)
            f_maxs.append(f_max)
        out.append(x_max)
    return torch.stack(out), events


@pytest.mark.parametrize("rho", [0.75, 0.2])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_algorithm_1_step_by_step(digits, norm: str, rho: float) -> None:
    """On the samples APGD cannot fool (so it runs every step), its result is x_max of the
    paper's Algorithm 1 from the same start, written out above one sample at a time (float64:
    the two agree to rounding). The checkpoints on the way met condition 1, condition 2 and
    neither."""
    module, clf, x, y = digits
    eps, steps = EPS[norm] / 2, 30
    attack = APGD(eps, steps=steps, norm=norm, rho=rho)
    result = attack(clf, x[:40], y[:40])
    failed = (~result.success).nonzero().squeeze(1)
    assert len(failed) >= 10
    assert bool((result.gradients[failed] == steps).all())
    run = make_run(attack, clf, x[:40], y[:40], torch.full((40,), eps, dtype=torch.float64))
    start = random_start(run, failed, Norm(norm), 0)
    expected, events = reference_apgd(
        module.inner, x[failed], y[failed], start, eps, steps, norm, rho
    )
    torch.testing.assert_close(result.x_adv[failed], expected, atol=1e-9, rtol=0)
    assert "-" in events and any("1" in e for e in events) and any("2" in e for e in events)


class Peak(nn.Module):
    """One input pixel; logits [0, 40 (x - p)^2 + 1]: always class 1, whose cross-entropy is
    highest at x = p."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        s = 40 * (x.flatten(1)[:, 0] - self.p) ** 2 + 1
        return torch.stack([torch.zeros_like(s), s], dim=1)


def test_condition_2_alone_at_the_first_checkpoint() -> None:
    """Started near the peak of the loss, the first step overshoots and no iterate beats x^(0)
    by w_1 = 22, while the loss rises often enough (rho = 0.05) that condition 1 fails: only
    condition 2 holds (eta^(0) = eta^(22) and f_max^(0) = f_max^(22)), and it halves the step.
    APGD's result is the reference's."""
    net = Peak(0.52).double()
    clf = Classifier(net, bounds=(0.0, 1.0))
    x = torch.full((3, 1, 1, 1), 0.5, dtype=torch.float64)
    y = torch.ones(3, dtype=torch.long)
    start = torch.tensor([0.45, 0.5, 0.55], dtype=torch.float64).view(3, 1, 1, 1)
    attack = APGD(0.5, steps=100, rho=0.05)
    run = make_run(attack, clf, x, y, torch.full((3,), 0.5, dtype=torch.float64))
    out, met, _ = apgd(run, Objective("ce", y), torch.arange(3), start, 100, 0.05, Norm.LINF)
    expected, events = reference_apgd(net, x, y, start, 0.5, 100, "linf", 0.05)
    assert not bool(met.any())
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    assert events[:: len(events) // 3] == ["2", "2", "2"]  # each sample's first checkpoint


# ---------------------------------------------------------------------------- the optimum
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_reaches_the_optimum_of_a_linear_model(norm: str) -> None:
    """Logits [0, w.x + b] with a bias too large to flip (b = 25, |w.x| < 25 in the ball): the cross-entropy of class 1 grows
    as w.x falls, so its maximum over the ball is known. Linf: each pixel at its bound,
    x_i - eps sign(w_i), clipped to [0, 1] (x has pixels at 0 and 1, so the box bites). L2
    (x = 0.5, the box out of reach): x - eps w / ||w||."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, generator=g, dtype=torch.float64)
    clf = Classifier(Hyperplane(w, 25.0), bounds=(0.0, 1.0))
    if norm == "linf":
        x = torch.rand(20, 1, 8, 8, generator=g, dtype=torch.float64)
        x[:, :, :2] = x[:, :, :2].round()
        eps = 0.2
        optimum = (x.flatten(1) - eps * w.sign()).clamp(0, 1)
    else:
        x = torch.full((20, 1, 8, 8), 0.5, dtype=torch.float64)
        eps = 1.0
        optimum = x.flatten(1) - eps * w / w.norm()
    y = torch.ones(20, dtype=torch.long)
    result = APGD(eps, steps=100, norm=norm)(clf, x, y)
    assert not bool(result.success.any())
    torch.testing.assert_close(result.x_adv.flatten(1), optimum, atol=1e-4 * eps, rtol=0)


# ---------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("build", [APGD, APGDT], ids=["APGD", "APGDT"])
def test_inside_box_and_budget_and_success_rechecked(digits, norm: str, build: Any) -> None:
    """What _run returns, before the base class projects it, lies in the box and each sample's
    ball (per-sample budgets); the result's success is the model's verdict on x_adv."""
    _, clf, x, y = digits
    eps = torch.full((len(x),), EPS[norm], dtype=torch.float64)
    eps[::3] = EPS[norm] / 4
    attack = build(EPS[norm], steps=20, norm=norm)
    run = make_run(attack, clf, x, y, eps)
    with clf.evaluation():
        raw = attack._run(run)
    assert float(raw.min()) >= 0.0 and float(raw.max()) <= 1.0
    assert bool(within_budget(raw - x, Norm(norm), eps).all())
    result = attack(clf, x, y, eps=eps)
    assert bool(within_budget(result.x_adv - x, Norm(norm), eps).all())
    assert torch.equal(result.success, clf.predict(result.x_adv) != y)
    assert 0 < result.success_rate() < 1


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_targeted_through_the_base(digits, loss: str) -> None:
    """A target t makes APGD ascend -CE(z, t) or the targeted DLR: it reaches the targets."""
    _, clf, x, y = digits
    t = (y + 1 + torch.arange(len(y)) % 9) % 10
    result = APGD(0.3, steps=20, loss=loss)(clf, x, y, target=t)
    assert result.success_rate() > 0.9
    assert torch.equal(result.pred_adv[result.success], t[result.success])


def test_restarts_never_worse_per_sample(digits) -> None:
    """The first of 3 restarts is the single run; the others run on the samples still
    standing and keep their highest loss."""
    _, clf, x, y = digits
    one = APGD(0.05, steps=10)(clf, x, y)
    three = APGD(0.05, steps=10, restarts=3)(clf, x, y)
    assert bool((three.success | ~one.success).all())
    assert torch.equal(three.x_adv[one.success], one.x_adv[one.success])
    assert torch.equal(three.gradients[one.success], one.gradients[one.success])
    failed = ~three.success
    loss = F.cross_entropy(clf.predict_logits(three.x_adv), y, reduction="none")
    before = F.cross_entropy(clf.predict_logits(one.x_adv), y, reduction="none")
    assert bool((loss[failed] >= before[failed] - 1e-12).all())
    assert bool((three.gradients[failed] == 30).all())


# ---------------------------------------------------------------------------- cost
@pytest.mark.parametrize(
    "attack",
    [APGD(0.1, steps=20), APGD(0.1, steps=20, loss="dlr"), APGDT(0.1, steps=20)],
    ids=["ce", "dlr", "T"],
)
def test_early_stopping_counts_only_active_samples(digits, attack: APGD | APGDT) -> None:
    """Each gradient the result counts is a row the module computed with an input gradient.
    APGD's failures took every step, its successes stopped once fooled."""
    module, clf, x, y = digits
    before = module.rows_with_grad
    result = attack(clf, x, y)
    assert module.rows_with_grad - before == int(result.gradients.sum())
    runs = attack.steps * (attack.n_target_classes if isinstance(attack, APGDT) else 1)
    assert bool((result.gradients[~result.success] == runs).all())
    assert bool((result.gradients[result.success] < attack.steps).any())
    assert bool((result.gradients <= runs).all())


@pytest.mark.parametrize("build", [APGD, APGDT], ids=["APGD", "APGDT"])
def test_a_misclassified_sample_costs_no_gradient(digits, build: Any) -> None:
    """Labels the model disagrees with are met at x: x comes back, after one forward pass
    (the clean one, which the base reuses: no second clean pass)."""
    module, clf, x, y = digits
    wrong = (y[:10] + 1) % 10
    rows = module.rows
    result = build(0.1, steps=20)(clf, x[:10], wrong)
    assert bool(result.success.all()) and torch.equal(result.x_adv, x[:10])
    assert bool((result.gradients == 0).all()) and bool((result.queries == 1).all())
    assert module.rows - rows == 20  # the clean pass and the re-check


def in_batches(attack: Attack, clf: Classifier, x: Tensor, y: Tensor, size: int) -> AttackResult:
    parts = []
    for start in range(0, len(x), size):
        ids = torch.arange(start, min(start + size, len(x)))
        parts.append(attack(clf, x[ids], y[ids], ids=ids))
    return AttackResult.concat(parts)


@pytest.mark.parametrize(
    "attack",
    [
        APGD(0.1, steps=15, restarts=2),
        APGD(0.6, norm="l2", steps=15, loss="dlr"),
        APGDT(0.1, steps=15, n_target_classes=3),
    ],
    ids=["linf-restarts", "l2-dlr", "T"],
)
def test_results_do_not_depend_on_the_batch(digits, attack: Attack) -> None:
    """Random starts per sample id, step sizes and counters per sample: a sample gets the
    same result in any batch, at any position; another seed gives other results."""
    _, clf, x, y = digits
    x, y = x[:60], y[:60]
    whole = in_batches(attack, clf, x, y, 60)
    assert bool(whole.success.any()) and not bool(whole.success.all())
    for size in (1, 7):
        split = in_batches(attack, clf, x, y, size)
        torch.testing.assert_close(split.x_adv, whole.x_adv, atol=1e-9, rtol=0)
        assert torch.equal(split.success, whole.success)
        assert torch.equal(split.gradients, whole.gradients)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    shuffled = attack(clf, x[order], y[order], ids=order)
    torch.testing.assert_close(shuffled.x_adv, whole.x_adv[order], atol=1e-9, rtol=0)
    other = type(attack)(**{**attack.config(), "seed": 1})(clf, x, y)
    assert not torch.equal(other.x_adv, whole.x_adv)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: APGD(0.1, loss="margin"), "loss"),
        (lambda: APGD(0.1, loss="hinge"), "loss"),
        (lambda: APGD(0.1, rho=0.0), "rho"),
        (lambda: APGD(0.1, rho=1.0), "rho"),
        (lambda: APGD(0.1, rho=1.5), "rho"),
        (lambda: APGD(0.1, rho=-0.25), "rho"),
        (lambda: APGDT(0.1, rho=1.0), "rho"),
        (lambda: APGD(0.1, steps=0), "steps"),
        (lambda: APGDT(0.1, steps=0), "steps"),
        (lambda: APGD(0.1, steps=2.5), "steps"),
        (lambda: APGD(0.1, restarts=0), "restarts"),
        (lambda: APGDT(0.1, n_target_classes=0), "n_target_classes"),
        (lambda: make_attack("apgd", loss="margin"), "loss"),
    ],
)
def test_bad_parameters_are_refused(build: Any, name: str) -> None:
    with pytest.raises(InputError, match=name):
        build()


def test_unsupported_norms_and_goals_are_refused(digits) -> None:
    _, clf, x, y = digits
    with pytest.raises(ThreatModelError):
        APGD(0.1, norm="l1")
    with pytest.raises(ThreatModelError, match="not 'targeted'"):
        APGDT(0.1, steps=2)(clf, x[:4], y[:4], target=(y[:4] + 1) % 10)


@pytest.mark.parametrize(
    ("classes", "build", "target", "message"),
    [
        (2, lambda: APGD(0.1, loss="dlr"), False, "DLR loss needs at least 3 classes"),
        (3, lambda: APGD(0.1, loss="dlr"), True, "targeted DLR loss needs at least 4 classes"),
        (3, lambda: APGDT(0.1), False, "targeted DLR loss needs at least 4 classes"),
    ],
)
def test_too_few_classes_are_refused_before_any_work(
    classes: int, build: Any, target: bool, message: str
) -> None:
    torch.manual_seed(0)
    net = Counting(nn.Sequential(nn.Flatten(), nn.Linear(16, classes)))
    clf = Classifier(net, bounds=(0.0, 1.0))
    x = torch.rand(6, 1, 4, 4)
    y = torch.zeros(6, dtype=torch.long)
    clf.check_outputs(x)
    clf.check_gradients(x)
    net.rows = 0
    with pytest.raises(InputError, match=message):
        build()(clf, x, y, target=torch.ones(6, dtype=torch.long) if target else None)
    assert net.rows == 0


# ---------------------------------------------------------------------------- torchattacks
@pytest.mark.slow
@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 1.5)], ids=["linf", "l2"])
@pytest.mark.parametrize("variant", ["ce", "dlr", "T"])
def test_at_least_as_strong_as_torchattacks(
    small_lenet: Any, mnist_data: Any, norm: str, eps: float, variant: str, record_property: Any
) -> None:
    """Same model, images, budget, steps and rho; APGD-T with the same 3 targets (the top
    classes after the label). brittle's robust accuracy (the model's verdict on each
    library's returned images) is at most torchattacks' plus one sample: the algorithms are
    the same, but the random starts are not (brittle draws each sample's start from its own
    stream; torchattacks from the global generator), and a sample at the edge of what the
    budget can reach may fall either way from one start."""
    torchattacks = pytest.importorskip("torchattacks")
    model = small_lenet.module.eval()
    clf = small_lenet.classifier
    x, y = mnist_data.x_test[:100].clone(), mnist_data.y_test[:100].clone()
    steps, name = 20, "Linf" if norm == "linf" else "L2"
    if variant == "T":
        ours = APGDT(eps, steps=steps, norm=norm, n_target_classes=3)(clf, x, y).x_adv
        peer = torchattacks.APGDT(model, norm=name, eps=eps, steps=steps, n_classes=4)
    else:
        ours = APGD(eps, steps=steps, norm=norm, loss=variant)(clf, x, y).x_adv
        peer = torchattacks.APGD(model, norm=name, eps=eps, steps=steps, loss=variant)
    theirs = peer(x.clone(), y.clone())
    assert bool(within_budget(theirs - x, Norm(norm), torch.full((100,), eps)).all())

    def robust(x_adv: Tensor) -> int:
        with torch.no_grad():
            return int((model(x_adv).argmax(1) == y).sum())

    clean = robust(x)
    record_property("robust_clean_brittle_torchattacks", (clean, robust(ours), robust(theirs)))
    assert robust(ours) <= robust(theirs) + 1, (robust(ours), robust(theirs), clean)
    assert 0 < robust(ours) < clean  # the budget is neither trivial nor hopeless
