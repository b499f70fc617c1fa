"""SimBA (Guo et al. 2019): score queries only, inside the box and the budget, verified, and
every query counted, per sample."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier, Oracle
from brittle.attacks import SimBA
from brittle.attacks.simba import dct_matrix, frequency_bands
from brittle.errors import InputError
from brittle.perturbation import within_budget
from brittle.threat import Norm
from foundation import Tagged, separated
from helpers import make_run, softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = {"l2": 1.2, "linf": 0.12}
"""Budgets whose balls (L2 radius at most 1.2) hold no point nearer to another sample."""


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, Tensor, Tensor]:
    """The digits softmax model and 24 correct digits more than 2.5 apart in L2."""
    clf, x, y = softmax_on_digits()
    idx = separated(x, 24, 2.5)
    return clf.module, x[idx], y[idx]


def margin(logits: Tensor, labels: Tensor) -> Tensor:
    """log p_l - max_{j != l} log p_j: what untargeted SimBA lowers."""
    logp = logits.log_softmax(1)
    own = logp.gather(1, labels[:, None]).squeeze(1)
    return own - logp.scatter(1, labels[:, None], float("-inf")).amax(1)


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("basis", ["pixel", "dct"])
@pytest.mark.parametrize("targeted", [False, True])
def test_simba_is_inside_verified_and_counted(
    digits: tuple[nn.Module, Tensor, Tensor], targeted: bool, basis: str, norm: str
) -> None:
    module, x, y = digits
    predict = Tagged(module, x)
    model = Oracle(predict, 10, (1, 8, 8), outputs="scores")
    attack = SimBA(eps=EPS[norm], norm=norm, basis=basis, max_queries=150, targeted=targeted)
    result = attack(model, x, y, target="random" if targeted else None)
    x_adv = result.x_adv
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert bool(within_budget(x_adv - x, Norm(norm), EPS[norm]).all())
    with torch.no_grad():
        logits_adv, logits = module(x_adv), module(x)
    pred = logits_adv.argmax(1)
    assert result.target is not None or not targeted
    goal = pred == result.target if result.target is not None else pred != y
    assert torch.equal(result.success, goal)
    assert torch.equal(result.pred_adv, pred)
    assert bool(result.success.any())
    # every row the oracle answered, per sample: the attack's queries and the base's re-check
    assert torch.equal(predict.rows, result.queries + result.verification_queries)
    assert result.verification_queries.tolist() == [1] * len(x)
    assert int(result.gradients.sum()) == 0
    assert bool((result.queries <= 150).all())
    # only steps that lower the objective are taken: it never rises
    labels = result.target if result.target is not None else y
    sign = -1.0 if targeted else 1.0
    assert bool((sign * margin(logits_adv, labels) <= sign * margin(logits, labels) + 1e-6).all())
    assert result.criterion.startswith(
        "TargetedMisclassification" if targeted else "Misclassification"
    )


@pytest.mark.parametrize("basis", ["pixel", "dct"])
def test_a_sample_that_already_meets_the_goal_costs_one_query(
    digits: tuple[nn.Module, Tensor, Tensor], basis: str
) -> None:
    module, x, y = digits
    predict = Tagged(module, x)
    model = Oracle(predict, 10, (1, 8, 8), outputs="scores")
    wrong = y.clone()
    wrong[::2] = (y[::2] + 1) % 10  # the model predicts y: these are misclassified already
    result = SimBA(eps=1.2, basis=basis)(model, x, wrong)
    already = wrong != y
    assert result.queries[already].tolist() == [1] * int(already.sum())
    assert torch.equal(result.x_adv[already], x[already])
    assert bool(result.success[already].all())
    assert bool((result.queries[~already] > 1).all())
    assert torch.equal(predict.rows, result.queries + 1)
    # targeted: a sample already of its target class
    targeted = SimBA(eps=1.2, basis=basis, targeted=True)
    aimed = targeted(model, x[already], wrong[already], target=y[already])
    assert aimed.queries.tolist() == [1] * int(already.sum()) and bool(aimed.success.all())


@pytest.mark.parametrize(("basis", "norm"), [("pixel", "l2"), ("dct", "linf")])
def test_a_classifier_and_an_oracle_of_its_logits_give_the_same_result(
    digits: tuple[nn.Module, Tensor, Tensor], basis: str, norm: str
) -> None:
    module, x, y = digits
    attack = SimBA(eps=EPS[norm], norm=norm, basis=basis, max_queries=100)
    white = attack(Classifier(module), x, y)
    black = attack(Oracle(lambda v: module(v), 10, (1, 8, 8), outputs="scores"), x, y)
    assert torch.equal(white.x_adv, black.x_adv)
    assert torch.equal(white.queries, black.queries)
    assert torch.equal(white.success, black.success)


def test_probability_scores_give_the_same_result_as_logits(
    digits: tuple[nn.Module, Tensor, Tensor],
) -> None:
    module, x, y = digits
    attack = SimBA(eps=1.2, max_queries=100)
    logits = attack(Oracle(lambda v: module(v), 10, (1, 8, 8), outputs="scores"), x, y)
    probs = attack(Oracle(lambda v: module(v).softmax(1), 10, (1, 8, 8), outputs="scores"), x, y)
    assert torch.equal(logits.success, probs.success)
    assert torch.allclose(logits.x_adv, probs.x_adv, atol=1e-6)


def test_the_dct_basis_is_orthonormal_and_tried_low_frequencies_first() -> None:
    for n in (5, 8):
        d = dct_matrix(n, torch.float64, torch.device("cpu"))
        assert torch.allclose(d @ d.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(d[0], torch.full((n,), n**-0.5, dtype=torch.float64))
    clf, x, y = softmax_on_digits()
    attack = SimBA(eps=1.0, basis="dct")
    shape = (1, 8, 8)
    dct = (dct_matrix(8, torch.float64, x.device),) * 2
    q = attack._directions(torch.arange(64), x[:1].double(), dct).flatten(1)
    assert torch.allclose(q @ q.T, torch.eye(64, dtype=torch.float64), atol=1e-12)
    run = make_run(attack, clf, x[:6], y[:6], torch.full((6,), 1.0))
    order = attack._order(run, 0, torch.arange(len(run.x)))  # type: ignore[arg-type]
    bands = frequency_bands(shape)[order]
    assert bool((bands[:, 1:] >= bands[:, :-1]).all())
    assert torch.equal(order.sort(1).values, torch.arange(64).expand(6, 64))
    assert len({tuple(row) for row in order.tolist()}) == 6  # random within the bands


def test_pixel_steps_in_linf_move_a_feature_by_the_whole_budget(
    digits: tuple[nn.Module, Tensor, Tensor],
) -> None:
    module, x, y = digits
    result = SimBA(eps=0.1, norm="linf")(Classifier(module), x, y)
    delta = (result.x_adv - x).flatten()
    changed = delta != 0
    at_box = (result.x_adv.flatten() == 0) | (result.x_adv.flatten() == 1)
    whole = torch.isclose(delta.abs(), torch.tensor(0.1), atol=1e-6)
    assert bool(changed.any())
    assert bool((whole | at_box)[changed].all())


def test_the_dct_basis_needs_images() -> None:
    clf, x, y = softmax_on_digits()
    flat = Oracle(lambda v: clf.module(v), 10, (64,), outputs="scores")
    with pytest.raises(InputError, match="dct basis needs image inputs"):
        SimBA(eps=1.0, basis="dct")(flat, x[:3].flatten(1), y[:3])
