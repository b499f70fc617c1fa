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

from brittle.errors import InputError
from brittle.metrics.goodfellow2014.sweep import EpsilonSweep
from brittle.metrics.goodfellow2014.transfer import TransferMatrix
from brittle.report.plots import literal, to_png


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
        ax.plot(xs, [100 * r for r in rates], marker="o", markersize=3, label=literal(label))
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


# ------------------------------------------------------------------ Goodfellow et al. 2015
_PAD = np.array([0.85, 0.9, 1.0])
"""The colour between filters of :func:`weight_grid` (no weight value maps to it)."""


def _filter_mosaic(filters: np.ndarray) -> np.ndarray:
    """``(rows, cols, H, W)`` filters as one RGB image, each filter scaled by its largest
    absolute weight: mid-grey is 0, white the most positive, black the most negative."""
    rows, cols, h, w = filters.shape
    pad = 1
    mosaic = np.ones(((h + pad) * rows + pad, (w + pad) * cols + pad, 3)) * _PAD
    for r in range(rows):
        for c in range(cols):
            f = filters[r, c]
            scale = float(np.abs(f).max()) or 1.0
            top, left = pad + r * (h + pad), pad + c * (w + pad)
            mosaic[top : top + h, left : left + w] = (0.5 + 0.5 * f / scale)[..., None]
    return mosaic


def weight_grid(filters_by_model: Mapping[str, np.ndarray]) -> bytes:
    """Figure 3: the first-layer filters of each model, side by side (e.g. naively and
    adversarially trained). Each value is ``(rows, cols, H, W)``, as
    :func:`brittle.metrics.first_layer_filters` returns: one row per maxout unit with its
    pieces, or one row of class templates. Each filter is scaled by its largest absolute
    weight: mid-grey is 0, white positive, black negative."""
    panels = list(filters_by_model.items())
    if not panels or any(np.ndim(f) != 4 for _, f in panels):
        raise InputError("weight_grid needs at least one model's filters, each (rows, cols, H, W)")
    width = sum(max(1.6, 0.5 * f.shape[1]) for _, f in panels)
    height = max(1.2, 0.5 * max(f.shape[0] for _, f in panels)) + 0.5
    fig = Figure(figsize=(min(width, 16), min(height, 16)), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, filters) in zip(axes, panels, strict=True):
        ax.imshow(_filter_mosaic(filters), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(literal(name), fontsize=9)
    fig.suptitle("first-layer filters (grey 0, white positive, black negative)", fontsize=9)
    return to_png(fig)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The runs of consecutive true values of ``mask``, as ``[start, stop)`` index pairs."""
    padded = np.concatenate([[0], mask.astype(np.int8), [0]])
    change = np.flatnonzero(np.diff(padded))
    return list(zip(change[::2].tolist(), change[1::2].tolist(), strict=True))


def epsilon_sweep_plot(sweep: EpsilonSweep, class_names: Sequence[str], index: int = 0) -> bytes:
    """Figure 4, left: the logit of every class against eps along ``x + eps * sign(grad_x J)``
    for input ``index`` of ``sweep``; the true class is drawn thick and black, the eps where
    the prediction is wrong are shaded."""
    logits, eps = sweep.logits[index], sweep.eps
    if len(class_names) != logits.shape[1]:
        raise InputError(
            f"class_names must name the {logits.shape[1]} classes, got {len(class_names)} names"
        )
    true = int(sweep.y[index])
    edges = np.concatenate([eps[:1], (eps[1:] + eps[:-1]) / 2, eps[-1:]])
    fig = Figure(figsize=(5.8, 3.9), layout="constrained")
    ax = fig.add_subplot()
    for i, (start, stop) in enumerate(_runs(sweep.wrong[index])):
        label = "prediction wrong" if i == 0 else None
        ax.axvspan(edges[start], edges[stop], color="#c0392b", alpha=0.12, lw=0, label=label)
    for k, name in enumerate(class_names):
        if k == true:
            label = literal(f"{name} (true)")
            ax.plot(eps, logits[:, k], color="black", lw=2.4, zorder=3, label=label)
        else:
            ax.plot(eps, logits[:, k], lw=1.0, label=literal(name))
    ax.axvline(0, color="#999999", lw=0.8, linestyle="--")
    ax.set_xlabel("eps" + (" (clipped to the box)" if sweep.clipped else ""))
    ax.set_ylabel("logit (argument to the softmax)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("logits along x + eps * sign(grad_x J(theta, x, y))", fontsize=9)
    return to_png(fig)


def _named_matrix(
    fig: Figure, ax: Axes, values: np.ndarray, texts: np.ndarray, names: Sequence[str], title: str
) -> None:
    """A model x model heatmap of percentages with ``texts`` written in the cells (NaN
    cells blank): rows the model the examples were crafted on, columns the classifier."""
    m = len(names)
    image = ax.imshow(np.ma.masked_invalid(100 * values), cmap="viridis", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, shrink=0.8)
    for a in range(m):
        for b in range(m):
            v = 100 * values[a, b]
            colour = "black" if not np.isfinite(v) or v > 50 else "white"
            ax.text(b, a, texts[a, b], ha="center", va="center", fontsize=7, color=colour)
    shown = [literal(name) for name in names]
    ax.set_xticks(range(m), shown, rotation=30, ha="right")
    ax.set_yticks(range(m), shown)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("classified by")
    ax.set_ylabel("crafted on")
    ax.set_title(title, fontsize=9)


def transfer_heatmap(matrix: TransferMatrix) -> bytes:
    """Transferability (section 8): the error rate of the examples crafted on each model
    (rows) when classified by each model (columns), and, on the examples both get wrong,
    how often they agree on the wrong class (the number of such examples in brackets)."""
    names, m = matrix.names, len(matrix.names)
    errors = np.array([[f"{100 * v:.1f}" for v in row] for row in matrix.error])
    agreed = np.array(
        [
            [
                ("n/a" if np.isnan(v) else f"{100 * v:.1f}") + f"\n({int(c)})"
                for v, c in zip(row, counts, strict=True)
            ]
            for row, counts in zip(matrix.agreement, matrix.shared_errors, strict=True)
        ]
    )
    side = 1.6 + 0.8 * m
    fig = Figure(figsize=(2 * side + 1.2, side), layout="constrained")
    left, right = fig.subplots(1, 2)
    _named_matrix(fig, left, matrix.error, errors, names, "error rate (%)")
    _named_matrix(fig, right, matrix.agreement, agreed, names, "same wrong class when both err (%)")
    title = f"{matrix.attack} examples transferred between models, n = {matrix.n}"
    fig.suptitle(literal(title), fontsize=9)
    return to_png(fig)
