"""The bounds of Fawzi, Fawzi & Fawzi (2018), "Adversarial vulnerability for any classifier".

Data are ``x = g(z)`` with ``z ~ N(0, I_d)`` and a generator ``g`` with a modulus of
continuity ``omega``::

    ||g(z) - g(z')|| <= omega(||z - z'||_2)    for all z, z'.

For an ``L``-Lipschitz ``g``, ``omega(t) = L t`` and ``omega^{-1}(eta) = eta / L``; in latent
space (the robustness ``r_Z`` of ``f o g`` to moves of ``z``), ``omega`` is the identity. For
*any* classifier ``f`` with ``K`` classes, writing ``Phi`` for the standard normal CDF,
``p_i = P(f(g(z)) = i)`` and ``a_{!=i} = Phi^{-1}(P(f(g(z)) != i)) = Phi^{-1}(1 - p_i)``:

- **Theorem 1** (the exact sum)::

      P(r_in(x) <= eta) >= sum_{i=1..K} [Phi(a_{!=i} + omega^{-1}(eta)) - Phi(a_{!=i})]

- **Corollary** (no class has more than half of the mass, ``max_i p_i <= 1/2``)::

      P(r_in(x) <= eta) >= 1 - sqrt(pi/2) exp(-omega^{-1}(eta)^2 / 2)

- **Theorem 3** (transferability): if ``P(f(g(z)) != h(g(z))) <= delta``, then with
  probability at least ``1 - sqrt(pi/2) exp(-omega^{-1}(eta)^2 / 2) - 2 delta`` over ``z``
  there is one ``v`` with ``||v||_2 <= eta`` that changes the label of both ``f`` and ``h``.

Since ``r_unc(x) <= r_in(x)`` (an in-distribution move is one particular perturbation), the
bounds on ``P(r_in <= eta)`` also bound ``P(r_unc <= eta)`` from below.

The functions here take ``lipschitz=L`` for the Lipschitz form, ``omega=`` for a general
modulus (a callable or an empirical curve), and neither for latent space. Every bound is
clipped to ``[0, 1]``; ``eta`` may be a number (the result is a ``float``) or an array (the
result is a numpy array of the same shape), and ``eta = inf`` gives the bound's limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

import numpy as np
import numpy.typing as npt
from scipy import optimize, special, stats

from brittle.errors import InputError
from brittle.validation import check_fraction, check_positive, check_positive_integer, is_real

_SQRT_HALF_PI = math.sqrt(math.pi / 2)
"""The constant ``sqrt(pi/2)`` of the corollary and of Theorem 3."""

_SUM_TOLERANCE = 1e-6
"""How far from 1 the class probabilities may sum (float32 softmax outputs) before they are
refused; within it they are rescaled to sum to 1 exactly."""

_LATENT_CAP = 2048.0
"""A latent distance past which every Gaussian tail ``1 - Phi(a + t)`` the bounds use is 0 in
double precision (``a >= -8.3`` for any ``p < 1`` that a double can hold): the bound has
reached its supremum there, so a quantile not reached by then is never reached."""

Omega = Callable[[np.ndarray], np.ndarray] | tuple[npt.ArrayLike, npt.ArrayLike]
"""A modulus of continuity: a non-decreasing callable ``omega(t)`` on numpy arrays (elementwise,
``omega(0) = 0``), or an empirical curve ``(deltas, omega_values)``."""

Etas = np.ndarray | Sequence[float]
"""An array of perturbation norms ``eta >= 0`` (``inf`` allowed)."""


# ------------------------------------------------------------------ class probabilities
@dataclass(frozen=True, eq=False)
class ClassProbabilities:
    """The probabilities ``p_i = P(f(g(z)) = i)`` estimated from ``n`` generator samples.

    ``estimate`` is the point estimate ``counts / n``; ``[lower, upper]`` are Clopper-Pearson
    intervals with a Bonferroni correction over the ``K`` classes, so that with probability at
    least ``confidence`` (over the samples) every class's true probability lies in its interval
    at once. The arrays are read-only.
    """

    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    counts: np.ndarray
    n: int
    confidence: float

    @property
    def num_classes(self) -> int:
        """The number of classes ``K``."""
        return int(self.estimate.size)

    def as_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for JSON."""
        return {
            "estimate": self.estimate.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "counts": self.counts.tolist(),
            "n": self.n,
            "confidence": self.confidence,
            "method": "Clopper-Pearson, Bonferroni over the classes",
        }


