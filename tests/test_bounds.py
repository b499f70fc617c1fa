"""The Fawzi et al. 2018 bounds: closed forms, properties, the quantile solver, the confidence
interval, Theorem 3, the normalised forms, bad input and the plots."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from brittle.bounds.plots import bound_cdf_plot, bound_vs_classes_plot, bound_vs_latent_dim_plot
from brittle.bounds.theorems import (
    ClassProbabilities,
    class_probabilities,
    corollary_bound,
    corollary_robustness_upper_bound,
    gaussian_mean_norm,
    in_distribution_bound,
    in_distribution_bound_interval,
    normalised,
    robustness_upper_bound,
    robustness_upper_bound_interval,
    transfer_bound,
)
from brittle.errors import InputError

ETAS = np.concatenate([[0.0], np.geomspace(1e-4, 40, 200)])


def direct_sum(eta: np.ndarray, p: np.ndarray, lipschitz: float = 1.0) -> np.ndarray:
    """Theorem 1's sum written out with scipy.stats.norm (classes of probability 0 left out)."""
    p = p[p > 0]
    a = norm.ppf(1 - p)
    t = np.asarray(eta, dtype=float)[..., None] / lipschitz
    return np.clip((norm.cdf(a + t) - norm.cdf(a)).sum(axis=-1), 0, 1)


# ------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("lipschitz", [None, 0.3, 4.0])
def test_two_balanced_classes_give_two_phi_minus_one(lipschitz: float | None) -> None:
    t = ETAS / (lipschitz or 1.0)
    bound = in_distribution_bound(ETAS, [0.5, 0.5], lipschitz)
    np.testing.assert_allclose(bound, 2 * norm.cdf(t) - 1, rtol=0, atol=1e-15)


@pytest.mark.parametrize("k", [3, 5, 10, 100, 1000])
def test_balanced_classes_equal_the_direct_sum(k: int) -> None:
    p = np.full(k, 1 / k)
    np.testing.assert_allclose(in_distribution_bound(ETAS, p), direct_sum(ETAS, p), atol=1e-12)
    # all terms are equal: K (Phi(a + t) - Phi(a)) with a = Phi^{-1}(1 - 1/K)
    a = norm.ppf(1 - 1 / k)
    closed = np.clip(k * (norm.cdf(a + ETAS) - norm.cdf(a)), 0, 1)
    np.testing.assert_allclose(in_distribution_bound(ETAS, p), closed, atol=1e-12)


def test_random_probability_vectors_equal_the_direct_sum() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        k = int(rng.integers(2, 20))
        p = rng.dirichlet(np.full(k, 0.5))
        lipschitz = float(rng.uniform(0.1, 10))
        np.testing.assert_allclose(
            in_distribution_bound(ETAS, p, lipschitz), direct_sum(ETAS, p, lipschitz), atol=1e-12
        )


def test_a_scalar_eta_gives_a_float_and_an_array_keeps_its_shape() -> None:
    p = [0.2, 0.3, 0.5]
    assert isinstance(in_distribution_bound(1.0, p), float)
    assert isinstance(corollary_bound(1.0), float)
    assert isinstance(transfer_bound(1.0, 0.1), float)
    grid = np.linspace(0, 3, 12).reshape(3, 4)
    bound = in_distribution_bound(grid, p)
    assert bound.shape == (3, 4)
    np.testing.assert_allclose(bound.ravel(), in_distribution_bound(grid.ravel(), p))
    assert in_distribution_bound([0.5, 1.0], p).shape == (2,)


def test_the_lipschitz_form_is_the_latent_form_at_eta_over_l() -> None:
    p = np.array([0.1, 0.6, 0.3])
    for lipschitz in (0.01, 0.5, 3.0, 250.0):
        np.testing.assert_allclose(
            in_distribution_bound(ETAS, p, lipschitz),
            in_distribution_bound(ETAS / lipschitz, p),
            rtol=1e-14,
            atol=0,
        )
        assert robustness_upper_bound(0.5, p, lipschitz) == pytest.approx(
            lipschitz * robustness_upper_bound(0.5, p), rel=1e-12
        )


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize(
    "p", [[0.5, 0.5], [0.9, 0.1], [0.2, 0.3, 0.5], [0.999, 0.001], [1e-300, 1 - 1e-15, 1e-15]]
)
def test_the_bound_is_zero_at_zero_non_decreasing_and_at_most_one(p: list[float]) -> None:
    bound = in_distribution_bound(ETAS, p)
    assert bound[0] == 0.0
    assert np.all(np.diff(bound) >= 0)
    assert np.all((bound >= 0) & (bound <= 1))
    assert not np.isnan(bound).any()
    assert in_distribution_bound(math.inf, p) == pytest.approx(1.0, abs=1e-12)


