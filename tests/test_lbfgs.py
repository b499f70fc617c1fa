"""Box-constrained L-BFGS (Szegedy et al. 2013) on softmax regression of sklearn's digits."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import LBFGS, AttackResult, MinimizationAttack
from brittle.errors import InputError, ModelError
from brittle.threat import Norm
from helpers import softmax_on_digits

Digits = tuple[Classifier, Tensor, Tensor, Tensor]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> Digits:
    """Softmax regression on digits (/16, (N, 1, 8, 8)); 12 correct samples and targets."""
    clf, x, y = softmax_on_digits()
    x, y = x[:12], y[:12]
    return clf, x, y, (y + 1 + torch.arange(len(y)) % 9) % 10


@pytest.fixture(scope="module")
def targeted(digits: Digits) -> dict[int, AttackResult]:
    """Targeted results after 1 and 4 steps of the search over c."""
    clf, x, y, t = digits
    return {steps: LBFGS(binary_steps=steps).attack(clf, x, y, t) for steps in (1, 4)}


def test_targeted_reaches_targets_in_the_box(digits: Digits, targeted: dict[int, AttackResult]):
    clf, _, _, t = digits
    res = targeted[4]
    assert res.success.float().mean() >= 0.9
    assert torch.equal(res.success, clf.predict(res.x_adv) == t)  # re-checked by the model
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert (res.l2[res.success] > 0).all() and res.norm == "l2"
    assert (res.gradients[res.success] > 0).all() and (res.queries > res.gradients).all()


def test_more_steps_never_give_a_larger_perturbation(targeted: dict[int, AttackResult]):
    few, more = targeted[1], targeted[4]
    assert (more.success | ~few.success).all()
    assert (more.l2[few.success] <= few.l2[few.success] + 1e-6).all()
    # and the search goes the right way: raising c from a success shrinks r
    both = few.success & more.success
    assert more.l2[both].mean() < 0.95 * few.l2[both].mean()


def test_untargeted_and_budget(digits: Digits):
    clf, x, y, _ = digits
    res = LBFGS(targeted=False, binary_steps=3).attack(clf, x, y)
    assert res.success.all() and (clf.predict(res.x_adv) != y).all()
    budget = float(res.l2.median())
    capped = LBFGS(targeted=False, binary_steps=3, eps=budget).attack(clf, x, y)
    assert (capped.l2 <= budget * (1 + 1e-5)).all() and capped.eps == budget
    assert 0 < capped.success.sum() < len(x)
    assert torch.equal(capped.x_adv[~capped.success], x[~capped.success])


def test_failures_and_fooled_samples_unchanged(digits: Digits):
    clf, x, y, t = digits
    for attack in (LBFGS(eps=1e-3), LBFGS(binary_steps=1, initial_const=1e4)):
        res = attack.attack(clf, x, y, t)
        assert not res.success.any() and torch.equal(res.x_adv, x)
    wrong = (y + 1) % 10  # the model already disagrees with these labels
    res = LBFGS(targeted=False).attack(clf, x, wrong)
    assert res.success.all() and torch.equal(res.x_adv, x)
    assert (res.gradients == 0).all()


def test_batched_equals_per_sample(digits: Digits):
    """Each sample has its own L-BFGS-B: batching only shares the forward passes."""
    clf, x, y, t = digits
    attack = LBFGS(binary_steps=2)
    batch = attack.attack(clf, x[:4], y[:4], t[:4])
    alone = AttackResult.concat(
        [attack.attack(clf, x[i : i + 1], y[i : i + 1], t[i : i + 1]) for i in range(4)]
    )
    assert torch.equal(batch.success, alone.success)
    assert torch.allclose(batch.l2, alone.l2, rtol=1e-3, atol=1e-4)


def test_model_error_reaches_the_caller(digits: Digits):
    """An error in a batched evaluation is raised, not left waiting in the optimiser threads."""
    clf, x, y, t = digits

    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = clf.module
            self.calls = 0

        def forward(self, inputs: Tensor) -> Tensor:
            self.calls += 1
            if self.calls > 5:
                raise RuntimeError("model broke")
            out: Tensor = self.inner(inputs)
            return out

    failing = Classifier(Failing())
    errors: list[BaseException] = []

    def run() -> None:
        try:
            LBFGS().attack(failing, x, y, t)
        except ModelError as err:  # the model's own exception, named as the model's
            errors.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and len(errors) == 1 and "model broke" in str(errors[0])


def test_declarations_and_validation():
    attack = LBFGS()
    assert attack.norm is Norm.L2 and attack.norms == {Norm.L2}
    assert isinstance(attack, MinimizationAttack)
    assert attack.targeted and attack.eps is None
    with pytest.raises(InputError):
        LBFGS(binary_steps=0)
    with pytest.raises(InputError):
        LBFGS(initial_const=0.0)
    with pytest.raises(InputError):
        LBFGS(eps=-1.0)
