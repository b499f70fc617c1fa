"""Source x target analyses of JSMA (Papernot et al. 2016, section 5): success and distortion
matrices, success at smaller budgets from one run, and the hardness of each class pair.

Rows are the source class ``s`` (the sample's true class), columns the target class ``t``.
Distortion is JSMA's: the fraction of the ``M`` features changed (the L0 share).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from brittle.errors import InputError
from brittle.perturbation import max_features
from brittle.validation import check_integer, check_positive_integer

_trapezoid = np.trapezoid if hasattr(np, "trapezoid") else np.__dict__["trapz"]  # numpy < 2


def to_numpy(value: Any, name: str) -> np.ndarray:
    """``value`` (a tensor, a numpy array or a sequence) as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be a tensor or an array: {err}") from None


def _vector(value: Any, name: str) -> np.ndarray:
    arr = to_numpy(value, name)
    if arr.ndim != 1:
        raise InputError(
            f"{name} must be one-dimensional (one entry per attack), got shape {arr.shape}"
        )
    return arr


def _classes(value: Any, name: str, num_classes: int) -> np.ndarray:
    arr = _vector(value, name)
    if not arr.size:  # an empty list is float64: the caller reports the empty input
        return arr.astype(np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"{name} must hold integer class indices, got dtype {arr.dtype}; pass e.g. y.long()"
        )
    if len(arr) and (arr.min() < 0 or arr.max() >= num_classes):
        raise InputError(
            f"{name} has values in [{arr.min()}, {arr.max()}] but num_classes is {num_classes} "
            f"(valid: 0 to {num_classes - 1}); check the labels or pass the right num_classes"
        )
    return arr.astype(np.int64)


def _flags(value: Any, name: str) -> np.ndarray:
    arr = _vector(value, name)
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.number) and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    raise InputError(f"{name} must be booleans (or 0/1), one per attack; got dtype {arr.dtype}")


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise InputError(
            f"inputs must have one entry per attack, but their lengths differ: {listed}"
        )
    n = next(iter(lengths.values()))
    if n == 0:
        raise InputError("no attacks given (empty input): pass at least one attack")
    return n


def _check_upsilon(value: Any, name: str) -> float:
    try:
        u = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in (0, 1], got {value!r}") from None
    if not 0 < u <= 1:
        raise InputError(
            f"{name} must be in (0, 1] (a share of the features), got {value!r}; "
            "give Upsilon as a fraction, e.g. 0.145, not a percentage"
        )
    return u


def _upsilons(upsilons: Any, run_upsilon: float) -> np.ndarray:
    run = _check_upsilon(run_upsilon, "run_upsilon")
    arr = to_numpy(upsilons, "upsilons")
    if arr.ndim != 1 or not len(arr):
        raise InputError(f"upsilons must be a non-empty list of budgets, got shape {arr.shape}")
    values = np.array([_check_upsilon(u, "every upsilon") for u in arr.tolist()])
    above = values[values > run]
    if len(above):
        raise InputError(
            f"upsilons {above.tolist()} exceed run_upsilon {run}: success at a budget larger than "
            "the run's cannot be read from it; run JSMA at the largest budget you need"
        )
    return values


def _changed(value: Any, num_features: int) -> np.ndarray:
    arr = _vector(value, "changed")
    if not arr.size:
        return arr.astype(np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"changed must be counts of changed features, got dtype {arr.dtype}")
    if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
        raise InputError(
            "changed must be whole counts of changed features (not fractions); pass e.g. "
            "(x_adv != x).flatten(1).sum(1)"
        )
    if len(arr) and (arr.min() < 0 or arr.max() > num_features):
        raise InputError(
            f"changed has values in [{arr.min()}, {arr.max()}] but must lie in "
            f"[0, num_features={num_features}]; check num_features"
        )
    return arr.astype(np.int64)


@dataclass(frozen=True)
class SourceTargetMatrices:
    """Per (source s, target t) pair: the success rate, the mean distortion of the successful
    attacks, and the number of attacks (rows s, columns t; NaN where undefined)."""

    success_rate: np.ndarray
    mean_distortion: np.ndarray
    attempts: np.ndarray