def test_a_class_with_all_the_mass_gives_zero_and_an_infinite_quantile() -> None:
    for p in ([1.0], [1.0, 0.0], [0.0, 0.0, 1.0, 0.0]):
        bound = in_distribution_bound([*ETAS, math.inf], p)
        assert np.array_equal(bound, np.zeros(ETAS.size + 1))
        assert robustness_upper_bound(0.5, p) == math.inf
        assert robustness_upper_bound(1e-9, p, lipschitz=2.0) == math.inf


def test_classes_of_probability_zero_add_nothing() -> None:
    with_zeros = in_distribution_bound([*ETAS, math.inf], [0.0, 0.3, 0.0, 0.7, 0.0])
    without = in_distribution_bound([*ETAS, math.inf], [0.3, 0.7])
    np.testing.assert_array_equal(with_zeros, without)


def test_tiny_classes_are_computed_without_cancellation() -> None:
    # one class of mass 1e-20: its term is p - (1 - Phi(a + t)), tiny but positive and exact
    p = np.array([1e-20, 1 - 1e-20])
    a = -norm.ppf(1e-20)
    expected = norm.sf(a) - norm.sf(a + 0.5)
    assert in_distribution_bound(0.5, p) == pytest.approx(expected, rel=1e-9)


def halves() -> st.SearchStrategy[np.ndarray]:
    """Probability vectors with no class above 1/2: two groups of classes of mass 1/2 each
    (zeros, ties and the exact 1/2 included)."""
    group = st.lists(st.floats(0, 1), min_size=1, max_size=10).filter(lambda w: sum(w) > 1e-3)

    def join(w1: list[float], w2: list[float]) -> np.ndarray:
        a, b = np.array(w1), np.array(w2)
        return np.concatenate([a / (2 * a.sum()), b / (2 * b.sum())])

    return st.builds(join, group, group)


@settings(max_examples=300, deadline=None)
@given(halves(), st.floats(0, 60), st.sampled_from([None, 0.05, 1.0, 7.0]))
def test_the_corollary_is_never_above_the_exact_sum(
    p: np.ndarray, eta: float, lipschitz: float | None
) -> None:
    exact = in_distribution_bound(eta, p, lipschitz)
    corollary = corollary_bound(eta, lipschitz, class_probabilities=p)
    assert corollary <= exact + 1e-12


def test_the_corollary_formula() -> None:
    t = ETAS / 2.5
    expected = np.clip(1 - math.sqrt(math.pi / 2) * np.exp(-(t**2) / 2), 0, 1)
    np.testing.assert_allclose(corollary_bound(ETAS, 2.5), expected, atol=1e-15)
    assert corollary_bound(math.sqrt(math.log(math.pi / 2)) * 0.999) == 0.0
    assert corollary_bound(math.inf) == 1.0


def test_the_corollary_refuses_a_class_above_half_when_told_the_classes() -> None:
    with pytest.raises(InputError, match=r"at most half of the mass.*class 1"):
        corollary_bound(1.0, class_probabilities=[0.3, 0.6, 0.1])
    with pytest.raises(InputError, match="at most half"):
        corollary_robustness_upper_bound(0.5, class_probabilities=[0.3, 0.6, 0.1])
    assert corollary_bound(1.0, class_probabilities=[0.5, 0.5]) == corollary_bound(1.0)