def class_probabilities(
    predictions: npt.ArrayLike, num_classes: int, confidence: float = 0.95
) -> ClassProbabilities:
    """Estimate ``p_i = P(f(g(z)) = i)`` from the labels ``f`` gives to generator samples.

    ``predictions`` are integer labels in ``[0, num_classes)``, one per sample ``g(z)`` with
    ``z ~ N(0, I)`` (a numpy array, a list or a CPU tensor). With ``k_i`` samples of class
    ``i`` out of ``n`` and ``alpha = (1 - confidence) / K`` (Bonferroni), the Clopper-Pearson
    interval of class ``i`` is::

        lower_i = Beta^{-1}(alpha / 2; k_i, n - k_i + 1)      (0 when k_i = 0)
        upper_i = Beta^{-1}(1 - alpha / 2; k_i + 1, n - k_i)  (1 when k_i = n)

    Each interval covers its class with probability at least ``1 - alpha``, so all ``K`` cover
    at once with probability at least ``confidence`` (union bound). Clopper-Pearson is exact
    (never below its nominal level), hence conservative.
    """
    k = check_positive_integer(num_classes, "num_classes")
    check_fraction(confidence, "confidence")
    labels = np.asarray(predictions)
    if labels.ndim != 1 or labels.size == 0:
        raise InputError(
            f"predictions must be a non-empty 1-D array of labels, got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"predictions must be integer class labels, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= k:
        raise InputError(
            f"predictions must lie in [0, {k}), got values from {labels.min()} to {labels.max()}"
        )
    n = labels.size
    counts = np.bincount(labels, minlength=k)
    alpha = (1 - float(confidence)) / k
    lower = np.where(
        counts == 0, 0.0, stats.beta.ppf(alpha / 2, np.maximum(counts, 1), n - counts + 1)
    )
    upper = np.where(
        counts == n, 1.0, stats.beta.ppf(1 - alpha / 2, counts + 1, np.maximum(n - counts, 1))
    )
    estimate = counts / n
    for array in (estimate, lower, upper, counts):
        array.setflags(write=False)
    return ClassProbabilities(estimate, lower, upper, counts, n=n, confidence=float(confidence))


# ------------------------------------------------------------------ moduli of continuity
class _Modulus(Protocol):
    """``omega`` as the bounds use it: ``omega^{-1}`` on arrays, ``omega`` at one point."""

    def inverse(self, eta: np.ndarray) -> np.ndarray:
        """``omega^{-1}(eta) = sup {t >= 0 : omega(t) <= eta}`` elementwise (may be inf)."""
        ...

    def forward(self, t: float) -> float:
        """``omega(t)``, the smallest ``eta`` with ``omega^{-1}(eta) >= t`` (inf if none)."""
        ...


@dataclass(frozen=True)
class _Linear:
    """``omega(t) = L t``: an ``L``-Lipschitz generator, or latent space with ``L = 1``."""

    lipschitz: float

    def inverse(self, eta: np.ndarray) -> np.ndarray:
        return eta / self.lipschitz

    def forward(self, t: float) -> float:
        return t * self.lipschitz


@dataclass(frozen=True)
class _Curve:
    """A piecewise-linear ``omega`` through ``(0, 0)`` and the points of an empirical curve,
    made non-decreasing by a running maximum (the smallest non-decreasing curve above the
    points). It says nothing past its last ``delta``, so ``omega^{-1}`` stops there (a
    smaller ``omega^{-1}`` only weakens the bound) and ``omega`` is inf beyond it."""

    deltas: np.ndarray
    values: np.ndarray

    def inverse(self, eta: np.ndarray) -> np.ndarray:
        ts, ws = self.deltas, self.values
        j = np.clip(np.searchsorted(ws, eta, side="right"), 1, ws.size - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = ts[j - 1] + (eta - ws[j - 1]) / (ws[j] - ws[j - 1]) * (ts[j] - ts[j - 1])
        return np.where(eta >= ws[-1], ts[-1], inside)

    def forward(self, t: float) -> float:
        if t > self.deltas[-1]:
            return math.inf
        return float(np.interp(t, self.deltas, self.values))


@dataclass(frozen=True)
class _Function:
    """A callable ``omega``, inverted by a vectorised bisection on ``omega(t) <= eta``."""

    omega: Callable[[np.ndarray], np.ndarray]

    def _call(self, t: np.ndarray) -> np.ndarray:
        try:
            values = np.asarray(self.omega(t), dtype=float)
        except (TypeError, ValueError) as error:
            raise InputError(f"omega must take and return numpy arrays: {error}") from None
        if values.shape != t.shape or np.isnan(values).any():
            raise InputError(
                "omega must map an array of latent distances to an array of the same shape "
                "without NaN"
            )
        return values

    def inverse(self, eta: np.ndarray) -> np.ndarray:
        lo = np.zeros_like(eta)
        hi = np.ones_like(eta)
        below = self._call(hi) <= eta
        while below.any():  # grow the bracket until omega(hi) > eta (or hi is huge)
            hi = np.where(below, 2 * hi, hi)
            below = (self._call(hi) <= eta) & (hi < 2.0**64)
        unbounded = self._call(hi) <= eta
        for _ in range(200):  # bisection: omega(lo) <= eta < omega(hi)
            mid = (lo + hi) / 2
            ok = self._call(mid) <= eta
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
            if np.all(hi - lo <= 4 * np.finfo(float).eps * hi):
                break
        return np.where(unbounded, np.inf, lo)

    def forward(self, t: float) -> float:
        return float(self._call(np.array([t]))[0])


def _modulus(lipschitz: float | None, omega: Omega | None) -> _Modulus:
    """The modulus the arguments describe: ``lipschitz``, ``omega`` or (neither) latent space."""
    if lipschitz is not None and omega is not None:
        raise InputError("give lipschitz or omega, not both")
    if lipschitz is not None:
        return _Linear(check_positive(lipschitz, "lipschitz"))
    if omega is None:
        return _Linear(1.0)
    if callable(omega):
        return _Function(omega)
    if not (isinstance(omega, tuple) and len(omega) == 2):
        raise InputError("omega must be a callable or a (deltas, omega_values) pair of arrays")
    deltas, values = (np.asarray(a, dtype=float) for a in omega)
    if deltas.ndim != 1 or deltas.shape != values.shape or deltas.size == 0:
        raise InputError(
            "an omega curve needs two 1-D arrays of the same non-zero length, got shapes "
            f"{deltas.shape} and {values.shape}"
        )
    if not (np.isfinite(deltas).all() and np.isfinite(values).all()):
        raise InputError("an omega curve must be finite")
    if deltas[0] <= 0 or np.any(np.diff(deltas) <= 0) or np.any(values < 0):
        raise InputError("an omega curve needs increasing deltas > 0 and omega values >= 0")
    ts = np.concatenate([[0.0], deltas])
    ws = np.maximum.accumulate(np.concatenate([[0.0], values]))
    return _Curve(ts, ws)


# ------------------------------------------------------------------ validation
def _probabilities(class_probabilities: npt.ArrayLike | ClassProbabilities) -> np.ndarray:
    """The class probabilities as a 1-D float array summing to 1 (checked, then rescaled)."""
    if isinstance(class_probabilities, ClassProbabilities):
        p = np.asarray(class_probabilities.estimate, dtype=float)
    else:
        try:
            p = np.asarray(class_probabilities, dtype=float)
        except (TypeError, ValueError) as error:
            raise InputError(f"class_probabilities must be numbers: {error}") from None
    if p.ndim != 1 or p.size == 0:
        raise InputError(
            f"class_probabilities must be a non-empty 1-D array (one per class), got shape {p.shape}"
        )
    if not np.isfinite(p).all():
        raise InputError("class_probabilities must be finite")
    if np.any(p < 0):
        raise InputError(f"class_probabilities must be >= 0, got a minimum of {p.min()}")
    total = float(p.sum())
    if abs(total - 1) > _SUM_TOLERANCE:
        raise InputError(f"class_probabilities must sum to 1, got a sum of {total}")
    return p / total


def _etas(eta: float | Etas) -> tuple[np.ndarray, bool]:
    """``eta`` as a float array, and whether it was a single number."""
    try:
        values = np.asarray(eta, dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(f"eta must be a number or an array of numbers: {error}") from None
    if np.isnan(values).any():
        raise InputError("eta must not be NaN")
    if np.any(values < 0):
        raise InputError(f"eta must be >= 0 (a norm), got a minimum of {values.min()}")
    return values, values.ndim == 0


def _shaped(values: np.ndarray, scalar: bool) -> float | np.ndarray:
    """A float for a single ``eta``, else the array."""
    return float(values) if scalar else values


def _quantile_level(q: float) -> float:
    """``q`` checked to lie in the open interval (0, 1)."""
    if not is_real(q) or not 0 < q < 1:
        raise InputError(f"the quantile q must be a number in the open interval (0, 1), got {q!r}")
    return float(q)


def _check_balanced(class_probabilities: npt.ArrayLike | ClassProbabilities | None) -> None:
    """Refuse the corollary when a class has more than half of the mass."""
    if class_probabilities is None:
        return
    p = _probabilities(class_probabilities)
    i = int(np.argmax(p))
    if p[i] > 0.5 + 1e-12:
        raise InputError(
            f"the corollary needs every class to have at most half of the mass, but class {i} "
            f"has {p[i]:.6g}; use in_distribution_bound (Theorem 1's exact sum) instead"
        )


# ------------------------------------------------------------------ the bounds in latent units
def _terms(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``Phi(a + t) - Phi(a)`` with ``a = Phi^{-1}(1 - p) = -Phi^{-1}(p)``, for ``p`` of shape
    ``(K,)`` and ``t`` of any shape: shape ``t.shape + (K,)``.

    The term is the Gaussian mass of ``[a, a + t]``; it is computed from the tail on the side
    where both ends are small (no cancellation), and the limits are exact: ``p = 0``
    (``a = inf``) and ``p = 1`` (``a = -inf``) give 0 for every ``t``; ``t = inf`` gives ``p``.
    """
    a = -special.ndtri(p)
    t = t[..., None]
    with np.errstate(invalid="ignore"):
        left = special.ndtr(a + t) - special.ndtr(a)
        right = special.ndtr(-a) - special.ndtr(-a - t)
        terms = np.where(a + t / 2 < 0, left, right)
    return np.where(p == 1, 0.0, np.maximum(terms, 0.0))


def _theorem1(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Theorem 1's sum at latent distance ``t``, clipped to [0, 1]."""
    return np.clip(_terms(p, t).sum(axis=-1), 0.0, 1.0)


def _theorem1_box(lower: np.ndarray, upper: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The smallest Theorem 1 sum over the box ``lower <= p <= upper`` at latent distance ``t``:
    each term is quasi-concave in its own ``p_i``, so its minimum is at an end of ``p_i``'s
    interval and the separable sum is minimised class by class."""
    terms = np.minimum(_terms(lower, t), _terms(upper, t))
    return np.clip(terms.sum(axis=-1), 0.0, 1.0)


def _corollary(t: np.ndarray) -> np.ndarray:
    """``1 - sqrt(pi/2) exp(-t^2 / 2)``, clipped to [0, 1]."""
    return np.clip(1 - _SQRT_HALF_PI * np.exp(-np.square(t) / 2), 0.0, 1.0)


def _solve(latent: Callable[[np.ndarray], np.ndarray], q: float, modulus: _Modulus) -> float:
    """The smallest ``eta = omega(t)`` with ``latent(t) >= q``, for a continuous non-decreasing
    ``latent`` with ``latent(0) = 0``: the bracket ``[0, hi]`` is doubled from ``hi = 1`` until
    ``latent(hi) >= q``, then ``brentq`` finds the crossing. Inf if the bound stays below
    ``q`` up to :data:`_LATENT_CAP` (its supremum in double precision)."""

    def gap(t: float) -> float:
        return float(latent(np.array(t))) - q

    hi = 1.0
    while gap(hi) < 0:
        if hi >= _LATENT_CAP:
            return math.inf
        hi *= 2
    t = optimize.brentq(gap, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)
    return modulus.forward(float(t))


# ------------------------------------------------------------------ Theorem 1
@overload
def in_distribution_bound(
    eta: float,
    class_probabilities: npt.ArrayLike | ClassProbabilities,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
) -> float: ...
@overload
def in_distribution_bound(
    eta: Etas,
    class_probabilities: npt.ArrayLike | ClassProbabilities,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
) -> np.ndarray: ...
def in_distribution_bound(
    eta: float | Etas,
    class_probabilities: npt.ArrayLike | ClassProbabilities,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
) -> float | np.ndarray:
    """Theorem 1's lower bound on ``P(r <= eta)`` for any classifier with these class
    probabilities::

        P(r_in(x) <= eta) >= sum_{i=1..K} [Phi(a_{!=i} + omega^{-1}(eta)) - Phi(a_{!=i})],
        a_{!=i} = Phi^{-1}(1 - p_i),

    clipped to ``[0, 1]``. With ``lipschitz=L``, ``omega^{-1}(eta) = eta / L`` (the bound on
    the in-distribution robustness ``r_in``, hence on ``r_unc <= r_in``); with ``omega=`` a
    general modulus (:data:`Omega`); with neither, latent space (``omega`` the identity, the
    bound on ``r_Z``).

    ``class_probabilities`` are ``p_i = P(f(g(z)) = i)`` (non-negative, summing to 1 within
    1e-6; a :class:`ClassProbabilities` gives its point estimate). A class of probability 0
    adds 0; a class with all the mass (a constant classifier, never fooled) makes the bound 0
    for every ``eta``. The bound is 0 at ``eta = 0``, continuous and non-decreasing in ``eta``,
    and tends to 1 as ``eta -> inf`` unless one class has all the mass.
    """
    p = _probabilities(class_probabilities)
    values, scalar = _etas(eta)
    t = _modulus(lipschitz, omega).inverse(values)
    return _shaped(_theorem1(p, t), scalar)


def robustness_upper_bound(
    q: float,
    class_probabilities: npt.ArrayLike | ClassProbabilities,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
) -> float:
    """The bound on robustness at quantile ``q`` (the paper's "upper bound on robustness" at
    the median ``q = 0.5``): the smallest ``eta`` at which Theorem 1's bound reaches ``q``::

        eta_q = min {eta >= 0 : sum_i [Phi(a_{!=i} + omega^{-1}(eta)) - Phi(a_{!=i})] >= q}.

    Any classifier with these class probabilities then has ``P(r <= eta_q) >= q``: its
    ``q``-quantile of robustness is at most ``eta_q``. The latent distance ``t_q`` where the sum
    crosses ``q`` is found by ``scipy.optimize.brentq`` on a bracket ``[0, hi]`` doubled until
    it holds the crossing, and ``eta_q = omega(t_q)`` (``L t_q`` for ``lipschitz=L``; ``t_q``
    in latent space).

    Returns ``inf`` when the bound never reaches ``q``: the sum's supremum as ``eta -> inf`` is
    ``sum_i p_i`` over the classes with ``0 < p_i < 1``, so it is 0 (never reached) when one
    class has all the mass; also when ``q`` is within rounding of 1, or when an empirical
    ``omega`` curve stops before ``t_q``. ``q`` outside ``(0, 1)`` is an :class:`InputError`.
    """
    level = _quantile_level(q)
    p = _probabilities(class_probabilities)
    modulus = _modulus(lipschitz, omega)
    return _solve(lambda t: _theorem1(p, t), level, modulus)


# ------------------------------------------------------------------ Theorem 1 with a confidence interval
@overload
def in_distribution_bound_interval(
    eta: float,
    probabilities: ClassProbabilities,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
) -> float: ...
@overload
def in_distribution_bound_interval(
    eta: Etas,
    probabilities: ClassProbabilities,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
) -> np.ndarray: ...
def in_distribution_bound_interval(
    eta: float | Etas,
    probabilities: ClassProbabilities,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
) -> float | np.ndarray:
    """Theorem 1's bound at its lowest over the class probabilities' confidence box: a lower
    bound on ``P(r <= eta)`` that holds, for every ``eta`` at once, with probability at least
    ``probabilities.confidence`` over the samples the probabilities were estimated on.

    With ``B = prod_i [lower_i, upper_i]`` the simultaneous box of :func:`class_probabilities`::

        min_{p in B} sum_i T(p_i, t),   T(p, t) = Phi(Phi^{-1}(1 - p) + t) - (1 - p),
                                        t = omega^{-1}(eta).

    Why this is the minimum and why it is valid:

    - ``T(p, t)`` is the Gaussian mass of ``[a, a + t]`` with ``a = Phi^{-1}(1 - p)``; its
      derivative in ``a`` is ``phi(a + t) - phi(a)``, positive for ``a < -t/2`` and negative
      after, and ``a`` decreases with ``p``: ``T`` is quasi-concave in ``p`` (rises, then
      falls), so its minimum over an interval is at one of the interval's ends.
    - The sum is separable (term ``i`` depends on ``p_i`` alone), so its minimum over the box
      is the sum of the per-class minima ``min(T(lower_i, t), T(upper_i, t))``.
    - The true ``p`` lies in ``B`` with probability at least ``confidence``; then the true
      Theorem 1 sum, a valid bound, is at least the box minimum. The true ``p`` also lies on
      the simplex, so minimising over ``B`` alone (not ``B`` intersected with the simplex) is
      only more conservative, never invalid.

    As ``eta -> inf`` this tends to ``sum_i lower_i`` (over classes with ``upper_i < 1``), which
    is below 1: high quantiles may be out of reach.
    """
    if not isinstance(probabilities, ClassProbabilities):
        raise InputError(
            "probabilities must be a ClassProbabilities (from class_probabilities), with its "
            "confidence interval"
        )
    values, scalar = _etas(eta)
    t = _modulus(lipschitz, omega).inverse(values)
    return _shaped(_theorem1_box(probabilities.lower, probabilities.upper, t), scalar)


def robustness_upper_bound_interval(
    q: float,
    probabilities: ClassProbabilities,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
) -> float:
    """The smallest ``eta`` at which :func:`in_distribution_bound_interval` reaches ``q``: an
    upper bound on the ``q``-quantile of robustness that holds with probability at least
    ``probabilities.confidence``. It is at least :func:`robustness_upper_bound` of the point
    estimate (the conservative bound is lower, so it reaches ``q`` later). ``inf`` when the
    conservative bound never reaches ``q`` (its supremum ``sum_i lower_i`` is below ``q``, or
    as for :func:`robustness_upper_bound`).
    """
    level = _quantile_level(q)
    if not isinstance(probabilities, ClassProbabilities):
        raise InputError("probabilities must be a ClassProbabilities (from class_probabilities)")
    modulus = _modulus(lipschitz, omega)
    lower, upper = probabilities.lower, probabilities.upper
    return _solve(lambda t: _theorem1_box(lower, upper, t), level, modulus)


# ------------------------------------------------------------------ the corollary
@overload
def corollary_bound(
    eta: float,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
    class_probabilities: npt.ArrayLike | ClassProbabilities | None = None,
) -> float: ...
@overload
def corollary_bound(
    eta: Etas,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
    class_probabilities: npt.ArrayLike | ClassProbabilities | None = None,
) -> np.ndarray: ...
def corollary_bound(
    eta: float | Etas,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
    class_probabilities: npt.ArrayLike | ClassProbabilities | None = None,
) -> float | np.ndarray:
    """The corollary of Theorem 1, for classifiers where no class has more than half of the
    mass (``max_i P(f(g(z)) = i) <= 1/2``)::

        P(r_in(x) <= eta) >= 1 - sqrt(pi/2) exp(-omega^{-1}(eta)^2 / 2),

    with a Lipschitz ``g``: ``1 - sqrt(pi/2) exp(-(eta/L)^2 / 2)``; in latent space
    ``1 - sqrt(pi/2) exp(-eta^2 / 2)``. Clipped to ``[0, 1]`` (it is 0 up to
    ``omega^{-1}(eta) = sqrt(log(pi/2))``, about 0.67). It never exceeds Theorem 1's exact sum
    where it applies.

    The condition is the caller's to ensure; pass ``class_probabilities`` to have it checked:
    a class with more than half of the mass is then an :class:`InputError` (the corollary does
    not hold for it; use :func:`in_distribution_bound`).
    """
    _check_balanced(class_probabilities)
    values, scalar = _etas(eta)
    t = _modulus(lipschitz, omega).inverse(values)
    return _shaped(_corollary(t), scalar)


def corollary_robustness_upper_bound(
    q: float,
    lipschitz: float | None = None,
    *,
    omega: Omega | None = None,
    class_probabilities: npt.ArrayLike | ClassProbabilities | None = None,
) -> float:
    """The smallest ``eta`` at which the corollary's bound reaches ``q``, in closed form.

    Solving ``1 - sqrt(pi/2) exp(-t^2 / 2) = q`` for the latent distance ``t``::

        exp(-t^2 / 2) = (1 - q) / sqrt(pi/2)
        t_q = sqrt(2 log(sqrt(pi/2) / (1 - q))) = sqrt(log(pi/2) - 2 log(1 - q)),

    positive for every ``q`` in ``(0, 1)`` since ``sqrt(pi/2) > 1 > 1 - q``; then
    ``eta_q = omega(t_q)`` (``L t_q`` with ``lipschitz=L``, ``t_q`` in latent space; at the
    median ``t_q = sqrt(log(2 pi)) ~ 1.3557``). The class-balance condition is checked as in
    :func:`corollary_bound`.
    """
    level = _quantile_level(q)
    _check_balanced(class_probabilities)
    modulus = _modulus(lipschitz, omega)
    return modulus.forward(math.sqrt(math.log(math.pi / 2) - 2 * math.log1p(-level)))


# ------------------------------------------------------------------ Theorem 3
@overload
def transfer_bound(
    eta: float, delta: float, lipschitz: float | None = None, *, omega: Omega | None = None
) -> float: ...
@overload
def transfer_bound(
    eta: Etas, delta: float, lipschitz: float | None = None, *, omega: Omega | None = None
) -> np.ndarray: ...
def transfer_bound(
    eta: float | Etas, delta: float, lipschitz: float | None = None, *, omega: Omega | None = None
) -> float | np.ndarray:
    """Theorem 3 (transferability): for two classifiers ``f`` and ``h`` with
    ``P(f(g(z)) != h(g(z))) <= delta``, a lower bound on the probability over ``z`` that one
    perturbation ``v`` with ``||v||_2 <= eta`` changes the label of both::

        P(exists v, ||v||_2 <= eta : f(g(z) + v) != f(g(z)) and h(g(z) + v) != h(g(z)))
            >= 1 - sqrt(pi/2) exp(-omega^{-1}(eta)^2 / 2) - 2 delta,

    clipped to ``[0, 1]``: the corollary's bound less ``2 delta``, so it rests on the same
    class-balance condition (no class with more than half of the mass). ``delta`` is the
    disagreement rate of the two classifiers on generator samples, in ``[0, 1]``.
    """
    if not is_real(delta) or not 0 <= delta <= 1:
        raise InputError(f"delta (a disagreement rate) must be a number in [0, 1], got {delta!r}")
    values, scalar = _etas(eta)
    t = _modulus(lipschitz, omega).inverse(values)
    bound = np.clip(1 - _SQRT_HALF_PI * np.exp(-np.square(t) / 2) - 2 * delta, 0.0, 1.0)
    return _shaped(bound, scalar)


# ------------------------------------------------------------------ normalised forms
@overload
def normalised(value: float, mean_norm: float) -> float: ...
@overload
def normalised(value: Etas, mean_norm: float) -> np.ndarray: ...
def normalised(value: float | Etas, mean_norm: float) -> float | np.ndarray:
    """A robustness (or a bound on it) relative to the data's scale: ``value / mean_norm``,
    with ``mean_norm`` the mean ``||x||`` of the data in image space, or ``E||z||``
    (:func:`gaussian_mean_norm`) in latent space. ``inf`` stays ``inf``."""
    scale = check_positive(mean_norm, "mean_norm")
    values, scalar = _etas(value)
    return _shaped(values / scale, scalar)


@overload
def gaussian_mean_norm(dim: int) -> float: ...
@overload
def gaussian_mean_norm(dim: np.ndarray | Sequence[int]) -> np.ndarray: ...
def gaussian_mean_norm(dim: int | np.ndarray | Sequence[int]) -> float | np.ndarray:
    """``E||z||_2`` for ``z ~ N(0, I_d)`` (the mean of a chi distribution with ``d`` degrees of
    freedom)::

        E||z|| = sqrt(2) Gamma((d + 1) / 2) / Gamma(d / 2),

    about ``sqrt(d - 1/2)`` for large ``d``; computed with ``log Gamma`` so that large ``d``
    does not overflow. The latent bound on ``||r_Z||`` does not depend on ``d``, so divided by
    this it shrinks like ``1 / sqrt(d)``.
    """
    d = np.asarray(dim)
    if not np.issubdtype(d.dtype, np.integer) or np.any(d < 1):
        raise InputError(f"the latent dimension must be an integer >= 1, got {dim!r}")
    half = d.astype(float) / 2
    mean = np.exp(0.5 * math.log(2) + special.gammaln(half + 0.5) - special.gammaln(half))
    return _shaped(mean, d.ndim == 0)
