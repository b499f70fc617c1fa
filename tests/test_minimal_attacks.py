"""DeepFool and Carlini-Wagner L2: exact on linear models, verified on a small trained model."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

import brittle.attacks.cw as cw_module
import brittle.attacks.deepfool as deepfool_module
from brittle.attacks import AttackResult, CarliniWagnerL2, DeepFool
from brittle.classifier import Classifier
from brittle.errors import InputError, ThreatModelError
from helpers import Hyperplane

pytestmark = pytest.mark.usefixtures("one_thread")


Linear = tuple[Classifier, Hyperplane, Tensor, Tensor]
Digits = tuple[Classifier, Tensor, Tensor]


@pytest.fixture(scope="module")
def linear() -> Linear:
    """A linear binary model and inputs in [0.3, 0.7], 0.1 to 0.3 from the boundary (in L2)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, generator=g)
    w /= w.norm()
    x = 0.3 + 0.4 * torch.rand(20, 64, generator=g)
    target = (0.1 + 0.2 * torch.rand(20, generator=g)) * torch.where(
        torch.arange(20) % 2 == 0, 1, -1
    )
    x += (target - x @ w)[:, None] * w  # put each point at signed distance `target`
    model = Hyperplane(w, 0.0)
    x = x.view(-1, 1, 8, 8)
    assert float(x.min()) > 0.1 and float(x.max()) < 0.9
    y = (model.score(x) > 0).long()
    return Classifier(model), model, x, y


@pytest.fixture(scope="module")
def digits() -> Digits:
    """A small MLP trained on sklearn's digits (8x8, in [0, 1]); 200 held-out samples."""
    data = load_digits()
    x = torch.tensor(data.data / 16, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[:1500]), y[:1500]).backward()
        opt.step()
    net.eval()
    clf = Classifier(net)
    assert float((clf.predict(x[1500:]) == y[1500:]).float().mean()) > 0.85
    return clf, x[1500:1700], y[1500:1700]


def assert_verified(clf: Classifier, x: Tensor, y: Tensor, result: AttackResult) -> None:
    """Success is the model's verdict on x_adv; failures come back unchanged; all in the box."""
    pred = clf.predict(result.x_adv)
    assert torch.equal(result.success, pred != y)
    assert torch.equal(result.x_adv[~result.success], x[~result.success])
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0


# ----------------------------------------------------------------------------- DeepFool


@pytest.mark.parametrize(("norm", "dual"), [("l2", 2), ("linf", 1)])
def test_deepfool_is_exact_on_a_linear_model(linear: Linear, norm: str, dual: int) -> None:
    clf, model, x, y = linear
    result = DeepFool(norm=norm, overshoot=0.02)(clf, x, y)
    assert bool(result.success.all())
    distance = model.score(x).detach().abs() / model.w.detach().norm(p=dual)
    size = result.l2 if norm == "l2" else result.linf
    # exact up to the 1e-4 (of the box width) each step adds to land strictly past the boundary
    torch.testing.assert_close(size, 1.02 * distance, rtol=0, atol=1.02e-4 + 1e-6)
    assert bool((size > 1.02 * distance).all())
    # the step is along -sign(f) w (L2) or -sign(f) sign(w) (Linf): one linearisation suffices
    delta = (result.x_adv - x).flatten(1)
    w = model.w.detach()
    direction = w if norm == "l2" else w.sign()
    sign = torch.where(y == 1, -1.0, 1.0)[:, None]
    torch.testing.assert_close(
        delta / size[:, None],
        sign * direction / direction.norm(p=2 if norm == "l2" else float("inf")),
        rtol=1e-4,
        atol=1e-5,
    )
    assert torch.equal(result.gradients, torch.ones_like(result.gradients))  # 1 candidate x 1 step
    assert torch.equal(result.queries, torch.full_like(result.queries, 3))  # clean, step, check