# ------------------------------------------------------------------ the quantile solver
@pytest.mark.parametrize("lipschitz", [None, 0.2, 5.0])
@pytest.mark.parametrize(
    "p", [[0.5, 0.5], [0.1] * 10, [0.7, 0.2, 0.1], [0.98, 0.02], [0.0, 0.45, 0.55]]
)
def test_the_quantile_solver_inverts_the_bound(p: list[float], lipschitz: float | None) -> None:
    for q in (1e-6, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1 - 1e-9):
        eta = robustness_upper_bound(q, p, lipschitz)
        assert 0 < eta < math.inf
        assert in_distribution_bound(eta, p, lipschitz) == pytest.approx(q, abs=1e-9)
        if q <= 0.999:  # the smallest such eta: slightly less is below q
            assert in_distribution_bound(eta * (1 - 1e-6), p, lipschitz) < q


def test_the_median_bound_for_two_balanced_classes_in_closed_form() -> None:
    # 2 Phi(t) - 1 = 1/2  <=>  t = Phi^{-1}(3/4)
    assert robustness_upper_bound(0.5, [0.5, 0.5]) == pytest.approx(norm.ppf(0.75), rel=1e-12)
    assert robustness_upper_bound(0.5, [0.5, 0.5], lipschitz=3.0) == pytest.approx(
        3 * norm.ppf(0.75), rel=1e-12
    )


def test_more_classes_give_a_smaller_bound_on_robustness() -> None:
    bounds = [robustness_upper_bound(0.5, np.full(k, 1 / k)) for k in (2, 3, 5, 10, 100, 1000)]
    assert np.all(np.diff(bounds) < 0)
    # and the corollary's bound sits above the exact one for balanced classes
    assert corollary_robustness_upper_bound(0.5) >= max(bounds)


def test_the_corollary_quantile_in_closed_form() -> None:
    assert corollary_robustness_upper_bound(0.5) == pytest.approx(
        math.sqrt(math.log(2 * math.pi)), rel=1e-14
    )
    for q in (1e-9, 0.1, 0.5, 0.9, 1 - 1e-12):
        for lipschitz in (None, 0.5, 3.0):
            eta = corollary_robustness_upper_bound(q, lipschitz)
            assert corollary_bound(eta, lipschitz) == pytest.approx(q, abs=1e-9)
            assert corollary_bound(eta * (1 - 1e-6), lipschitz) < q


# ------------------------------------------------------------------ a general modulus omega
def test_omega_as_a_callable_or_a_curve_matches_the_lipschitz_form() -> None:
    p = [0.2, 0.3, 0.5]
    etas = np.linspace(0, 20, 41)
    deltas = np.linspace(0.1, 10, 100)
    linear = in_distribution_bound(etas, p, 3.0)
    np.testing.assert_allclose(in_distribution_bound(etas, p, omega=lambda t: 3 * t), linear)
    # the curve covers latent distances up to 10, that is eta up to 30
    np.testing.assert_allclose(in_distribution_bound(etas, p, omega=(deltas, 3 * deltas)), linear)
    assert robustness_upper_bound(0.5, p, omega=lambda t: 3 * t) == pytest.approx(
        robustness_upper_bound(0.5, p, 3.0), rel=1e-12
    )
    assert corollary_robustness_upper_bound(0.9, omega=(deltas, 3 * deltas)) == pytest.approx(
        corollary_robustness_upper_bound(0.9, 3.0), rel=1e-12
    )


def test_a_concave_modulus_is_inverted() -> None:
    p = [0.5, 0.5]
    etas = np.array([0.0, 0.1, 0.5, 1.0, 2.0])
    omega_sqrt = in_distribution_bound(etas, p, omega=np.sqrt)  # omega^{-1}(eta) = eta^2
    np.testing.assert_allclose(omega_sqrt, 2 * norm.cdf(etas**2) - 1, atol=1e-12)
    eta = robustness_upper_bound(0.5, p, omega=np.sqrt)
    assert eta == pytest.approx(math.sqrt(norm.ppf(0.75)), rel=1e-12)


