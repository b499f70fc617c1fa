"""JSMA (Papernot et al. 2016): the exact pair search, the budget, the stop conditions."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import JSMA
from brittle.attacks.jsma import best_pair, best_single
from brittle.perturbation import max_features
from helpers import softmax_on_digits

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


@pytest.mark.parametrize("increase", [True, False])
def test_the_pair_search_is_exact_in_chunks(
    increase: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import brittle.attacks.jsma as jsma

    monkeypatch.setattr(jsma, "PAIR_CHUNK_ELEMENTS", 7)  # many small chunks
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 12, generator=g), torch.randn(5, 12, generator=g)
    domain = torch.rand(5, 12, generator=g) > 0.2
    pick, found = best_pair(a, b, domain, increase, paper=True)
    for i in range(5):
        want, exists = brute_pair(a[i], b[i], domain[i], increase)
        assert bool(found[i]) == exists
        if exists:
            p, q = pick[i].tolist()
            assert p != q and bool(domain[i, p] and domain[i, q])
            assert -float(a[i, p] + a[i, q]) * float(b[i, p] + b[i, q]) == pytest.approx(want)


def test_no_valid_pair_is_a_failure_not_a_degenerate_pick() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0]])
    b = torch.tensor([[1.0, 1.0, 1.0]])  # beta > 0 everywhere: no increasing pair is valid
    _, found = best_pair(a, b, torch.ones(1, 3, dtype=torch.bool), True, paper=True)
    assert not bool(found.any())
    _, found = best_single(a, b, torch.ones(1, 3, dtype=torch.bool), True, paper=True)
    assert not bool(found.any())


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"pairs": False}, {"score": "target"}, {"of": "probabilities"}, {"theta": -1.0}],
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
    assert bool((res.gradients == 2 * res.queries).all())  # two vjps per iteration
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
