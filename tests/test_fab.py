"""FAB and FAB-T (Croce & Hein 2020): the attack contract in both norms, the box-constrained
projection against a linear program and a quadratic program, the exact minimal perturbation
of linear classifiers, batch independence, targets hit, early stopping at a budget, one host
sync per iteration, and bad parameters refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import FAB, FABT, Attack, AttackResult
from brittle.attacks.fab import hyperplane_projection
from brittle.attacks.host_syncs import syncs_per_iteration
from brittle.errors import InputError, ThreatModelError
from brittle.testing import check_attack
from brittle.threat import Norm

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- the contract
@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (FAB, {"steps": 4, "restarts": 2, "final_search": 2}),
        (FAB, {"norm": "l2", "steps": 4, "eps": 0.6}),
        (FAB, {"steps": 4, "targeted": True}),
        (FABT, {"steps": 4, "n_target_classes": 2, "restarts": 2, "eps": 0.3}),
        (FABT, {"norm": "l2", "steps": 4}),
    ],
    ids=["fab-linf-restarts", "fab-l2-eps", "fab-targeted", "fab-t-linf-eps", "fab-t-l2"],
)
def test_fab_keeps_the_attack_contract(cls: type[Attack], kwargs: dict[str, object]) -> None:
    check_attack(cls, **kwargs)


# ---------------------------------------------------------------------------- the projection
def _problem(seed: int, m: int, d: int, share: float) -> tuple[Tensor, ...]:
    """``m`` points in one random box around 0, random normals (the first coordinate
    ignored), and c = ``share`` of the largest <w, delta> the box allows, on alternate sides."""
    g = torch.Generator().manual_seed(seed)
    low = -torch.rand(d, generator=g, dtype=torch.float64) - 0.1
    high = torch.rand(d, generator=g, dtype=torch.float64) + 0.1
    x = low + (high - low) * torch.rand(m, d, generator=g, dtype=torch.float64)
    w = torch.randn(m, d, generator=g, dtype=torch.float64)
    w[:, 0] = 0.0
    up = (w.clamp_min(0) * (high - x) + (-w).clamp_min(0) * (x - low)).sum(1)
    down = ((-w).clamp_min(0) * (high - x) + w.clamp_min(0) * (x - low)).sum(1)
    side = torch.arange(m) % 2 == 0
    c = torch.where(side, share * up, -share * down)
    return x, w, c, low, high


def _lp_linf(x: Tensor, w: Tensor, c: Tensor, low: Tensor, high: Tensor) -> float:
    """min r s.t. |delta_i| <= r, low - x <= delta <= high - x, <w, delta> = c."""
    d = len(x)
    cost = np.r_[np.zeros(d), 1.0]
    eye = np.eye(d)
    a_ub = np.block([[eye, -np.ones((d, 1))], [-eye, -np.ones((d, 1))]])
    bounds = [(lo, hi) for lo, hi in zip((low - x).tolist(), (high - x).tolist(), strict=True)]
    out = linprog(
        cost,
        A_ub=a_ub,
        b_ub=np.zeros(2 * d),
        A_eq=np.r_[w.numpy(), 0.0][None],
        b_eq=[float(c)],
        bounds=[*bounds, (0, None)],
        method="highs",
    )
    assert out.status == 0
    return float(out.fun)


def _qp_l2(x: Tensor, w: Tensor, c: Tensor, low: Tensor, high: Tensor) -> float:
    """min ||delta||_2 s.t. low - x <= delta <= high - x, <w, delta> = c (SLSQP)."""
    wn, cn = w.numpy(), float(c)
    bounds = list(zip((low - x).tolist(), (high - x).tolist(), strict=True))
    out = minimize(
        lambda v: float(v @ v),
        np.zeros(len(x)),
        jac=lambda v: 2 * v,
        constraints=[{"type": "eq", "fun": lambda v: v @ wn - cn, "jac": lambda v: wn}],
        bounds=bounds,
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert out.success
    return float(np.sqrt(out.fun))


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_the_projection_is_the_smallest_step_onto_the_hyperplane_in_the_box(norm: Norm) -> None:
    """Against scipy's LP (Linf) and SLSQP (L2) on random boxes and hyperplanes, on both
    sides; the returned step meets the hyperplane and stays in the box."""
    x, w, c, low, high = _problem(0, 12, 10, 0.6)
    delta = hyperplane_projection(x, w, c, low, high, norm)
    assert torch.allclose((w * delta).sum(1), c, atol=1e-9)
    assert bool(((x + delta >= low - 1e-12) & (x + delta <= high + 1e-12)).all())
    size = delta.abs().amax(1) if norm is Norm.LINF else delta.norm(dim=1)
    solve = _lp_linf if norm is Norm.LINF else _qp_l2
    for i in range(len(x)):
        expected = solve(x[i], w[i], c[i], low, high)
        assert float(size[i]) == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_a_hyperplane_out_of_the_box_gives_the_closest_corner(norm: Norm) -> None:
    x, w, c, low, high = _problem(4, 6, 8, 1.5)
    delta = hyperplane_projection(x, w, c, low, high, norm)
    toward = w * c.sign()[:, None]
    corner = torch.where(toward > 0, high - x, torch.where(toward < 0, low - x, 0 * x))
    torch.testing.assert_close(delta, corner)


def test_an_unbounded_box_gives_the_closed_form_projection() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 20, generator=g, dtype=torch.float64)
    c = torch.tensor([1.5, -0.5, 0.0], dtype=torch.float64)
    x = torch.randn(3, 20, generator=g, dtype=torch.float64)
    inf = torch.full((20,), torch.inf, dtype=torch.float64)
    l2 = hyperplane_projection(x, w, c, -inf, inf, Norm.L2)
    torch.testing.assert_close(l2, c[:, None] * w / (w * w).sum(1, keepdim=True))
    linf = hyperplane_projection(x, w, c, -inf, inf, Norm.LINF)
    torch.testing.assert_close(linf, c[:, None] * w.sign() / w.abs().sum(1, keepdim=True))


# ---------------------------------------------------------------------------- linear models
def _linear(k: int, d: int = 16, seed: int = 0) -> tuple[Classifier, Tensor, Tensor, Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = nn.Linear(d, k).double()
        x = torch.rand(30, d, dtype=torch.float64)
    clf = Classifier(layer, bounds=(-float("inf"), float("inf")), num_classes=k)
    return clf, x, clf.predict(x), layer.weight.detach()


def _closed_form(clf: Classifier, w: Tensor, x: Tensor, y: Tensor, norm: Norm) -> Tensor:
    """min_{k != y} |f_k - f_y| / ||w_k - w_y||_q: the distance to the closest class region."""
    logits = clf.predict_scores(x)
    gaps = logits - logits.gather(1, y[:, None])
    normals = w[None] - w[y][:, None]  # (N, K, d)
    q = 1 if norm is Norm.LINF else 2
    distance = gaps.abs() / normals.norm(p=q, dim=2)
    return distance.scatter(1, y[:, None], torch.inf).amin(1)


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_finds_the_minimal_perturbation_of_a_linear_classifier(k: int, norm: str) -> None:
    """The linearisation is exact: the first projection lands on the closest boundary, the
    backward steps and the final search close the overshoot (each step of the search leaves
    a tenth of the excess, to stay past the boundary: six leave a millionth)."""
    clf, x, y, w = _linear(k)
    expected = _closed_form(clf, w, x, y, Norm(norm))
    result = FAB(norm=norm, steps=10, final_search=6)(clf, x, y)
    assert bool(result.success.all())
    found = result.linf if norm == "linf" else result.l2
    torch.testing.assert_close(found, expected, rtol=1e-6, atol=0)
    bare = FAB(norm=norm, steps=10, final_search=0)(clf, x, y)
    found = bare.linf if norm == "linf" else bare.l2
    assert bool((found >= expected * (1 - 1e-9)).all() & (found <= 1.05 * expected).all())


def test_fab_t_on_a_binary_linear_classifier_is_exact_with_one_gradient_per_step() -> None:
    clf, x, y, w = _linear(2)
    expected = _closed_form(clf, w, x, y, Norm.L2)
    result = FABT(norm="l2", steps=5, final_search=6)(clf, x, y)
    assert bool(result.success.all())
    torch.testing.assert_close(result.l2, expected, rtol=1e-6, atol=0)
    assert bool((result.gradients == 5).all())  # one target, one gradient per iteration


# ---------------------------------------------------------------------------- a small net
@pytest.fixture(scope="module")
def net() -> tuple[Classifier, Tensor, Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        x = torch.rand(24, 1, 8, 8, dtype=torch.float64)
    # float64: in float32 the model's own outputs change in the last bits with the batch
    clf = Classifier(module.double(), bounds=(0.0, 1.0))
    return clf, x, clf.predict(x)


def _in_batches(attack: Attack, clf: Classifier, x: Tensor, y: Tensor, size: int) -> AttackResult:
    parts = []
    for start in range(0, len(x), size):
        ids = torch.arange(start, min(start + size, len(x)))
        parts.append(attack(clf, x[ids], y[ids], ids=ids))
    return AttackResult.concat(parts)


@pytest.mark.parametrize(
    "attack",
    [
        FAB(steps=8, restarts=2, eps=0.05),
        FAB(norm="l2", steps=8, restarts=2),
        FABT(steps=8, n_target_classes=3, restarts=2, eps=0.05),
    ],
    ids=["fab-linf-eps", "fab-l2", "fab-t"],
)
def test_results_do_not_depend_on_the_batch(net, attack: Attack) -> None:
    """Random starts drawn per sample id, decisions per sample: the same result in any batch,
    at any position."""
    clf, x, y = net
    x, y = x[:14], y[:14]
    whole = _in_batches(attack, clf, x, y, len(x))
    assert bool(whole.success.any())
    for size in (1, 7):
        split = _in_batches(attack, clf, x, y, size)
        torch.testing.assert_close(split.x_adv, whole.x_adv, atol=1e-9, rtol=0)
        assert torch.equal(split.success, whole.success)
        assert torch.equal(split.gradients, whole.gradients)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    shuffled = attack(clf, x[order], y[order], ids=order)
    torch.testing.assert_close(shuffled.x_adv, whole.x_adv[order], atol=1e-9, rtol=0)


def test_targeted_fab_reaches_the_targets(net) -> None:
    """Targeted, FAB linearises f_t against the strongest other class at the iterate: every
    success is the target (PGD at the box's diameter reaches all of them; FAB most, closer)."""
    clf, x, y = net
    target = (y + 3) % 10
    result = FAB(steps=30)(clf, x, y, target)
    assert float(result.success.float().mean()) >= 0.8
    assert torch.equal(result.pred_adv[result.success], target[result.success])
    assert bool((result.gradients == 30).all())  # one gradient per iteration


def test_fab_t_is_no_weaker_than_one_target_and_stops_at_the_budget(net) -> None:
    """More targets only add chances; with eps a sample stops at its first point within it,
    so it costs fewer gradients than minimising for all steps."""
    clf, x, y = net
    one = FABT(steps=10, n_target_classes=1)(clf, x, y)
    three = FABT(steps=10, n_target_classes=3)(clf, x, y)
    assert bool((three.linf[one.success] <= one.linf[one.success] + 1e-7).all())
    assert int(three.success.sum()) >= int(one.success.sum())
    eps = float(three.linf[three.success].median())
    capped = FABT(steps=10, n_target_classes=3, eps=eps)(clf, x, y)
    assert bool((capped.linf <= eps + 1e-6).all())
    assert torch.equal(capped.success, three.linf <= eps)
    assert int(capped.gradients.sum()) < int(three.gradients.sum())


def test_an_iteration_syncs_at_most_once() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    clf = Classifier(net, bounds=(0.0, 1.0))
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = clf.predict(x)
    for build in (
        lambda s: FAB(steps=s, eps=1e-4, final_search=0),
        lambda s: FABT(steps=s, n_target_classes=1, eps=1e-4, final_search=0),
    ):
        rate = syncs_per_iteration(build, (4, 8), clf, x, y, 2)
        assert rate.iterations >= 4
        assert rate.per_iteration <= 1.0, rate.by_call


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"alpha_max": 1.5}, "alpha_max"),
        ({"beta": 0.0}, "beta"),
        ({"eta": 0.9}, "eta"),
        ({"steps": 0}, "steps"),
        ({"final_search": -1}, "final_search"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(InputError, match=words):
        FAB(**kwargs)  # type: ignore[arg-type]


def test_other_norms_and_targets_for_fab_t_are_refused(net) -> None:
    with pytest.raises(ThreatModelError, match="linf"):
        FAB(norm="l1")
    clf, x, y = net
    with pytest.raises(ThreatModelError, match="targeted"):
        FABT(steps=2)(clf, x, y, (y + 1) % 10)