def test_an_empirical_curve_is_made_non_decreasing_and_stops_at_its_last_delta() -> None:
    deltas = np.array([1.0, 2.0, 3.0])
    values = np.array([2.0, 1.0, 4.0])  # running maximum: 2, 2, 4
    p = [0.5, 0.5]
    # omega^{-1}(2) = sup {t : omega(t) <= 2} = 2 (the flat piece), omega^{-1}(3) = 2.5
    bound = in_distribution_bound([1.0, 2.0, 3.0, 4.0, 100.0], p, omega=(deltas, values))
    t = np.array([0.5, 2.0, 2.5, 3.0, 3.0])
    np.testing.assert_allclose(bound, 2 * norm.cdf(t) - 1, atol=1e-12)
    # past the curve's last delta it says nothing: a quantile needing t > 3 is out of reach
    assert robustness_upper_bound(0.999, p, omega=(deltas, values)) == math.inf
    eta = robustness_upper_bound(0.5, p, omega=(deltas, values))
    assert in_distribution_bound(eta, p, omega=(deltas, values)) == pytest.approx(0.5, abs=1e-9)


def test_a_bounded_callable_omega_gives_an_infinite_inverse() -> None:
    # the image space is bounded: omega never exceeds 5, so every latent move is within 5
    bounded = in_distribution_bound([5.0, 6.0], [0.5, 0.5], omega=lambda t: np.minimum(t, 5.0))
    assert bounded[1] == pytest.approx(1.0)


# ------------------------------------------------------------------ class probabilities
def test_class_probabilities_counts_and_intervals() -> None:
    labels = np.array([0] * 30 + [1] * 70 + [3] * 0)
    probs = class_probabilities(labels, num_classes=4, confidence=0.9)
    assert isinstance(probs, ClassProbabilities)
    np.testing.assert_array_equal(probs.estimate, [0.3, 0.7, 0, 0])
    np.testing.assert_array_equal(probs.counts, [30, 70, 0, 0])
    assert probs.n == 100 and probs.num_classes == 4 and probs.confidence == 0.9
    assert np.all(probs.lower <= probs.estimate) and np.all(probs.estimate <= probs.upper)
    assert probs.lower[2] == 0 and probs.upper[2] > 0
    with pytest.raises(ValueError, match="read-only"):
        probs.estimate[0] = 1.0
    assert probs.as_dict()["counts"] == [30, 70, 0, 0]
    everything = class_probabilities(np.zeros(50, dtype=np.int64), 2)
    assert everything.upper[0] == 1.0 and everything.lower[1] == 0.0


def test_clopper_pearson_intervals_cover_at_about_the_stated_rate() -> None:
    rng = np.random.default_rng(1)
    truth = np.array([0.05, 0.25, 0.3, 0.4])
    confidence, trials = 0.9, 2000
    covered = np.empty((trials, truth.size), dtype=bool)
    for trial in range(trials):
        probs = class_probabilities(rng.choice(4, size=300, p=truth), 4, confidence)
        covered[trial] = (probs.lower <= truth) & (truth <= probs.upper)
    simultaneous = covered.all(axis=1).mean()
    sigma = math.sqrt(confidence * (1 - confidence) / trials)
    # at least the stated rate (Clopper-Pearson and Bonferroni are both conservative) ...
    assert simultaneous >= confidence - 3 * sigma
    # ... but not far above it
    assert simultaneous <= 0.99
    assert np.all(covered.mean(axis=0) >= 1 - (1 - confidence) / 4 - 3 * sigma)


def test_the_interval_bound_is_below_the_point_bound_and_the_box() -> None:
    rng = np.random.default_rng(2)
    probs = class_probabilities(rng.choice(3, size=500, p=[0.2, 0.3, 0.5]), 3)
    point = in_distribution_bound(ETAS, probs)
    low = in_distribution_bound_interval(ETAS, probs)
    assert np.all(low <= point + 1e-15)
    assert np.all(np.diff(low) >= 0) and low[0] == 0
    # the box minimum is below the sum at any probability vector inside the box
    for _ in range(200):
        p = rng.uniform(probs.lower, probs.upper)
        inside = direct_sum(ETAS, p)  # not normalised: the box is not on the simplex
        assert np.all(low <= inside + 1e-12)
    # and it is attained at a corner of the box (each term at one end of its interval)
    corners = np.array(np.meshgrid(*zip(probs.lower, probs.upper, strict=True))).reshape(3, -1)
    corner_min = np.min([direct_sum(ETAS, c) for c in corners.T], axis=0)
    np.testing.assert_allclose(low, corner_min, atol=1e-12)
    assert robustness_upper_bound_interval(0.5, probs) >= robustness_upper_bound(0.5, probs)
    eta = robustness_upper_bound_interval(0.5, probs, lipschitz=2.0)
    assert in_distribution_bound_interval(eta, probs, 2.0) == pytest.approx(0.5, abs=1e-9)


