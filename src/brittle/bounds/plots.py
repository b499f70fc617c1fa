"""The figures of the Fawzi et al. 2018 bounds, as PNG bytes.

Drawn on matplotlib's :class:`~matplotlib.figure.Figure` (no pyplot, no global state) and
rendered by :func:`brittle.report.plots.to_png`, like :mod:`brittle.reproduce.figures`.
:func:`bound_cdf_plot` takes numbers already computed (measured robustness and the bound's
curve); the two others draw the theory itself, for balanced classes, from
:mod:`brittle.bounds.theorems`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from brittle.bounds.theorems import (
    corollary_robustness_upper_bound,
    gaussian_mean_norm,
    normalised,
    robustness_upper_bound,
)
from brittle.errors import InputError
from brittle.report.plots import literal, to_png


def _balanced(k: int) -> np.ndarray:
    """``K`` classes of mass ``1/K`` each."""
    return np.full(k, 1.0 / k)


def _class_counts(classes: Sequence[int]) -> list[int]:
    """``classes`` checked: a non-empty list of integers >= 2."""
    counts = [int(k) for k in classes]
    if not counts or any(k < 2 for k in counts):
        raise InputError(f"classes must be a non-empty list of class counts >= 2, got {classes!r}")
    return counts


def bound_cdf_plot(
    curves: Mapping[str, npt.ArrayLike],
    bound_eta: npt.ArrayLike,
    bound_p: npt.ArrayLike,
    quantile_eta: float,
    *,
    q: float = 0.5,
    xlabel: str = "perturbation norm eta",
    title: str = "empirical P(r <= eta) against the bound for any classifier",
) -> bytes:
    """The empirical CDFs ``P(r <= eta)`` of measured robustness (e.g. ``r_Z``, ``r_in``,
    ``r_unc``; one curve per entry of ``curves``, each the per-sample values, ``inf`` where a
    search failed: they count in ``n`` but never reach the curve) against the bound's curve
    ``(bound_eta, bound_p)``, and the bound on robustness at quantile ``q`` (``quantile_eta``)
    as a vertical line. Theorem 1 says every classifier's CDF lies on or above the bound's
    curve, so the measured curves should sit above it, and their ``q``-quantiles left of the
    line. The values must share one scale (all raw in one space, or all normalised)."""
    eta = np.asarray(bound_eta, dtype=float)
    p = np.asarray(bound_p, dtype=float)
    if eta.ndim != 1 or eta.shape != p.shape or eta.size == 0:
        raise InputError(
            f"bound_eta and bound_p must be 1-D of the same length, got {eta.shape} and {p.shape}"
        )
    if not curves:
        raise InputError("curves must hold at least one set of robustness values")
    fig = Figure(figsize=(5.8, 3.9), layout="constrained")
    ax = fig.add_subplot()
    for label, raw in curves.items():
        values = np.sort(np.asarray(raw, dtype=float).ravel())
        if values.size == 0:
            raise InputError(f"curve {label!r} has no robustness values")
        finite = values[np.isfinite(values)]
        levels = np.arange(1, finite.size + 1) / values.size
        ax.step(
            np.concatenate([[0.0], finite]),
            np.concatenate([[0.0], levels]),
            where="post",
            label=f"{literal(label)} (n = {values.size})",
        )
    ax.plot(eta, p, color="black", linestyle="--", lw=1.6, label="bound (Theorem 1)")
    ax.axhline(q, color="#999999", lw=0.8, linestyle=":")
    if np.isfinite(quantile_eta):
        ax.axvline(
            quantile_eta,
            color="#c0392b",
            lw=1.0,
            linestyle=":",
            label=f"bound on robustness at q = {q:g}: {quantile_eta:.3g}",
        )
    ax.set_xlabel(literal(xlabel))
    ax.set_ylabel("P(r <= eta)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(literal(title), fontsize=9)
    return to_png(fig)


def bound_vs_classes_plot(
    classes: Sequence[int],
    *,
    q: float = 0.5,
    lipschitz: float | None = None,
    mean_norm: float | None = None,
) -> bytes:
    """The bound on robustness at quantile ``q`` (Theorem 1's exact sum, solved by
    :func:`~brittle.bounds.theorems.robustness_upper_bound`) for ``K`` balanced classes, as a
    function of ``K``, with the corollary's bound (the same for every ``K >= 2``) as a
    horizontal line: fewer classes allow more robustness. In latent space when ``lipschitz``
    is None, else in image space for an ``L``-Lipschitz generator; divided by ``mean_norm``
    when it is given."""
    counts = _class_counts(classes)
    bounds = [robustness_upper_bound(q, _balanced(k), lipschitz) for k in counts]
    corollary = corollary_robustness_upper_bound(q, lipschitz)
    if mean_norm is not None:
        bounds = [normalised(b, mean_norm) for b in bounds]
        corollary = normalised(corollary, mean_norm)
    fig = Figure(figsize=(5.2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(counts, bounds, marker="o", markersize=4, color="#1f5fa8", label="Theorem 1")
    ax.axhline(
        corollary, color="#c0392b", linestyle="--", lw=1.0, label="corollary (every class <= 1/2)"
    )
    if max(counts) / min(counts) >= 10:
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(counts, [str(k) for k in counts])
    ax.set_xlabel("number of classes K (balanced)")
    space = "||r_Z||" if lipschitz is None else "||r_in||"
    ax.set_ylabel(
        f"bound on {space} at q = {q:g}" + (" / mean norm" if mean_norm is not None else "")
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("bound on robustness against the number of classes", fontsize=9)
    return to_png(fig)


def bound_vs_latent_dim_plot(
    dims: Sequence[int],
    *,
    classes: Sequence[int] = (2, 10),
    q: float = 0.5,
    measured: Mapping[int, float] | None = None,
) -> bytes:
    """The normalised bound in latent space at quantile ``q`` as a function of the latent
    dimension ``d``: the bound on ``||r_Z||`` is the same for every ``d``, but the mean norm
    of ``z ~ N(0, I_d)``, ``E||z|| = sqrt(2) Gamma((d + 1) / 2) / Gamma(d / 2)``, grows like
    ``sqrt(d)``, so the bound relative to it shrinks like ``1 / sqrt(d)``: a smaller latent
    dimension allows more robustness. One curve per number of balanced ``classes``;
    ``measured`` adds points ``{d: normalised bound}`` (e.g. from each generator's estimated
    class probabilities)."""
    ds = np.asarray(sorted({int(d) for d in dims}))
    if ds.size == 0 or ds[0] < 1:
        raise InputError(f"dims must be a non-empty list of latent dimensions >= 1, got {dims!r}")
    norms = gaussian_mean_norm(ds)
    fig = Figure(figsize=(5.2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for k in _class_counts(classes):
        bound = robustness_upper_bound(q, _balanced(k))
        ax.plot(ds, bound / norms, label=f"Theorem 1, K = {k} balanced")
    corollary = corollary_robustness_upper_bound(q)
    ax.plot(
        ds,
        corollary / norms,
        color="#c0392b",
        linestyle="--",
        lw=1.0,
        label="corollary (every class <= 1/2)",
    )
    if measured:
        points = sorted(measured.items())
        ax.scatter(
            [d for d, _ in points],
            [b for _, b in points],
            color="black",
            s=16,
            zorder=3,
            label="estimated class probabilities",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ds, [str(d) for d in ds], minor=False)
    ax.set_xticks([], minor=True)
    ax.set_xlabel("latent dimension d")
    ax.set_ylabel(f"bound on ||r_Z|| / E||z|| at q = {q:g}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("normalised latent bound against the latent dimension", fontsize=9)
    return to_png(fig)
