"""JSMA (Papernot et al. 2016): the exact pair search, the budget, the stop conditions."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import JSMA
from brittle.attacks.jsma import best_pair, best_single, saliency_map, saliency_terms
from brittle.perturbation import max_features
from helpers import make_run, softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_pair(a: Tensor, b: Tensor, domain: Tensor, increase: bool) -> tuple[float, bool]:
    """The best pair saliency of one row by enumerating every pair."""
    sign = 1.0 if increase else -1.0
    best = float("-inf")
    for p, q in itertools.combinations(range(len(a)), 2):
        if not (domain[p] and domain[q]):
            continue
        alpha, beta = float(a[p] + a[q]), float(b[p] + b[q])
        if sign * alpha > 0 and sign * beta < 0:
            best = max(best, -alpha * beta)
    return best, best > float("-inf")


small_rows = st.integers(2, 12).flatmap(
    lambda m: st.tuples(
        st.lists(st.integers(-3, 3), min_size=m, max_size=m),
        st.lists(st.integers(-3, 3), min_size=m, max_size=m),
        st.lists(st.booleans(), min_size=m, max_size=m),
    )
)
"""Small integer-valued rows (many ties, the hard case of a Pareto search) and a domain."""


@settings(max_examples=300, deadline=None)
@given(small_rows, st.booleans(), st.booleans())
def test_the_pair_search_equals_a_brute_force_argmax(
    row: tuple[list[int], list[int], list[bool]], increase: bool, tiny_chunks: bool
) -> None:
    import brittle.attacks.jsma as jsma

    a = torch.tensor([row[0]], dtype=torch.float64) / 2
    b = torch.tensor([row[1]], dtype=torch.float64) / 3
    domain = torch.tensor([row[2]])
    chunk = jsma.PAIR_CHUNK_ELEMENTS
    jsma.PAIR_CHUNK_ELEMENTS = 3 if tiny_chunks else chunk  # many chunks in the final search
    try:
        pick, found = best_pair(a, b, domain, increase, paper=True)
    finally:
        jsma.PAIR_CHUNK_ELEMENTS = chunk
    want, exists = brute_pair(a[0], b[0], domain[0], increase)
    assert bool(found[0]) == exists
    if exists:
        p, q = pick[0].tolist()
        assert p != q and bool(domain[0, p] and domain[0, q])
        assert -float(a[0, p] + a[0, q]) * float(b[0, p] + b[0, q]) == pytest.approx(want)


@settings(max_examples=100, deadline=None)
@given(small_rows, st.booleans())
def test_the_target_score_takes_the_two_largest(
    row: tuple[list[int], list[int], list[bool]], increase: bool
) -> None:
    a = torch.tensor([row[0]], dtype=torch.float64)
    domain = torch.tensor([row[2]])
    sign = 1.0 if increase else -1.0
    pairs = [
        sign * float(a[0, p] + a[0, q])
        for p, q in itertools.combinations(range(a.shape[1]), 2)
        if domain[0, p] and domain[0, q]
    ]
    pick, found = best_pair(a, torch.zeros_like(a), domain, increase, paper=False)
    assert bool(found[0]) == (bool(pairs) and max(pairs) > 0)
    if found[0]:
        p, q = pick[0].tolist()
        assert p != q and sign * float(a[0, p] + a[0, q]) == max(pairs)


def test_the_pair_search_is_batched_row_by_row() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 40, generator=g), torch.randn(6, 40, generator=g)
    domain = torch.rand(6, 40, generator=g) > 0.3
    for increase in (True, False):
        pick, found = best_pair(a, b, domain, increase, paper=True)
        for i in range(6):
            want, exists = brute_pair(a[i], b[i], domain[i], increase)
            assert bool(found[i]) == exists
            p, q = pick[i].tolist()
            assert -float(a[i, p] + a[i, q]) * float(b[i, p] + b[i, q]) == pytest.approx(want)


def test_a_candidate_cap_keeps_valid_pairs_and_is_exact_when_wide() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 60, generator=g), torch.randn(8, 60, generator=g)
    domain = torch.ones(8, 60, dtype=torch.bool)
    exact, _ = best_pair(a, b, domain, True, paper=True)
    wide, _ = best_pair(a, b, domain, True, paper=True, candidates=60)
    assert torch.equal(wide, exact)
    capped, found = best_pair(a, b, domain, True, paper=True, candidates=2)
    for i in range(8):
        if found[i]:
            p, q = capped[i].tolist()
            assert p != q and float(a[i, p] + a[i, q]) > 0 and float(b[i, p] + b[i, q]) < 0


def test_the_saliency_map_of_a_linear_model_is_the_formula() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    clf = Classifier(layer, num_classes=4, input_shape=(6,))
    x, y = torch.rand(3, 6), torch.tensor([0, 1, 2])
    target = torch.tensor([1, 3, 0])
    run = make_run(JSMA(), clf, x, y, torch.zeros(3))
    alpha, beta, _ = saliency_terms(run.access, x, target, torch.arange(3), "logits")  # type: ignore[attr-defined]
    w = layer.weight.detach()
    for i, t in enumerate(target.tolist()):
        want_alpha, want_beta = w[t], w.sum(0) - w[t]
        assert torch.allclose(alpha[i], want_alpha) and torch.allclose(beta[i], want_beta)
        for increase in (True, False):
            s = saliency_map(alpha[i : i + 1], beta[i : i + 1], increase)[0]
            for f in range(6):
                da, db = float(want_alpha[f]), float(want_beta[f])
                if increase:
                    want = 0.0 if da < 0 or db > 0 else da * abs(db)
                else:
                    want = 0.0 if da > 0 or db < 0 else abs(da) * db
                assert float(s[f]) == pytest.approx(want, abs=1e-7)


@pytest.mark.parametrize("use_logits", [True, False])
@pytest.mark.parametrize("theta", [1.0, -1.0])
def test_the_first_pair_changed_is_the_brute_force_argmax(use_logits: bool, theta: float) -> None:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, 5)).double()
    clf = Classifier(net)
    x = 0.2 + 0.6 * torch.rand(4, 8, dtype=torch.float64)  # inside the box: every pair may move
    y = clf.predict(x)
    target = (y + torch.arange(1, 5)) % 5

    def forward(row: Tensor) -> Tensor:
        out = net(row[None])[0]
        return out if use_logits else out.softmax(0)

    # eps allows exactly one pair (two of the eight features)
    res = JSMA(2 / 8, theta=theta, use_logits=use_logits, targeted=True)(clf, x, y, target)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(forward, x[i])
        t = int(target[i])
        alpha, beta = jac[t], jac.sum(0) - jac[t]
        want, exists = brute_pair(alpha, beta, torch.ones(8, dtype=torch.bool), theta > 0)
        changed = (res.x_adv[i] != x[i]).nonzero().squeeze(1).tolist()
        if bool(clf.predict(x[i : i + 1])[0] == target[i]) or not exists:
            assert changed == []
            continue
        assert len(changed) == 2
        p, q = changed
        assert -float(alpha[p] + alpha[q]) * float(beta[p] + beta[q]) == pytest.approx(want)


@pytest.mark.parametrize("theta", [1.0, -1.0])
def test_saturated_features_are_never_picked_again(theta: float) -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:30], y[:30]
    res = JSMA(0.4, theta=theta, targeted=True)(clf, x, y, (y + 5) % 10)
    # |theta| = 1 saturates every feature it moves; one query per iteration, and every
    # iteration but the last moves a pair: a pair with a saturated feature would change
    # fewer than two new features
    changed = (res.x_adv != x).flatten(1).sum(1)
    assert torch.equal(changed, 2 * (res.queries - 1))


def test_a_negative_theta_only_decreases() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:20], y[:20]
    res = JSMA(0.3, theta=-1.0, targeted=True)(clf, x, y, (y + 1) % 10)
    assert bool((res.x_adv <= x).all())
    moved = res.x_adv != x
    assert bool((res.x_adv[moved] == 0).all())  # theta = -1 sets features to the minimum


def test_a_sample_without_a_valid_pair_stops_unchanged_as_a_failure() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:5], y[:5]
    top = torch.ones_like(x)  # every feature already at the maximum: no feature can increase
    res = JSMA(0.3, targeted=True)(clf, top, clf.predict(top), (clf.predict(top) + 1) % 10)
    assert torch.equal(res.x_adv, top)
    assert not bool(res.success.any())


def test_the_alias_and_direction_arguments() -> None:
    assert JSMA(max_distortion=0.1).eps == 0.1
    assert JSMA(increase=False).theta == -1.0
    assert JSMA(theta=0.5, increase=True).theta == 0.5
    assert JSMA(theta=0.5, increase=False).theta == -0.5
    with pytest.raises(Exception, match="same budget"):
        JSMA(0.1, max_distortion=0.2)
    with pytest.raises(Exception, match="increase=True"):
        JSMA(theta=-1.0, increase=True)


def test_no_valid_pair_is_a_failure_not_a_degenerate_pick() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0]])
    b = torch.tensor([[1.0, 1.0, 1.0]])  # beta > 0 everywhere: no increasing pair is valid
    _, found = best_pair(a, b, torch.ones(1, 3, dtype=torch.bool), True, paper=True)
    assert not bool(found.any())
    _, found = best_single(a, b, torch.ones(1, 3, dtype=torch.bool), True, paper=True)
    assert not bool(found.any())


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"pairs": False}, {"score": "target"}, {"use_logits": False}, {"theta": -1.0}],
)
def test_targeted_results_stay_in_the_budget_and_are_verified(kwargs: dict[str, object]) -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:30], y[:30]
    t = (y + 3) % 10
    upsilon = 0.2
    res = JSMA(upsilon, targeted=True, **kwargs)(clf, x, y, t)  # type: ignore[arg-type]
    changed = (res.x_adv != x).flatten(1).sum(1)
    assert bool((changed <= max_features(upsilon, 64)).all())
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    assert torch.equal(res.success, clf.predict(res.x_adv) == t)
    vjps = 1 if kwargs.get("score") == "target" else 2  # the target-only score needs alpha only
    assert bool((res.gradients == vjps * res.queries).all())
    assert res.success.float().mean() > 0.3, kwargs


def test_untargeted_keeps_the_fewest_features_over_every_target() -> None:
    clf, x, y = softmax_on_digits()
    x, y = x[:10], y[:10]
    res = JSMA(0.2)(clf, x, y)
    for i in range(10):
        if not bool(res.success[i]):
            continue
        fewest = min(
            int((r.x_adv != x[i : i + 1]).sum())
            for t in range(10)
            if t != int(y[i])
            for r in [JSMA(0.2, targeted=True)(clf, x[i : i + 1], y[i : i + 1], torch.tensor([t]))]
            if bool(r.success[0])
        )
        assert int((res.x_adv[i] != x[i]).sum()) == fewest


def test_an_unbounded_box_is_refused() -> None:
    clf = Classifier(nn.Linear(4, 3), bounds=(-float("inf"), float("inf")))
    with pytest.raises(Exception, match="bounded input box"):
        JSMA()(clf, torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
