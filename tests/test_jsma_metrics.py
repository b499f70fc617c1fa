"""The JSMA analyses of Papernot et al. 2016 (sections 5 and 6): source/target matrices,
success at smaller budgets, hardness, adversarial distance, robustness, the detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from brittle import Classifier
from brittle.attacks import JSMA
from brittle.errors import InputError
from brittle.metrics import (
    adjacent_pixel_score,
    adversarial_distance,
    detector_roc,
    hardness,
    robustness,
    source_target_matrices,
    success_at_budgets,
    success_curve,
)
from brittle.perturbation import max_features
from helpers import softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")

NAN = float("nan")


# ---------------------------------------------------------------------- source/target matrices
def test_matrices_equal_hand_counts() -> None:
    source = [0, 0, 0, 0, 1, 2, 2]
    target = [1, 1, 1, 2, 0, 1, 1]
    success = [True, False, True, False, True, False, False]
    distortion = [0.1, NAN, 0.3, 0.5, 0.05, 0.2, 0.2]  # NaN on a failure is ignored
    mats = source_target_matrices(
        torch.tensor(source), np.array(target), torch.tensor(success), distortion, 3
    )
    want_rate = np.array([[NAN, 2 / 3, 0.0], [1.0, NAN, NAN], [NAN, 0.0, NAN]])
    want_dist = np.array([[NAN, 0.2, NAN], [0.05, NAN, NAN], [NAN, NAN, NAN]])
    np.testing.assert_allclose(mats.success_rate, want_rate)
    np.testing.assert_allclose(mats.mean_distortion, want_dist)
    np.testing.assert_array_equal(mats.attempts, [[0, 3, 1], [1, 0, 0], [0, 2, 0]])
    assert np.isnan(np.diag(mats.success_rate)).all()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0, 1], [1], [True, True], [0.1, 0.1], 2), "lengths differ"),
        (([0, 3], [1, 0], [True, True], [0.1, 0.1], 3), "num_classes is 3"),
        (([], [], [], [], 3), "empty"),
        (([0.0], [1], [True], [0.1], 3), "integer class"),
        (([0], [1], [True], [2.0], 3), r"\[0, 1\]"),
    ],
)
def test_matrices_refuse_bad_input(args: tuple, match: str) -> None:
    with pytest.raises(InputError, match=match):
        source_target_matrices(*args)


# ---------------------------------------------------------------------- success at budgets
def test_success_at_budgets_follows_the_l0_rounding() -> None:
    changed = np.array([0, 3, 6, 7, 2])
    success = np.array([True, True, True, True, False])
    us = [0.05, 0.1, 0.11, 0.5]
    at = success_at_budgets(changed, success, 64, us, 0.5)
    assert at.shape == (4, 5) and at.dtype == np.bool_
    for row, u in zip(at, us, strict=True):
        np.testing.assert_array_equal(row, success & (changed <= max_features(u, 64)))
    np.testing.assert_array_equal(at[-1], success)


@pytest.mark.parametrize(
    ("us", "run", "match"),
    [
        ([0.1, 0.4], 0.3, "exceed run_upsilon"),
        ([0.0], 0.3, r"\(0, 1\]"),
        ([0.1], 1.5, r"\(0, 1\]"),
        ([], 0.3, "non-empty"),
    ],
)
def test_success_at_budgets_refuses_bad_budgets(us: list, run: float, match: str) -> None:
    with pytest.raises(InputError, match=match):
        success_at_budgets([1, 2], [True, True], 64, us, run)


def test_success_at_budgets_refuses_fractions_and_bad_counts() -> None:
    with pytest.raises(InputError, match="whole counts"):
        success_at_budgets([0.1, 0.2], [True, True], 64, [0.1], 0.3)
    with pytest.raises(InputError, match="num_features"):
        success_at_budgets([1, 65], [True, True], 64, [0.1], 0.3)
    with pytest.raises(InputError, match="lengths differ"):
        success_at_budgets([1, 2, 3], [True, True], 64, [0.1], 0.3)


def test_one_jsma_run_gives_the_success_of_separate_runs() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:40], y[:40]
    t = (y + 1) % 10
    run_u, us = 0.3, [0.05, 0.1, 0.2]
    full = JSMA(run_u, theta=1.0, targeted=True)(clf, x, y, t)
    changed = (full.x_adv != x).flatten(1).sum(1)
    at = success_at_budgets(changed, full.success, 64, [*us, run_u], run_u)
    np.testing.assert_array_equal(at[-1], full.success.cpu().numpy())
    assert (at[:-1] <= at[1:]).all()  # monotone in Upsilon
    for row, u in zip(at, us, strict=False):
        separate = JSMA(u, theta=1.0, targeted=True)(clf, x, y, t)
        np.testing.assert_array_equal(row, separate.success.cpu().numpy(), err_msg=f"u={u}")
    # the comparison has teeth: every budget changes the outcome
    rates = at.mean(1)
    assert rates[0] > 0 and (np.diff(rates) > 0).all()


# ---------------------------------------------------------------------- hardness
def _trapezoid(tau: list[float], eps: list[float]) -> float:
    return sum((tau[i + 1] - tau[i]) * (eps[i] + eps[i + 1]) / 2 for i in range(len(tau) - 1))


def _hardness_case() -> tuple[list[int], list[int], list[int], list[bool]]:
    # M = 10, budgets 0.1 .. 0.4 allow 1 .. 4 features
    rows = [
        *[(0, 1, c, True) for c in (1, 2, 3, 4)],  # easy pair
        *[(1, 0, c, True) for c in (1, 3, 4, 4)],  # needs more distortion
        (2, 0, 2, False),  # attempted, never succeeds
        (2, 0, 3, False),
        (2, 1, 3, True),  # a single success rate over the sweep
        (2, 1, 1, False),
    ]
    s, t, c, ok = (list(col) for col in zip(*rows, strict=True))
    return s, t, c, ok


def test_hardness_is_the_trapezoid_of_distortion_over_success_rate() -> None:
    s, t, c, ok = _hardness_case()
    us = [0.4, 0.1, 0.3, 0.2]  # any order: sorted inside
    h = hardness(s, t, c, ok, 10, us, 0.4, 3)
    # every curve starts at the sweep's origin (tau 0, eps 0)
    easy = _trapezoid([0, 0.25, 0.5, 0.75, 1.0], [0, 0.1, 0.15, 0.2, 0.25])
    # (1, 0): u = 0.1 and 0.2 give the same point (tau 0.25, eps 0.1): no width between them
    hard = _trapezoid([0, 0.25, 0.25, 0.5, 1.0], [0, 0.1, 0.1, 0.2, 0.3])
    assert h[0, 1] == pytest.approx(easy)
    assert h[1, 0] == pytest.approx(hard)
    assert h[1, 0] > h[0, 1]
    assert h[2, 1] == pytest.approx(0.5 * 0.5 * 0.3)  # tau 0.5 at eps 0.3 from u = 0.3 on
    assert np.isnan(h[2, 0])  # never succeeds
    assert np.isnan(np.diag(h)).all() and np.isnan(h[0, 2]) and np.isnan(h[1, 2])
    curve = success_curve(s, t, c, ok, 10, us, 0.4, 3)
    np.testing.assert_allclose(curve.upsilons, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(curve.success_rate[:, 0, 1], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.mean_distortion[:, 1, 0], [0.1, 0.1, 0.2, 0.3])


# ---------------------------------------------------------------------- adversarial distance
def _linear(m: int, k: int, seed: int = 0) -> tuple[Classifier, torch.Tensor]:
    torch.manual_seed(seed)
    layer = nn.Linear(m, k).double()
    return Classifier(layer, bounds=(0, 1)), layer.weight.detach()


@pytest.mark.parametrize("increase", [True, False])
def test_adversarial_distance_on_a_linear_model_equals_the_hand_formula(increase: bool) -> None:
    m, k, n = 12, 4, 9
    clf, w = _linear(m, k)
    x = torch.rand(n, m, dtype=torch.float64)
    t = torch.arange(n) % k
    a = adversarial_distance(clf, x, t, increase=increase, batch_size=4)
    alpha = w[t]  # dF_t/dX: the weight row of t
    beta = w.sum(0) - w[t]  # sum over the other classes
    valid = (alpha > 0) & (beta < 0) if increase else (alpha < 0) & (beta > 0)
    want = 1 - valid.double().mean(1)
    torch.testing.assert_close(a, want)
    assert ((a >= 0) & (a <= 1)).all()
    assert robustness(a) == pytest.approx(float(want.min()))
    assert robustness(a.numpy()) == robustness(a)


def test_adversarial_distance_of_probabilities_needs_only_alpha() -> None:
    # sum_j dp_j/dX = 0, so beta = -alpha and S[i] > 0 iff alpha_i > 0 (increasing)
    m, k, n = 10, 3, 6
    clf, w = _linear(m, k, seed=1)
    x = torch.rand(n, m, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 2, 1, 0])
    p = clf.predict_logits(x).softmax(1)
    alpha = p[torch.arange(n), t, None] * (w[t] - p @ w)
    want = 1 - (alpha > 0).double().mean(1)
    torch.testing.assert_close(adversarial_distance(clf, x, t, use_logits=False), want)


def test_adversarial_distance_refuses_bad_input() -> None:
    clf, _ = _linear(5, 3)
    x = torch.rand(2, 5, dtype=torch.float64)
    with pytest.raises(InputError, match="Classifier"):
        adversarial_distance(nn.Linear(5, 3), x, torch.tensor([0, 1]))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="3 classes"):
        adversarial_distance(clf, x, torch.tensor([0, 3]))
    with pytest.raises(InputError, match="shape"):
        adversarial_distance(clf, x, torch.tensor([0]))
    with pytest.raises(InputError, match="empty"):
        adversarial_distance(clf, x[:0], torch.tensor([], dtype=torch.long))
    with pytest.raises(InputError, match="empty"):
        robustness(np.array([]))


# ---------------------------------------------------------------------- the detector
def test_adjacent_pixel_score_in_closed_form() -> None:
    h, w, lo, hi = 6, 5, 0.2, 0.9
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    checker = torch.where((i + j) % 2 == 0, hi, lo).double()
    ramp = (j * 0.1).double()  # horizontal steps of 0.1, no vertical change
    images = torch.stack([torch.full((h, w), 0.4, dtype=torch.float64), checker, ramp])
    score = adjacent_pixel_score(images)  # (N, H, W)
    pairs = h * (w - 1) + (h - 1) * w
    want = torch.tensor([0.0, (hi - lo) ** 2, 0.01 * h * (w - 1) / pairs], dtype=torch.float64)
    torch.testing.assert_close(score, want)
    # channels count as separate images of the same size; numpy in, same answer
    three = images[:, None].expand(-1, 3, -1, -1).numpy()
    torch.testing.assert_close(adjacent_pixel_score(three), want)
    with pytest.raises(InputError, match="adjacent"):
        adjacent_pixel_score(torch.zeros(2, 1, 1, 1))
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        adjacent_pixel_score(torch.zeros(2, 4))


def test_detector_roc() -> None:
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(50, generator=g)
    roc = detector_roc(clean, torch.rand(40, generator=g) + 2)
    assert roc.auc == 1.0
    assert roc.fpr[0] == 0 and roc.tpr[-1] == 1 and len(roc.fpr) == len(roc.thresholds)
    rng = np.random.default_rng(0)
    same = detector_roc(rng.normal(size=2000), rng.normal(size=2000))
    assert abs(same.auc - 0.5) < 0.05
    assert detector_roc(np.ones(5), np.ones(7)).auc == 0.5  # ties count one half
    assert detector_roc(clean + 2, clean).auc == 0.0  # higher score = more adversarial
    with pytest.raises(InputError, match="empty"):
        detector_roc([], [1.0])
