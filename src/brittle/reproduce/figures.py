"""The figures of the Papernot et al. 2016 reproduction, as PNG bytes.

Each function takes numbers already computed (numbers before drawing) and draws on
matplotlib's :class:`~matplotlib.figure.Figure` (no pyplot, no global state), rendered by
:func:`brittle.report.plots.to_png`. Matrices are indexed ``[source, target]``: rows are the
source classes, columns the targets, as in the paper's Figures 12 to 14.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from brittle.report.plots import to_png


def _matrix(
    fig: Figure, ax: Axes, values: np.ndarray, title: str, fmt: str, scale: float = 1.0
) -> None:
    """A class x class heatmap with each defined cell written in it (NaN cells blank)."""
    k = values.shape[0]
    shown = np.ma.masked_invalid(values * scale)
    image = ax.imshow(shown, cmap="viridis", origin="upper")
    fig.colorbar(image, ax=ax, shrink=0.8)
    finite = shown.compressed()
    middle = float(finite.min() + finite.max()) / 2 if finite.size else 0.0
    for s in range(k):
        for t in range(k):
            v = values[s, t] * scale
            if np.isfinite(v):
                colour = "black" if v > middle else "white"
                ax.text(t, s, format(v, fmt), ha="center", va="center", fontsize=6, color=colour)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("target class")
    ax.set_ylabel("source class")
    ax.set_title(title, fontsize=9)


def source_target_maps(success_rate: np.ndarray, mean_distortion: np.ndarray) -> bytes:
    """Figures 12 and 13: success rate and mean distortion (percent of features changed,
    over successful samples) per source and target class."""
    fig = Figure(figsize=(9.5, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    _matrix(fig, left, success_rate, "success rate (%)", ".0f", 100)
    _matrix(fig, right, mean_distortion, "mean distortion (% of features)", ".1f", 100)
    return to_png(fig)


def hardness_map(hardness: np.ndarray, upsilons: Sequence[float]) -> bytes:
    """Figure 14: the hardness H(s, t) of each pair, from a sweep of Upsilon."""
    fig = Figure(figsize=(5.2, 4.4), layout="constrained")
    ax = fig.add_subplot()
    lo, hi = 100 * min(upsilons), 100 * max(upsilons)
    _matrix(
        fig, ax, hardness, f"hardness H(s, t), Upsilon from {lo:g}% to {hi:g}% (x1000)", ".1f", 1e3
    )
    return to_png(fig)


def distance_against_hardness(hardness: np.ndarray, mean_distance: np.ndarray) -> bytes:
    """Figure 15: the mean adversarial distance A(X, t) of each pair's samples against the
    pair's hardness; the title gives their Pearson correlation."""
    off = ~np.eye(hardness.shape[0], dtype=bool)
    h, a = hardness[off], mean_distance[off]
    keep = np.isfinite(h) & np.isfinite(a)
    fig = Figure(figsize=(5.2, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(h[keep], a[keep], s=14, color="#1f5fa8", alpha=0.8)
    title = "mean adversarial distance against hardness, one point per (s, t)"
    if keep.sum() > 2 and np.std(h[keep]) > 0 and np.std(a[keep]) > 0:
        title += f"\nPearson r = {np.corrcoef(h[keep], a[keep])[0, 1]:.2f}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("hardness H(s, t)")
    ax.set_ylabel("mean A(X, t) over the pair's samples")
    ax.grid(alpha=0.3)
    return to_png(fig)


def roc_curve(fpr: np.ndarray, tpr: np.ndarray, auc: float) -> bytes:
    """The ROC curve of the adjacent-pixel detector (section 6), with its area."""
    fig = Figure(figsize=(4.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, color="#c0392b", label=f"detector (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="chance")
    ax.set_xlabel("false positive rate (clean flagged)")
    ax.set_ylabel("true positive rate (adversarial flagged)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title("adjacent-pixel detector, clean vs JSMA", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return to_png(fig)


def success_curves(upsilons: Sequence[float], curves: Mapping[str, Sequence[float]]) -> bytes:
    """Success rate against the largest distortion Upsilon allowed, one curve per run (read
    from each run at its own Upsilon: the samples that succeeded within the smaller budget)."""
    fig = Figure(figsize=(5.2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    xs = [100 * u for u in upsilons]
    for label, rates in curves.items():
        ax.plot(xs, [100 * r for r in rates], marker="o", markersize=3, label=label)
    ax.set_xlabel("Upsilon, largest distortion (% of features)")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("success rate against the distortion budget", fontsize=9)
    return to_png(fig)


def example_grid(clean: np.ndarray, adversarial: np.ndarray, success: np.ndarray) -> bytes:
    """Figure 1: for one image of each source class (rows), the sample crafted for each
    target (columns); the diagonal shows the clean image. ``clean`` is ``(K, C, H, W)``,
    ``adversarial`` ``(K, K, C, H, W)``, NaN where no image of the class was attacked;
    ``success`` ``(K, K)``. A red frame marks an attack that failed. Drawn as one mosaic
    (one image, not K x K axes), so it stays small and quick."""
    k, _, h, w = clean.shape
    pad = 2
    cell_h, cell_w = h + 2 * pad, w + 2 * pad
    mosaic = np.ones((k * cell_h, k * cell_w, 3))
    red = np.array([0.75, 0.22, 0.17])
    for s in range(k):
        for t in range(k):
            image = clean[s] if s == t else adversarial[s, t]
            if not np.isfinite(image).all():
                continue
            top, left = s * cell_h, t * cell_w
            if s != t and not bool(success[s, t]):
                mosaic[top : top + cell_h, left : left + cell_w] = red
            gray = np.clip(image.mean(axis=0), 0, 1)
            mosaic[top + pad : top + pad + h, left + pad : left + pad + w] = gray[..., None]
    fig = Figure(figsize=(6.4, 6.6), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([t * cell_w + cell_w / 2 - 0.5 for t in range(k)], [str(t) for t in range(k)])
    ax.set_yticks([s * cell_h + cell_h / 2 - 0.5 for s in range(k)], [str(s) for s in range(k)])
    ax.tick_params(length=0, labelsize=8, labeltop=True, labelbottom=False)
    ax.set_xlabel("target class")
    ax.set_ylabel("source class")
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(
        "one image per source class to every target; diagonal: clean; red frame: failed",
        fontsize=9,
    )
    return to_png(fig)