def source_target_matrices(
    source: Any, target: Any, success: Any, distortion: Any, num_classes: int
) -> SourceTargetMatrices:
    """Success rate and mean distortion per source/target pair (Papernot 2016, Figures 12, 13).

    With A(s, t) the attacks of samples of class s aimed at class t:

        success_rate[s, t]    = |{a in A(s, t) : success_a}| / |A(s, t)|
        mean_distortion[s, t] = mean of distortion_a over a in A(s, t) with success_a
        attempts[s, t]        = |A(s, t)|

    ``distortion`` is the fraction of features changed (L0 share), in [0, 1]; it may be NaN
    for failed attacks (they are not used). Both matrices are NaN where there was no attempt
    (normally the diagonal); ``mean_distortion`` is also NaN where no attack succeeded.
    """
    k = check_integer(num_classes, "num_classes", low=2)
    s = _classes(source, "source", k)
    t = _classes(target, "target", k)
    ok = _flags(success, "success")
    d = _vector(distortion, "distortion")
    _same_length(source=s, target=t, success=ok, distortion=d)
    if not np.issubdtype(d.dtype, np.number) or d.dtype == np.bool_:
        raise InputError(f"distortion must be fractions of features changed, got dtype {d.dtype}")
    d = d.astype(np.float64)
    used = d[ok]
    if not np.isfinite(used).all() or (used < 0).any() or (used > 1).any():
        raise InputError(
            "distortion of successful attacks must be finite fractions in [0, 1] (the share of "
            "features changed); divide counts by the number of features"
        )
    pair = s * k + t
    attempts = np.bincount(pair, minlength=k * k).reshape(k, k)
    wins = np.bincount(pair[ok], minlength=k * k).reshape(k, k)
    total = np.bincount(pair[ok], weights=used, minlength=k * k).reshape(k, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(attempts > 0, wins / attempts, np.nan)
        mean = np.where(wins > 0, total / wins, np.nan)
    return SourceTargetMatrices(rate.astype(np.float64), mean.astype(np.float64), attempts)


def success_at_budgets(
    changed: Any, success: Any, num_features: int, upsilons: Any, run_upsilon: float
) -> np.ndarray:
    """Success of each sample at each budget Upsilon u, read from one JSMA run at ``run_upsilon``.

    JSMA is deterministic, its path does not depend on the budget, and it stops at success;
    so a sample that succeeded after changing ``changed`` features succeeds at budget u iff

        success_u = success and changed <= max_features(u, M)

    (``brittle.perturbation.max_features``, the project's L0 rounding). Returns booleans of
    shape ``(len(upsilons), N)``, in the order of ``upsilons``.

    Exact when every iteration changes features not changed before, as with ``|theta| = 1``:
    each changed feature saturates and leaves the search domain, so a run at u follows the
    same path and is stopped by the budget exactly when the full run needs more than
    ``max_features(u, M)`` features. With ``|theta| < 1`` a feature can be changed again, a
    run at u can stop one step earlier than this count implies, and the result is an upper
    bound. Budgets above ``run_upsilon`` are refused: the run cannot tell them.
    """
    m = check_positive_integer(num_features, "num_features")
    ok = _flags(success, "success")
    c = _changed(changed, m)
    _same_length(changed=c, success=ok)
    budgets = _upsilons(upsilons, run_upsilon)
    allowed = np.array([max_features(float(u), m) for u in budgets], dtype=np.int64)
    return ok[None, :] & (c[None, :] <= allowed[:, None])


@dataclass(frozen=True)
class SuccessCurve:
    """Per budget u_k (ascending) and pair (s, t): the success rate tau_k and the mean
    distortion eps_k of the attacks successful at u_k. Arrays of shape (U, K, K)."""

    upsilons: np.ndarray
    success_rate: np.ndarray
    mean_distortion: np.ndarray


def success_curve(
    source: Any,
    target: Any,
    changed: Any,
    success: Any,
    num_features: int,
    upsilons: Any,
    run_upsilon: float,
    num_classes: int,
) -> SuccessCurve:
    """tau(s, t, u) and eps(s, t, u) over a sweep of Upsilon, from one JSMA run.

    For each budget u_k (sorted ascending), with success_u from :func:`success_at_budgets`:

        tau_k(s, t) = |{a in A(s, t) : success_u_k(a)}| / |A(s, t)|
        eps_k(s, t) = mean of changed_a / M over a in A(s, t) with success_u_k(a)

    NaN as in :func:`source_target_matrices`: no attempt (tau and eps), no success (eps).
    """
    k = check_integer(num_classes, "num_classes", low=2)
    m = check_positive_integer(num_features, "num_features")
    s = _classes(source, "source", k)
    t = _classes(target, "target", k)
    ok = _flags(success, "success")
    c = _changed(changed, m)
    _same_length(source=s, target=t, changed=c, success=ok)
    budgets = np.sort(_upsilons(upsilons, run_upsilon))
    at = success_at_budgets(c, ok, m, budgets, run_upsilon)
    distortion = c / m
    mats = [source_target_matrices(s, t, at[i], distortion, k) for i in range(len(budgets))]
    return SuccessCurve(
        budgets,
        np.stack([mat.success_rate for mat in mats]),
        np.stack([mat.mean_distortion for mat in mats]),
    )


def hardness(
    source: Any,
    target: Any,
    changed: Any,
    success: Any,
    num_features: int,
    upsilons: Any,
    run_upsilon: float,
    num_classes: int,
) -> np.ndarray:
    """Hardness of each source/target pair (Papernot 2016, Figure 14), ``(K, K)``:

        H(s, t) = integral over tau of eps(s, t, tau) d tau

    where eps(s, t, tau) is the mean distortion needed to reach success rate tau. Over the
    sweep of :func:`success_curve` (budgets ascending), the points are (tau_k, eps_k) for the
    budgets with tau_k > 0, after the sweep's origin (0, 0): at Upsilon = 0 nothing changes,
    so nothing succeeds (the attacked inputs are not already classified as their targets);
    integrated by the trapezoidal rule (``np.trapezoid``). Hence: NaN where the pair has no
    attempt or never succeeds (hardness undefined); a pair whose attacks all succeed with
    distortion d has H = d / 2; a pair needing more distortion for the same success rates
    is harder.
    """
    curve = success_curve(
        source, target, changed, success, num_features, upsilons, run_upsilon, num_classes
    )
    k = curve.success_rate.shape[1]
    out = np.full((k, k), np.nan)
    for s in range(k):
        for t in range(k):
            tau, eps = curve.success_rate[:, s, t], curve.mean_distortion[:, s, t]
            keep = tau > 0  # False for NaN (no attempt)
            if keep.any():
                taus, epss = np.concatenate([[0.0], tau[keep]]), np.concatenate([[0.0], eps[keep]])
                out[s, t] = float(_trapezoid(epss, taus))
    return out