def test_the_interval_bound_cannot_reach_quantiles_above_its_supremum() -> None:
    probs = class_probabilities(np.repeat([0, 1], [40, 60]), 2, confidence=0.95)
    supremum = in_distribution_bound_interval(math.inf, probs)
    assert supremum == pytest.approx(probs.lower.sum())
    assert robustness_upper_bound_interval((1 + supremum) / 2, probs) == math.inf


# ------------------------------------------------------------------ Theorem 3
def test_the_transfer_bound_formula() -> None:
    for delta in (0.0, 0.01, 0.2, 1.0):
        for lipschitz in (None, 2.0):
            t = ETAS / (lipschitz or 1.0)
            expected = np.clip(1 - math.sqrt(math.pi / 2) * np.exp(-(t**2) / 2) - 2 * delta, 0, 1)
            np.testing.assert_allclose(
                transfer_bound(ETAS, delta, lipschitz), expected, rtol=0, atol=1e-15
            )
    np.testing.assert_array_equal(transfer_bound(ETAS, 0.0), corollary_bound(ETAS))
    assert transfer_bound(math.inf, 0.1) == pytest.approx(0.8)
    assert transfer_bound(100.0, 0.6) == 0.0


# ------------------------------------------------------------------ normalised forms
def test_the_gaussian_mean_norm() -> None:
    assert gaussian_mean_norm(1) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-14)
    assert gaussian_mean_norm(2) == pytest.approx(math.sqrt(math.pi / 2), rel=1e-14)
    norms = gaussian_mean_norm([8, 100, 10**6])
    assert norms.shape == (3,)
    assert norms[2] == pytest.approx(math.sqrt(10**6 - 0.5), rel=1e-9)
    z = np.random.default_rng(3).standard_normal((200_000, 16))
    assert gaussian_mean_norm(16) == pytest.approx(np.linalg.norm(z, axis=1).mean(), rel=2e-3)


def test_normalised_divides_by_the_mean_norm() -> None:
    assert normalised(3.0, 1.5) == 2.0
    np.testing.assert_array_equal(normalised([1.0, math.inf], 2.0), [0.5, math.inf])
    # the latent median bound shrinks like 1 / sqrt(d)
    bound = robustness_upper_bound(0.5, np.full(10, 0.1))
    shrinking = [normalised(bound, gaussian_mean_norm(d)) for d in (8, 16, 32, 64, 100)]
    assert np.all(np.diff(shrinking) < 0)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("q", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf, "0.5", True])
def test_a_quantile_outside_the_open_unit_interval_is_refused(q: Any) -> None:
    with pytest.raises(InputError, match="quantile q must be a number in the open interval"):
        robustness_upper_bound(q, [0.5, 0.5])
    with pytest.raises(InputError, match="quantile q"):
        corollary_robustness_upper_bound(q)


@pytest.mark.parametrize(
    ("eta", "message"),
    [
        (-0.1, "eta must be >= 0"),
        ([1.0, -2.0], "eta must be >= 0"),
        (math.nan, "NaN"),
        ("a", "eta must be a number"),
    ],
)
def test_a_bad_eta_is_refused(eta: Any, message: str) -> None:
    for bound in (
        lambda: in_distribution_bound(eta, [0.5, 0.5]),
        lambda: corollary_bound(eta),
        lambda: transfer_bound(eta, 0.1),
    ):
        with pytest.raises(InputError, match=message):
            bound()