def test_deepfool_overshoot_multiplies_the_total(
    digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    clf, x, y = digits
    correct = (clf.predict(x) == y).nonzero().squeeze(1)
    steps: list[Tensor] = []
    real_step = deepfool_module.deepfool_step

    def recording_step(*args: Any, **kwargs: Any) -> Tensor:
        steps.append(real_step(*args, **kwargs))
        return steps[-1]

    monkeypatch.setattr(deepfool_module, "deepfool_step", recording_step)
    multi_step = 0
    for i in correct[:20].tolist():
        steps.clear()
        result = DeepFool(overshoot=0.5)(clf, x[i : i + 1], y[i : i + 1])
        assert bool(result.success.all())
        r_tot = torch.stack(steps).sum(0)
        torch.testing.assert_close(result.x_adv, (x[i] + 1.5 * r_tot).clamp(0, 1))
        multi_step += len(steps) > 1
    assert multi_step >= 3  # the property is checked on samples that took several steps


def test_deepfool_on_a_trained_model(digits: Digits) -> None:
    clf, x, y = digits
    correct = clf.predict(x) == y
    for norm in ("l2", "linf"):
        result = DeepFool(norm=norm)(clf, x, y)
        assert_verified(clf, x, y, result)
        assert float(result.success[correct].float().mean()) >= 0.99
        assert bool(result.success[~correct].all())  # misclassified already: zero perturbation
        assert float(result.l2[~correct].max()) == 0.0
        # 9 candidates (10 classes, the label excluded): 9 gradients per iteration, 2 queries
        assert bool((result.gradients % 9 == 0).all())
        iterations = result.gradients // 9
        assert torch.equal(result.queries, 1 + 2 * iterations)
        assert bool((iterations[correct] >= 1).all())


def test_deepfool_failures_are_returned_unchanged(digits: Digits) -> None:
    clf, x, y = digits
    for attack in (DeepFool(steps=1, overshoot=0.0), DeepFool(eps=0.2)):
        result = attack(clf, x, y)
        assert_verified(clf, x, y, result)
        assert 0 < int((~result.success).sum()) < len(x)
    assert float(result.l2.max()) <= 0.2 * (1 + 1e-5)  # the eps cap


def test_deepfool_rejects_bad_parameters() -> None:
    with pytest.raises(InputError):
        DeepFool(steps=0)
    with pytest.raises(InputError):
        DeepFool(overshoot=-0.1)
    with pytest.raises(ThreatModelError):
        DeepFool(norm="l1")


# ----------------------------------------------------------------------------- Carlini-Wagner


def test_cw_on_a_linear_model_finds_the_distance(linear: Linear) -> None:
    clf, model, x, y = linear
    result = CarliniWagnerL2(steps=200, binary_steps=9, lr=0.01)(clf, x, y)
    assert bool(result.success.all())
    distance = model.score(x).detach().abs() / model.w.detach().norm()
    assert bool((result.l2 >= distance * (1 - 1e-4)).all())  # nothing beats the exact minimum
    assert bool((result.l2 <= distance * 1.05).all())


def test_cw_on_a_trained_model_from_a_small_constant(digits: Digits) -> None:
    clf, x, y = digits
    correct = clf.predict(x) == y
    result = CarliniWagnerL2(steps=200, binary_steps=5, initial_const=0.01)(clf, x, y)
    assert_verified(clf, x, y, result)
    assert float(result.success[correct].float().mean()) >= 0.95
    assert float(result.l2[~correct].max()) == 0.0  # met the goal already: returned as is
    assert int(result.gradients[~correct].max()) == 0
    assert int(result.gradients.max()) <= 5 * 200


def test_cw_saturated_searches_stop_without_changing_the_result(
    digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    clf, x, y = digits
    x, y = x[:100], y[:100]
    # a weak setting (lr 0.01, c0 1e-3, 30 steps): many searches fail
    attack = CarliniWagnerL2(steps=30, lr=0.01, initial_const=1e-3)
    pruned = attack(clf, x, y)
    monkeypatch.setattr(cw_module, "_SATURATION", 0.0)  # never saturated: all 9 rounds
    full = attack(clf, x, y)
    assert 0.1 < float(full.success.float().mean()) < 0.9
    assert torch.equal(pruned.success, full.success)
    # equal up to float rounding: pruning changes the batch the matrix products run on
    torch.testing.assert_close(pruned.x_adv, full.x_adv, rtol=0, atol=1e-5)
    assert int(pruned.gradients.sum()) < 0.8 * int(full.gradients.sum())


def test_cw_search_over_c() -> None:
    """After a round: success lowers upper to c, failure raises lower to c; c is bisected once
    bracketed, else multiplied by 10; a search ends once upper <= 1.1 lower."""
    search = cw_module._Search(
        idx=torch.arange(3),
        const=torch.tensor([1.0, 1.0, 0.01]),
        lower=torch.tensor([0.95, 0.5, 0.0]),
        upper=torch.full((3,), math.inf),
    )
    over = search.update(torch.tensor([True, True, False]), torch.zeros(3, dtype=torch.bool))
    assert over.tolist() == [True, False, False]  # [0.95, 1] is within 10%; [0.5, 1] is not
    assert search.upper[:2].tolist() == [1.0, 1.0] and search.lower[2] == 0.01
    assert search.const.tolist() == pytest.approx([0.975, 0.75, 0.1])


def test_cw_failures_are_returned_unchanged(digits: Digits) -> None:
    clf, x, y = digits
    correct = clf.predict(x) == y
    result = CarliniWagnerL2(steps=1, binary_steps=1)(clf, x, y)
    assert_verified(clf, x, y, result)
    assert torch.equal(result.success, ~correct)  # one step evaluates only the start, x itself
    assert torch.equal(result.x_adv, x)


def test_cw_targeted_reaches_the_targets(digits: Digits) -> None:
    clf, x, y = digits
    x, y = x[:100], y[:100]
    target = (y + 1 + torch.arange(len(y)) % 9) % 10
    result = CarliniWagnerL2(targeted=True, lr=0.05, binary_steps=6, initial_const=0.01)(
        clf, x, y, target=target
    )
    assert float(result.success.float().mean()) >= 0.95
    assert torch.equal(result.success, clf.predict(result.x_adv) == target)
    assert torch.equal(result.x_adv[~result.success], x[~result.success])


def test_cw_confidence_gives_a_margin(digits: Digits) -> None:
    clf, x, y = digits
    x, y = x[:50], y[:50]
    correct = clf.predict(x) == y
    result = CarliniWagnerL2(confidence=2.0, lr=0.05, binary_steps=6, initial_const=0.1)(clf, x, y)
    logits = clf.predict_logits(result.x_adv)
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    hits = result.success & correct
    assert float(hits.float().sum()) >= 0.9 * float(correct.float().sum())
    assert bool((other[hits] - true[hits] > 2.0 - 1e-4).all())


def test_cw_median_l2_no_worse_than_foolbox(digits: Digits) -> None:
    foolbox = pytest.importorskip("foolbox")
    clf, x, y = digits
    x, y = x[:100], y[:100]
    ours = CarliniWagnerL2(steps=100, binary_steps=5, initial_const=0.01)(clf, x, y)
    model = foolbox.PyTorchModel(clf.module, bounds=(0, 1))
    attack = foolbox.attacks.L2CarliniWagnerAttack(
        binary_search_steps=5, steps=100, stepsize=0.01, initial_const=0.01
    )
    _, theirs, _ = attack(model, x, y, epsilons=None)
    # Foolbox returns an all-zero image where it found nothing: not a success
    found = (theirs.flatten(1) != 0).any(1) & (clf.predict(theirs) != y)
    correct = clf.predict(x) == y
    assert float(ours.success[correct].float().mean()) >= float(found[correct].float().mean())
    both = ours.success & found & correct
    assert int(both.sum()) >= 50
    their_l2 = (theirs - x).flatten(1).norm(dim=1)
    assert float(ours.l2[both].median()) <= 1.05 * float(their_l2[both].median())


def test_cw_rejects_bad_parameters() -> None:
    with pytest.raises(InputError):
        CarliniWagnerL2(initial_const=0.0)
    with pytest.raises(InputError):
        CarliniWagnerL2(binary_steps=0)
    with pytest.raises(InputError):
        CarliniWagnerL2(confidence=-1.0)
