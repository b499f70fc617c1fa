"""Norms and projections: each projection checked against its definition, not its code.

L1: the Euclidean projection onto the L1 ball (Duchi et al. 2008), against scipy and a
bisection reference, and through its optimality certificate. L2: radial scaling. Linf:
coordinate-wise clamp. L0: keep the floor(u * d + 1e-9) largest entries.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize
from torch import Tensor

from brittle import Classifier
from brittle.attacks import AttackRun, FixedBudgetAttack
from brittle.perturbation import max_features, norm_of, norms, project, within_budget
from brittle.threat import Norm

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
WIDE = (-1e4, 1e4)  # a box that never binds, to test the ball projections alone

vectors = st.integers(1, 12).flatmap(
    lambda d: arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.just(d)),
        elements=st.floats(-5, 5, width=32),
    )
)


pytestmark = pytest.mark.usefixtures("one_thread")


def ball_project(v: np.ndarray, norm: Norm, eps: float | Tensor) -> Tensor:
    x = torch.zeros(v.shape, dtype=torch.float32)
    return project(x, torch.from_numpy(v), norm, eps, WIDE)


def l1_bisection(v: np.ndarray, eps: float) -> np.ndarray:
    """Projection onto {||p||_1 <= eps}: soft threshold whose theta is found by bisection."""
    a = np.abs(v.astype(np.float64))
    if a.sum() <= eps:
        return v.astype(np.float64)
    lo, hi = 0.0, float(a.max())
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(a - mid, 0, None).sum() > eps else (lo, mid)
    return np.sign(v) * np.clip(a - hi, 0, None)


def l1_scipy(v: np.ndarray, eps: float) -> np.ndarray:
    """min ||p - v||^2 s.t. ||p||_1 <= eps, as a smooth QP in p = u - w with u, w >= 0."""
    v = v.astype(np.float64)
    d = len(v)

    def objective(z: np.ndarray) -> float:
        return float(((z[:d] - z[d:] - v) ** 2).sum())

    def gradient(z: np.ndarray) -> np.ndarray:
        r = 2 * (z[:d] - z[d:] - v)
        return np.concatenate([r, -r])

    z0 = np.concatenate([np.clip(v, 0, None), np.clip(-v, 0, None)]) * min(
        1.0, eps / max(np.abs(v).sum(), 1e-12)
    )
    out = minimize(
        objective,
        z0,
        jac=gradient,
        method="SLSQP",
        bounds=[(0, None)] * (2 * d),
        constraints=[
            {"type": "ineq", "fun": lambda z: eps - z.sum(), "jac": lambda z: -np.ones(2 * d)}
        ],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert out.success, out.message
    return out.x[:d] - out.x[d:]


# ---------------------------------------------------------------------------- L1
@SETTINGS
@given(v=vectors, eps=st.floats(0.0, 20.0))
def test_l1_projection_matches_bisection_reference(v: np.ndarray, eps: float) -> None:
    p = ball_project(v, Norm.L1, eps).double().numpy()
    for row, out in zip(v, p, strict=True):
        np.testing.assert_allclose(out, l1_bisection(row, eps), atol=1e-4, rtol=1e-4)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    v=arrays(np.float32, st.integers(2, 6), elements=st.floats(-3, 3, width=32)),
    fraction=st.floats(0.05, 0.95),
)
def test_l1_projection_matches_scipy(v: np.ndarray, fraction: float) -> None:
    eps = fraction * float(np.abs(v).sum())
    if eps < 1e-3:
        return
    p = ball_project(v[None], Norm.L1, eps)[0].double().numpy()
    np.testing.assert_allclose(p, l1_scipy(v, eps), atol=1e-4)


@SETTINGS
@given(v=vectors, eps=st.floats(0.0, 20.0))
def test_l1_projection_kkt_and_optimality(v: np.ndarray, eps: float) -> None:
    """p is a soft threshold of v (one theta >= 0, signs kept), lies in the ball, touches its
    boundary when v is outside, and satisfies the variational inequality
    <v - p, z - p> <= 0 for every z in the ball; its maximum over the ball is at a vertex
    +-eps e_i, which gives the exact check eps * ||v - p||_inf <= <v - p, p>."""
    p = ball_project(v, Norm.L1, eps).double().numpy()
    for row, out in zip(v.astype(np.float64), p, strict=True):
        tol = 1e-4 * max(1.0, float(np.abs(row).max()))
        assert np.abs(out).sum() <= eps * (1 + 1e-5) + 1e-6
        assert np.all(out * row >= 0)  # same sign, or zero
        assert np.all(np.abs(out) <= np.abs(row) + tol)  # only shrinks
        if np.abs(row).sum() <= eps:
            np.testing.assert_allclose(out, row, atol=1e-6)
            continue
        assert abs(np.abs(out).sum() - eps) <= 1e-4 * max(1.0, eps)
        shrink = np.abs(row) - np.abs(out)
        kept = np.abs(out) > 0
        if kept.any():
            theta = shrink[kept].mean()
            assert theta >= -tol
            np.testing.assert_allclose(shrink[kept], theta, atol=tol)  # one common threshold
            assert np.all(np.abs(row[~kept]) <= theta + tol)  # zeroed: below the threshold
        r = row - out
        assert eps * np.abs(r).max() <= r @ out + tol * (1 + eps)


def test_l1_projection_examples() -> None:
    v = np.array([[3.0, -1.0, 0.5, 0.0]], dtype=np.float32)
    # theta = 1.5: |v| - theta = (1.5, -0.5, -1, -1.5)+ -> (1.5, 0, 0, 0)
    torch.testing.assert_close(ball_project(v, Norm.L1, 1.5), torch.tensor([[1.5, 0.0, 0.0, 0.0]]))
    # theta = 0.5: (2.5, -0.5, 0, 0) has L1 norm 3
    torch.testing.assert_close(ball_project(v, Norm.L1, 3.0), torch.tensor([[2.5, -0.5, 0.0, 0.0]]))
    torch.testing.assert_close(ball_project(v, Norm.L1, 0.0), torch.zeros(1, 4))
    torch.testing.assert_close(ball_project(v, Norm.L1, 10.0), torch.from_numpy(v))


# ---------------------------------------------------------------------------- L2 and Linf
@SETTINGS
@given(v=vectors, eps=st.floats(0.0, 20.0))
def test_l2_projection_scales_radially(v: np.ndarray, eps: float) -> None:
    p = ball_project(v, Norm.L2, eps).double()
    t = torch.from_numpy(v).double()
    size = t.norm(dim=1, keepdim=True)
    expected = torch.where(size > eps, t * eps / size.clamp_min(1e-300), t)
    torch.testing.assert_close(p, expected, atol=1e-5, rtol=1e-5)
    assert bool((p.norm(dim=1) <= eps * (1 + 1e-5) + 1e-6).all())


@SETTINGS
@given(v=vectors, eps=st.floats(0.0, 6.0))
def test_linf_projection_clamps(v: np.ndarray, eps: float) -> None:
    p = ball_project(v, Norm.LINF, eps)
    expected = torch.from_numpy(v).clamp(-eps, eps)
    torch.testing.assert_close(p, expected, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------- L0
@pytest.mark.parametrize(
    ("fraction", "d", "k"),
    [
        (0.29, 100, 29),
        (0.145, 784, 113),
        (0.3, 10, 3),
        (0.7, 10, 7),
        (0.1, 30, 3),
        (0.0, 5, 0),
        (1.0, 7, 7),
        (0.999, 10, 9),
    ],
)
def test_max_features_rounding(fraction: float, d: int, k: int) -> None:
    assert max_features(fraction, d) == k == math.floor(fraction * d + 1e-9)


def test_max_features_exact_for_every_rational_budget() -> None:
    """i / d of d features allows exactly i, even when i / d * d rounds just below i."""
    below = 0
    for d in range(1, 300):
        for i in range(d + 1):
            below += (i / d) * d < i
            assert max_features(i / d, d) == i
    assert below > 0  # the slack is needed


@SETTINGS
@given(
    d=st.integers(1, 40),
    n=st.integers(1, 4),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_l0_keeps_the_largest_entries(d: int, n: int, fraction: float, seed: int) -> None:
    # a float32-exact fraction: the float32 rounding of budgets is test_l0_..._documented_rounding
    fraction = float(np.float32(fraction))
    g = torch.Generator().manual_seed(seed)
    # distinct magnitudes so that "the k largest" is unambiguous
    mags = torch.randperm(d, generator=g).float().add(1).expand(n, d) / d
    signs = torch.where(torch.rand(n, d, generator=g) < 0.5, -1.0, 1.0)
    v = (mags * signs).numpy()
    p = ball_project(v, Norm.L0, fraction)
    k = max_features(fraction, d)
    assert bool(((p != 0).sum(1) == min(k, d)).all())
    t = torch.from_numpy(v)
    kept = p != 0
    torch.testing.assert_close(p[kept], t[kept])  # kept entries unchanged
    if 0 < k < d:  # every kept entry is larger than every dropped one
        assert bool(
            (
                t.abs()[kept].view(n, k).min(1).values > t.abs()[~kept].view(n, d - k).max(1).values
            ).all()
        )
    assert bool(within_budget(p, Norm.L0, fraction).all())


@pytest.mark.parametrize(("i", "d"), [(29, 100), (1, 100), (11, 100)])
def test_l0_projection_uses_the_documented_rounding(i: int, d: int) -> None:
    """float32(i / d) * d < i here: the fraction must reach max_features as float64."""
    v = np.ones((1, d), dtype=np.float32)
    p = ball_project(v, Norm.L0, i / d)
    assert int((p != 0).sum()) == max_features(i / d, d) == i


def test_l0_per_sample_fractions() -> None:
    d = 20
    v = torch.arange(1, d + 1, dtype=torch.float32).expand(3, d).numpy()
    fractions = torch.tensor([0.1, 0.5, 1.0])
    p = ball_project(v, Norm.L0, fractions)
    assert (p != 0).sum(1).tolist() == [max_features(float(f), d) for f in fractions]
    assert (p != 0).sum(1).tolist() == [2, 10, 20]
    # the largest entries are the last ones
    assert bool((p[0, -2:] != 0).all()) and bool((p[0, :-2] == 0).all())


# ---------------------------------------------------------------------------- box, per-sample
@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 10)),
    norm=st.sampled_from(list(Norm)),
    seed=st.integers(0, 10_000),
    scale=st.floats(0.01, 5.0),
)
def test_projection_inside_box_and_per_sample_budget(
    shape: tuple[int, int], norm: Norm, seed: int, scale: float
) -> None:
    g = torch.Generator().manual_seed(seed)
    n, d = shape
    x = torch.rand(n, d, generator=g)
    x = torch.where(torch.rand(n, d, generator=g) < 0.2, torch.ones_like(x), x)
    x_adv = x + torch.randn(n, d, generator=g) * scale
    eps = torch.rand(n, generator=g) * (1.0 if norm in (Norm.L0, Norm.LINF) else 3.0)
    eps[0] = 0.0
    p = project(x, x_adv, norm, eps, (0.0, 1.0))
    assert p.shape == x.shape and p.dtype == x.dtype
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    delta = (p - x).double()
    if norm is Norm.L0:  # a count of features, checked without within_budget
        allowed = torch.tensor([max_features(float(e), d) for e in eps])
        assert bool(((delta != 0).sum(1) <= allowed).all())
    else:
        p_norm = {Norm.L1: 1, Norm.L2: 2, Norm.LINF: float("inf")}[norm]
        sizes = delta.norm(p=p_norm, dim=1)
        assert bool((sizes <= eps.double() * (1 + 1e-5) + 1e-6).all())
    assert torch.equal(p[0], x[0])  # no budget, no move
    # each row is what its own budget gives alone
    for i in range(n):
        alone = project(x[i : i + 1], x_adv[i : i + 1], norm, float(eps[i]), (0.0, 1.0))
        torch.testing.assert_close(p[i : i + 1], alone, atol=1e-6, rtol=1e-6)
    # no budget: the box only
    torch.testing.assert_close(project(x, x_adv, norm, None, (0.0, 1.0)), x_adv.clamp(0, 1))


@pytest.mark.parametrize("norm", list(Norm))
def test_projection_inside_other_boxes(norm: Norm) -> None:
    """x + (clamp(x') - x) can round one ulp below 0.1 in float32: the result is clamped last."""
    low, high = 0.1, 0.9
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 10, generator=g) * (high - low) + low
    x_adv = torch.full_like(x, -5.0)  # every coordinate clamps to the lower bound
    p = project(x, x_adv, norm, 1e6 if norm is not Norm.L0 else 1.0, (low, high))
    assert float(p.min()) >= low


@pytest.mark.parametrize(
    ("d", "fraction"),
    [
        (100, 0.29),
        (784, 0.145),
        (3, 0.5),
        (30, 0.1),
    ],
)
def test_within_budget_accepts_l0_projection_at_the_limit(d: int, fraction: float) -> None:
    """Per-sample float64 budgets, as Attack.attack passes them (a 0-dim budget is compared
    in float32 by torch's type promotion and happens to pass)."""
    v = np.ones((2, d), dtype=np.float32)
    budget = torch.full((2,), fraction, dtype=torch.float64)
    p = ball_project(v, Norm.L0, budget)
    assert (p != 0).sum(1).tolist() == [max_features(fraction, d)] * 2
    assert bool(within_budget(p, Norm.L0, fraction).all())
    assert bool(within_budget(p, Norm.L0, budget).all())


class _ChangeEverything(FixedBudgetAttack):
    """Moves every feature; the base class must keep the documented number of them."""

    norms = frozenset({Norm.L0})

    def _run(self, run: AttackRun) -> Tensor:
        return 1 - run.x


@pytest.mark.parametrize(
    ("d", "fraction"),
    [
        (100, 0.29),
        (784, 0.145),
        (30, 0.1),
    ],
)
def test_l0_attack_keeps_the_documented_number_of_features(d: int, fraction: float) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(d, 3)
    x = torch.full((2, d), 0.25)
    res = _ChangeEverything(fraction, norm="l0")(
        Classifier(model), x, torch.zeros(2, dtype=torch.long)
    )
    changed = (res.x_adv != x).sum(1)
    assert changed.tolist() == [max_features(fraction, d)] * 2
    torch.testing.assert_close(res.l0.double(), changed.double() / d)


# ---------------------------------------------------------------------------- norms
def test_norms_definitions() -> None:
    delta = torch.tensor([[0.0, 3.0, -4.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0]])
    sizes = norms(delta.view(3, 1, 2, 2))
    torch.testing.assert_close(sizes["l0"], torch.tensor([0.5, 0.0, 1.0]))
    torch.testing.assert_close(sizes["l1"], torch.tensor([7.0, 0.0, 4.0]))
    torch.testing.assert_close(sizes["l2"], torch.tensor([5.0, 0.0, 2.0]))
    torch.testing.assert_close(sizes["linf"], torch.tensor([4.0, 0.0, 1.0]))
    for norm in Norm:
        torch.testing.assert_close(norm_of(delta, norm), sizes[norm.value])


def test_within_budget_tolerance_and_l0_limit() -> None:
    delta = torch.tensor([[0.3, 0.0], [0.3000001, 0.0], [0.31, 0.0]])
    assert within_budget(delta, Norm.LINF, 0.3).tolist() == [True, True, False]
    d = torch.zeros(1, 100)
    d[0, :29] = 1.0
    assert bool(within_budget(d, Norm.L0, 0.29).all())
    d[0, 29] = 1.0
    assert not bool(within_budget(d, Norm.L0, 0.29).all())