@pytest.mark.parametrize(
    ("p", "message"),
    [
        ([0.5, 0.4], "must sum to 1, got a sum of 0.9"),
        ([0.7, 0.7], "must sum to 1"),
        ([1.2, -0.2], "must be >= 0"),
        ([], "non-empty 1-D"),
        ([[0.5, 0.5]], "non-empty 1-D"),
        ([0.5, math.nan], "finite"),
        (["x", "y"], "must be numbers"),
    ],
)
def test_bad_class_probabilities_are_refused(p: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        in_distribution_bound(1.0, p)
    with pytest.raises(InputError, match=message):
        robustness_upper_bound(0.5, p)


@pytest.mark.parametrize("lipschitz", [0.0, -1.0, math.nan, math.inf, "2"])
def test_a_bad_lipschitz_constant_is_refused(lipschitz: Any) -> None:
    with pytest.raises(InputError, match="lipschitz must be a"):
        in_distribution_bound(1.0, [0.5, 0.5], lipschitz)
    with pytest.raises(InputError, match="lipschitz must be a"):
        robustness_upper_bound(0.5, [0.5, 0.5], lipschitz)


def test_a_bad_omega_is_refused() -> None:
    p = [0.5, 0.5]
    with pytest.raises(InputError, match="lipschitz or omega, not both"):
        in_distribution_bound(1.0, p, 2.0, omega=np.sqrt)
    with pytest.raises(InputError, match="same non-zero length"):
        in_distribution_bound(1.0, p, omega=([1.0, 2.0], [1.0]))
    with pytest.raises(InputError, match="increasing deltas"):
        in_distribution_bound(1.0, p, omega=([2.0, 1.0], [1.0, 2.0]))
    with pytest.raises(InputError, match="callable or a"):
        in_distribution_bound(1.0, p, omega=[1.0, 2.0])  # type: ignore[call-overload]
    with pytest.raises(InputError, match="same shape"):
        in_distribution_bound(1.0, p, omega=lambda t: np.full(3, np.nan))


def test_bad_predictions_and_bad_interval_arguments_are_refused() -> None:
    with pytest.raises(InputError, match=r"lie in \[0, 3\)"):
        class_probabilities([0, 1, 3], 3)
    with pytest.raises(InputError, match="integer class labels"):
        class_probabilities([0.0, 1.0], 3)
    with pytest.raises(InputError, match="non-empty 1-D"):
        class_probabilities([], 3)
    with pytest.raises(InputError, match="num_classes must be an integer >= 1"):
        class_probabilities([0], 0)
    with pytest.raises(InputError, match="confidence must be a finite number in"):
        class_probabilities([0, 1], 2, confidence=1.0)
    with pytest.raises(InputError, match="must be a ClassProbabilities"):
        in_distribution_bound_interval(1.0, [0.5, 0.5])  # type: ignore[call-overload]
    with pytest.raises(InputError, match="delta"):
        transfer_bound(1.0, 1.5)
    with pytest.raises(InputError, match="mean_norm must be a finite number > 0"):
        normalised(1.0, 0.0)
    with pytest.raises(InputError, match="latent dimension must be an integer >= 1"):
        gaussian_mean_norm(0)


# ------------------------------------------------------------------ plots
def test_the_plots_are_png() -> None:
    rng = np.random.default_rng(4)
    eta = np.linspace(0, 4, 200)
    p = [0.1] * 10
    curves = {
        "r_Z": np.sort(rng.uniform(0, 1, 100)),
        "r_in": np.sort(rng.uniform(0, 2, 100)),
        "r_unc": np.append(np.sort(rng.uniform(0, 0.5, 99)), math.inf),
    }
    images = [
        bound_cdf_plot(curves, eta, in_distribution_bound(eta, p), robustness_upper_bound(0.5, p)),
        bound_vs_classes_plot([2, 3, 5, 10, 100]),
        bound_vs_classes_plot([2, 10], lipschitz=3.0, mean_norm=9.0),
        bound_vs_latent_dim_plot([8, 16, 32, 64, 100], measured={16: 0.1, 64: 0.05}),
    ]
    for image in images:
        assert image.startswith(b"\x89PNG")
    with pytest.raises(InputError, match="same length"):
        bound_cdf_plot(curves, eta, eta[:-1], 1.0)
    with pytest.raises(InputError, match="class counts >= 2"):
        bound_vs_classes_plot([1, 2])
    with pytest.raises(InputError, match="latent dimensions >= 1"):
        bound_vs_latent_dim_plot([])
