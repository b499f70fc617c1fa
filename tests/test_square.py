"""The Square attack (Andriushchenko et al. 2020): score queries only, its schedule and
windows in closed form, inside the box and the budget, verified, every query counted."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier, Oracle
from brittle.attacks import PGD, Square
from brittle.attacks.square import pseudo_gaussian, square_bump, window_share, window_side
from brittle.errors import InputError
from brittle.perturbation import within_budget
from brittle.threat import Norm
from foundation import Tagged, separated
from helpers import softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = {"l2": 1.2, "linf": 0.12}
"""Budgets whose balls (L2 radius at most 1.2) hold no point nearer to another sample."""


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, Tensor, Tensor]:
    """The digits softmax model and 24 correct digits more than 2.5 apart in L2."""
    clf, x, y = softmax_on_digits()
    idx = separated(x, 24, 2.5)
    return clf.module, x[idx], y[idx]


def test_the_window_shrinks_on_the_papers_schedule_rescaled_to_the_budget() -> None:
    assert [window_share(0.8, i, 10_000) for i in (1, 10)] == [0.8, 0.8]
    assert window_share(0.8, 11, 10_000) == 0.4
    assert window_share(0.8, 51, 10_000) == 0.2
    assert window_share(0.8, 8001, 10_000) == 0.8 / 512
    # on 5,000 iterations every mark comes at half the iteration
    assert window_share(0.8, 5, 5_000) == 0.8 and window_share(0.8, 6, 5_000) == 0.4
    assert window_share(0.8, 4001, 5_000) == 0.8 / 512


def test_the_window_covers_p_of_the_image() -> None:
    assert window_side(0.8, 28, 28, Norm.LINF) == round(math.sqrt(0.8 * 784)) == 25
    assert window_side(1e-6, 28, 28, Norm.LINF) == 1
    assert window_side(1.0, 28, 28, Norm.LINF) == 27  # never the whole image
    assert window_side(1e-6, 28, 28, Norm.L2) == 3
    sides = [window_side(p / 100, 28, 28, Norm.L2) for p in range(1, 101)]
    assert all(s % 2 == 1 and 3 <= s <= 27 for s in sides)
    assert window_side(1.0, 8, 8, Norm.L2) == 7 and window_side(1.0, 9, 9, Norm.L2) == 9


@pytest.mark.parametrize(("rows", "cols"), [(3, 5), (5, 5), (2, 7), (6, 6)])
def test_the_pseudo_gaussian_is_a_unit_pyramid_around_its_centre(rows: int, cols: int) -> None:
    m = pseudo_gaussian(rows, cols)
    assert m.shape == (rows, cols)
    assert math.isclose(float(m.norm()), 1.0, rel_tol=1e-12)
    centre = (rows // 2, cols // 2)
    assert float(m[centre]) == float(m.max())
    # constant on each ring of Chebyshev distance, lower on every ring further out
    i = (torch.arange(rows) - rows // 2).abs()[:, None]
    j = (torch.arange(cols) - cols // 2).abs()[None, :]
    ring = torch.maximum(i, j)
    levels = [m[ring == r] for r in range(int(ring.max()) + 1)]
    assert all(bool((v == v[0]).all()) for v in levels)
    assert all(float(a[0]) > float(b[0]) for a, b in itertools.pairwise(levels))


@pytest.mark.parametrize("side", [3, 5, 7, 25])
def test_the_l2_bump_is_a_positive_and_a_negative_half(side: int) -> None:
    bump = square_bump(side)
    assert math.isclose(float(bump.norm()), 1.0, rel_tol=1e-12)
    assert bool((bump[: side // 2] > 0).all()) and bool((bump[side // 2 :] < 0).all())


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("targeted", [False, True])
def test_square_is_inside_verified_and_counted(
    digits: tuple[nn.Module, Tensor, Tensor], targeted: bool, norm: str
) -> None:
    module, x, y = digits
    predict = Tagged(module, x)
    model = Oracle(predict, 10, (1, 8, 8), outputs="scores")
    attack = Square(eps=EPS[norm], norm=norm, max_queries=150, targeted=targeted)
    result = attack(model, x, y, target="random" if targeted else None)
    x_adv = result.x_adv
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert bool(within_budget(x_adv - x, Norm(norm), EPS[norm]).all())
    with torch.no_grad():
        pred = module(x_adv).argmax(1)
    goal = pred == result.target if result.target is not None else pred != y
    assert torch.equal(result.success, goal)
    assert torch.equal(result.pred_adv, pred)
    assert bool(result.success.any())
    # every row the oracle answered, per sample: the attack's queries and the base's re-check
    assert torch.equal(predict.rows, result.queries + result.verification_queries)
    assert result.verification_queries.tolist() == [1] * len(x)
    assert int(result.gradients.sum()) == 0
    assert bool((result.queries <= 150).all())
    assert torch.equal(result.exhausted, ~result.success & (result.queries == 150))


def test_linf_moves_every_feature_it_changes_to_a_vertex(
    digits: tuple[nn.Module, Tensor, Tensor],
) -> None:
    module, x, y = digits
    result = Square(eps=0.1, max_queries=300)(Classifier(module), x, y)
    delta = (result.x_adv - x).flatten()
    at_box = (result.x_adv.flatten() == 0) | (result.x_adv.flatten() == 1)
    vertex = torch.isclose(delta.abs(), torch.tensor(0.1), atol=1e-6)
    assert bool((vertex | at_box).all())


def test_the_linf_start_is_vertical_stripes(digits: tuple[nn.Module, Tensor, Tensor]) -> None:
    module, x, y = digits
    # two queries: the clean scores and x^0, so the result is the start itself
    result = Square(eps=0.1, max_queries=2)(Classifier(module), x, y)
    sign = (result.x_adv - x).sign()
    inside = (result.x_adv > 0) & (result.x_adv < 1)
    for column in range(8):
        signs = sign[:, 0, :, column][inside[:, 0, :, column]]
        per_sample = sign[:, 0, :, column].masked_fill(~inside[:, 0, :, column], 0)
        assert bool((signs != 0).all())
        # within a column every unclipped feature moves the same way
        assert bool((per_sample.amax(1) * per_sample.amin(1) >= 0).all())


def test_l2_updates_keep_the_perturbation_on_the_sphere_away_from_the_box() -> None:
    clf, _, _ = softmax_on_digits()
    x = 0.35 + 0.3 * torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = clf.predict(x)
    result = Square(eps=0.4, norm="l2", max_queries=200)(clf, x, y)
    assert bool(((result.x_adv > 0) & (result.x_adv < 1)).all())  # the box never clipped
    sizes = (result.x_adv - x).flatten(1).norm(dim=1)
    assert torch.allclose(sizes, torch.full_like(sizes, 0.4), atol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_breaks_most_of_what_pgd_breaks(
    digits: tuple[nn.Module, Tensor, Tensor], norm: str
) -> None:
    module, x, y = digits
    clf = Classifier(module)
    eps = {"linf": 0.1, "l2": 0.9}[norm]
    white = PGD(eps, norm=norm, steps=40)(clf, x, y)
    black = Square(eps, norm=norm, max_queries=1000)(clf, x, y)
    assert int(white.success.sum()) >= len(x) // 3
    assert int((black.success & white.success).sum()) >= 0.9 * int(white.success.sum())


def test_a_sample_that_already_meets_the_goal_costs_one_query(
    digits: tuple[nn.Module, Tensor, Tensor],
) -> None:
    module, x, y = digits
    wrong = y.clone()
    wrong[::2] = (y[::2] + 1) % 10
    result = Square(eps=0.1)(Classifier(module), x, wrong)
    already = wrong != y
    assert result.queries[already].tolist() == [1] * int(already.sum())
    assert torch.equal(result.x_adv[already], x[already])


def test_a_classifier_and_an_oracle_of_its_logits_give_the_same_result(
    digits: tuple[nn.Module, Tensor, Tensor],
) -> None:
    module, x, y = digits
    attack = Square(eps=0.1, max_queries=100)
    white = attack(Classifier(module), x, y)
    black = attack(Oracle(lambda v: module(v), 10, (1, 8, 8), outputs="scores"), x, y)
    assert torch.equal(white.x_adv, black.x_adv)
    assert torch.equal(white.queries, black.queries)


def test_square_needs_images() -> None:
    clf, x, y = softmax_on_digits()
    flat = Oracle(lambda v: clf.module(v), 10, (64,), outputs="scores")
    with pytest.raises(InputError, match=r"image inputs.*use simba"):
        Square(eps=0.1)(flat, x[:3].flatten(1), y[:3])
