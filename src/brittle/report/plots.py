"""Figures of an evaluation, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot), so drawing
never touches a global state or needs a display. The curves and the heatmap are drawn from
the report's content (``report.json``, see :func:`~brittle.report.content.build_report`),
so that they show exactly the numbers of its tables; the image grid from the kept images.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from brittle.eval.runner import Examples

from .content import eps_label, eps_labels

_DPI = 110
_WORST = "#1b2a41"
_SUCCEEDED = "#c0392b"
_MISCLASSIFIED = "#b9770e"
_PLAIN = "#333333"
_MAX_ANNOTATED_CLASSES = 20
_SHORT_TITLE = 10
"""The longest image title head (``"label 7"``) that keeps its confidence on its line."""
_LABEL_GAP = 2.0
"""The fewest pixels (at the PNG's resolution) between two tick labels."""


def literal(text: object) -> str:
    """``text`` escaped so that matplotlib draws it as written, never as mathtext.

    Matplotlib parses a text holding an even number of unescaped ``$`` as math: a class
    name such as ``"$x^$"`` makes drawing raise, ``"$\\alpha$ cat"`` is drawn as a Greek
    letter. Every ``$`` is escaped (``\\$``), which matplotlib draws as a plain dollar sign.
    Applied to all text that comes from the user (class names, attack labels, run and file
    names) where it reaches matplotlib; brittle's own labels hold no ``$``.
    """
    return str(text).replace("$", r"\$")


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _column(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """The ``key`` of each row as floats, NaN where it is missing or ``None``."""
    values = [row.get(key) for row in rows]
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


def _robust_line(
    ax: Axes, rows: Sequence[Mapping[str, Any]], label: str, color: str, *, worst: bool
) -> None:
    """Robust accuracy of ``rows`` against eps (eps = 0: clean accuracy) with its interval:
    thick with a band for the ``worst`` case, thin with error bars for one of the attacks."""
    eps = _column(rows, "eps")
    xs = np.concatenate([[0.0], eps])
    clean = np.nanmean(_column(rows, "clean_accuracy"))
    ys = np.concatenate([[clean], _column(rows, "robust_accuracy")])
    low, high = _column(rows, "robust_ci_low"), _column(rows, "robust_ci_high")
    if worst:
        ax.plot(xs, ys, marker="o", color=color, linewidth=2.2, label=literal(label), zorder=3)
        ax.fill_between(eps, low, high, color=color, alpha=0.15, linewidth=0)
    else:
        ax.plot(xs, ys, marker="s", markersize=4, color=color, linewidth=1.2, label=literal(label))
        below, above = ys[1:] - low, high - ys[1:]
        ax.errorbar(eps, ys[1:], yerr=[below, above], fmt="none", ecolor=color, capsize=3)


def _after(results: Sequence[Mapping[str, Any]], label: str) -> list[dict[str, Any]]:
    """The rows of robust accuracy after ``label`` and the attacks before it."""
    return [
        {"eps": r["eps"], "clean_accuracy": r["clean_accuracy"], **r["robust_after"][label]}
        for r in results
    ]


def accuracy_curve(report: Mapping[str, Any]) -> bytes:
    """The PNG of :func:`accuracy_figure`."""
    return to_png(accuracy_figure(report))


def accuracy_figure(report: Mapping[str, Any]) -> Figure:
    """Robust accuracy (left) and attack success rate (right) against the budget.

    The worst case over the attacks (or the one attack) is drawn thick, with its
    confidence interval as a band; with several attacks, each attack's own curve is drawn
    thin, with its interval as error bars. An attack that ran only on the samples still
    standing (a suite's later ones) is drawn as robust accuracy after it and the attacks
    before it, and its success rate is on the samples it attacked. Robust accuracy at
    eps = 0 is the clean accuracy.

    The x ticks are 0 and the budgets, labelled as the report writes them
    (:func:`~brittle.report.content.eps_labels`: ``8/255`` when the user wrote so); labels
    that would run together are turned upright, then thinned (:func:`separate_tick_labels`).
    """
    per_attack: Mapping[str, Sequence[Mapping[str, Any]]] = report["per_attack"]
    several = len(per_attack) > 1
    fig = Figure(figsize=(9.5, 3.6), layout="constrained", dpi=_DPI)
    robust_ax, success_ax = fig.subplots(1, 2)
    worst = "worst case" if several else str(report["attack"]["name"])
    lines = [(worst, report["results"], _WORST, True)]
    if several:
        lines += [
            (label, rows, f"C{i % 10}", False) for i, (label, rows) in enumerate(per_attack.items())
        ]
    standing = {a["label"] for a in report.get("attacks", []) if a.get("survivors_only")}
    for label, rows, color, is_worst in lines:
        if label in standing:
            _robust_line(
                robust_ax, _after(report["results"], label), f"after {label}", color, worst=False
            )
        else:
            _robust_line(robust_ax, rows, label, color, worst=is_worst)
        success_ax.plot(
            _column(rows, "eps"),
            _column(rows, "success_rate"),
            marker="o" if is_worst else "s",
            color=color,
            linewidth=2.2 if is_worst else 1.2,
            label=literal(f"{label} (on those standing)" if label in standing else label),
        )
    level = float(report["confidence"]["level"])
    robust_ax.set_title(f"robust accuracy ({100 * level:g}% interval)", fontsize=10)
    robust_ax.set_ylabel("fraction of the evaluated samples")
    success_ax.set_title("attack success (on correctly classified)", fontsize=10)
    labels = eps_labels(report)
    budgets = sorted({float(r["eps"]) for r in report["results"]})
    ticks = [0.0, *(b for b in budgets if b > 0)]
    texts = ["0", *(eps_label(labels, b) for b in ticks[1:])]
    for ax in (robust_ax, success_ax):
        ax.set_xlabel(f"eps ({report['threat_model']['norm']} budget)")
        ax.set_xticks(ticks, texts)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    separate_tick_labels(fig, [(robust_ax, "x"), (success_ax, "x")])
    return fig


def tick_label_boxes(fig: Figure, ax: Axes, axis: str) -> list[Bbox]:
    """The boxes (in pixels, as drawn) of the non-empty tick labels of ``ax``'s ``axis``
    (``"x"`` or ``"y"``), in tick order; the figure is laid out first."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    labels: list[Text] = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]


def _touching(a: Bbox, b: Bbox) -> bool:
    """Whether two label boxes overlap or come closer than :data:`_LABEL_GAP` pixels."""
    gap = _LABEL_GAP
    return a.x0 < b.x1 + gap and b.x0 < a.x1 + gap and a.y0 < b.y1 + gap and b.y0 < a.y1 + gap


def labels_overlap(boxes: Sequence[Bbox]) -> bool:
    """Whether any two of ``boxes`` touch (:func:`_touching`)."""
    return any(_touching(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def separate_tick_labels(fig: Figure, axes: Sequence[tuple[Axes, str]]) -> None:
    """Tick labels that never run together, on each ``(ax, axis)`` of ``axes``.

    Where x labels side by side touch, they are turned upright (rotated 90 degrees). Where
    labels still touch, some are left empty (their ticks stay): the last and the first are
    kept, then each other in order that touches none kept. The figure is laid out again
    after each change, as the labels' room depends on the layout.
    """
    FigureCanvasAgg(fig)
    for ax, axis in axes:
        if axis == "x" and labels_overlap(tick_label_boxes(fig, ax, axis)):
            ax.tick_params(axis="x", labelrotation=90)
    for _ in range(3):
        changed = False
        for ax, axis in axes:
            labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
            texts = [t.get_text() for t in labels]
            boxes = tick_label_boxes(fig, ax, axis)
            if not labels_overlap(boxes):
                continue
            shown = [i for i, t in enumerate(texts) if t]
            order = [shown[-1], shown[0], *shown[1:-1]]
            kept: list[int] = []
            for i in order:
                box = boxes[shown.index(i)]
                if not any(_touching(box, boxes[shown.index(j)]) for j in kept):
                    kept.append(i)
            ticks = ax.get_xticks() if axis == "x" else ax.get_yticks()
            thinned = [t if i in kept else "" for i, t in enumerate(texts)]
            if axis == "x":
                ax.set_xticks(ticks, thinned)
            else:
                ax.set_yticks(ticks, thinned)
            changed = True
        if not changed:
            return


def is_colour(array: np.ndarray) -> bool:
    """Whether an input ``(C, H, W)`` is a colour image: three channels, red, green, blue."""
    return array.shape[0] == 3


def _image(array: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] to what imshow takes: ``(H, W, 3)`` for a colour image, else
    ``(H, W)`` (the mean of the channels), clipped to [0, 1]."""
    image = array.transpose(1, 2, 0) if is_colour(array) else array.mean(axis=0)
    return np.clip(image, 0.0, 1.0)


def _perturbation(array: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` to ``(H, W)``: the channel mean of the perturbation."""
    return np.asarray(array.mean(axis=0))


def colour_perturbation(delta: np.ndarray) -> tuple[np.ndarray, float]:
    """A colour perturbation ``(3, H, W)`` as an RGB image ``(H, W, 3)`` and its scale.

    The image is ``0.5 + delta / (2 * s)`` with ``s = max |delta|`` over the sample (the
    scale): mid-gray where nothing changed, each channel brighter where it was raised and
    darker where it was lowered, the largest change at 0 or 1. A zero perturbation is all
    mid-gray (scale 0).
    """
    scale = float(np.abs(delta).max(initial=0.0))
    image = 0.5 + delta / (2 * scale) if scale > 0 else np.full_like(delta, 0.5)
    return np.clip(image.transpose(1, 2, 0), 0.0, 1.0), scale


def _titled(head: str, confidence: float) -> str:
    """``head`` and a softmax confidence: ``"pred 3, 87%"``, the confidence on its own line
    when ``head`` is long (a long class name), ``head`` alone when it is not known (NaN)."""
    if not math.isfinite(confidence):
        return head
    sep = ", " if len(head) <= _SHORT_TITLE else "\n"
    return f"{head}{sep}{100 * confidence:.0f}%"


def clean_title(label: str, pred: str, confidence: float) -> tuple[str, str]:
    """The title of a clean image and its colour: the label and the confidence of the clean
    prediction (``"label 7, 99%"``); when the model gets the clean input wrong, also its
    prediction on a second line, in orange (``"label 7"`` over ``"pred 1, 60%"``)."""
    if pred == label:
        return _titled(f"label {label}", confidence), _PLAIN
    return f"label {label}\n{_titled(f'pred {pred}', confidence)}", _MISCLASSIFIED


def adversarial_title(pred: str, confidence: float, succeeded: bool) -> tuple[str, str]:
    """The title of an adversarial image and its colour: the prediction and its confidence
    (``"pred 3, 87%"``), red when the attack succeeded."""
    return _titled(f"pred {pred}", confidence), _SUCCEEDED if succeeded else _PLAIN


def example_grid(
    eps: Sequence[float],
    examples: Sequence[Examples],
    classes: Sequence[str],
    eps_text: Sequence[str] | None = None,
) -> bytes | None:
    """The PNG of :func:`example_figure`; ``None`` when no example was kept."""
    fig = example_figure(eps, examples, classes, eps_text)
    return None if fig is None else to_png(fig)


def example_figure(
    eps: Sequence[float],
    examples: Sequence[Examples],
    classes: Sequence[str],
    eps_text: Sequence[str] | None = None,
) -> Figure | None:
    """Clean inputs, then per budget the adversarial inputs and their perturbations.

    Titles give the label and the confidence of the clean prediction (orange, with the
    prediction, when the clean input is already misclassified), and the prediction on the
    adversarial input with its confidence (red when the attack succeeded). The perturbation
    of a colour image (3 channels) is drawn in colour, as :func:`colour_perturbation`
    (mid-gray: no change), magnified to its own largest ``|delta|``, written under it; that
    of a gray image with a diverging colormap (red: increase, blue: decrease), magnified to
    the row's largest ``|delta|``, which the row's label states. Rows are labelled with
    ``eps_text`` (each budget as written, e.g. ``8/255``; default 4 significant digits).
    Each sample keeps its column across the budgets. ``None`` when no example was kept.
    """
    if not examples or not examples[0].indices:
        return None
    first = examples[0]
    colour = is_colour(first.clean[0].numpy())
    texts = list(eps_text) if eps_text is not None else [f"{e:.4g}" for e in eps]
    column = {sid: j for j, sid in enumerate(first.indices)}
    cols, rows = len(first.indices), 1 + 2 * len(eps)
    height = 1.35 * rows + (0.15 * len(eps) if colour else 0)
    fig = Figure(figsize=(1.15 * cols + 1.3, height), layout="constrained", dpi=_DPI)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for j in range(cols):
        axes[0, j].imshow(_image(first.clean[j].numpy()), cmap="gray", vmin=0, vmax=1)
        title, color = clean_title(
            classes[int(first.y[j])],
            classes[int(first.pred_clean[j])],
            float(first.confidence_clean[j]),
        )
        axes[0, j].set_title(literal(title), fontsize=8, color=color)
    axes[0, 0].set_ylabel("clean", fontsize=8)
    for i, (text, ex) in enumerate(zip(texts, examples, strict=True)):
        delta = (ex.adversarial - ex.clean).numpy()
        scale = float(np.abs(delta).max(initial=0.0)) or 1.0
        adv_row, delta_row = axes[1 + 2 * i], axes[2 + 2 * i]
        for k, sid in enumerate(ex.indices):
            if sid not in column:
                continue
            col = column[sid]
            adv_row[col].imshow(_image(ex.adversarial[k].numpy()), cmap="gray", vmin=0, vmax=1)
            title, color = adversarial_title(
                classes[int(ex.pred_adv[k])], float(ex.confidence_adv[k]), bool(ex.success[k])
            )
            adv_row[col].set_title(literal(title), fontsize=8, color=color)
            if colour:
                image, own = colour_perturbation(delta[k])
                delta_row[col].imshow(image, vmin=0, vmax=1)
                delta_row[col].set_xlabel(f"max |δ| {own:.3g}", fontsize=7)
            else:
                delta_row[col].imshow(
                    _perturbation(delta[k]), cmap="RdBu_r", vmin=-scale, vmax=scale
                )
        adv_row[0].set_ylabel(f"adversarial\neps={literal(text)}", fontsize=8)
        delta_row[0].set_ylabel(
            "perturbation\n(colour)" if colour else f"perturbation\nscale ±{scale:.3g}",
            fontsize=8,
        )
    fig.suptitle(
        "clean (label, confidence), adversarial (prediction, confidence; red: attack succeeded) "
        + (
            "and perturbation in colour (0.5 + delta / (2 max |delta|) per image: gray is no "
            "change)"
            if colour
            else "and perturbation (red +, blue -, magnified to the stated scale)"
        ),
        fontsize=9,
    )
    return fig


def confusion_heatmap(confusion: Mapping[str, Any], eps_text: str | None = None) -> bytes:
    """The PNG of :func:`confusion_figure`."""
    return to_png(confusion_figure(confusion, eps_text))


def confusion_figure(confusion: Mapping[str, Any], eps_text: str | None = None) -> Figure:
    """The confusion matrix on the adversarial inputs as a heatmap with its counts.

    Rows are the true labels, columns the predictions on the adversarial inputs at budget
    ``confusion["eps"]`` (written as ``eps_text`` when given; the worst case over the
    attacks); the diagonal holds the samples still classified correctly. Counts are written
    in the cells up to :data:`_MAX_ANNOTATED_CLASSES` classes. Class names that would run
    together are turned upright, then thinned (:func:`separate_tick_labels`).
    """
    classes = [literal(c) for c in confusion["classes"]]
    matrix = np.array(confusion["matrix"], dtype=float).reshape(len(classes), len(classes))
    side = min(2.4 + 0.3 * len(classes), 10.0)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained", dpi=_DPI)
    ax = fig.add_subplot()
    shown = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(float(matrix.max()), 1.0))
    fig.colorbar(shown, ax=ax, shrink=0.8, label="samples")
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, fontsize=8)
    ax.set_yticks(ticks, classes, fontsize=8)
    ax.set_xlabel("prediction on the adversarial input")
    ax.set_ylabel("true label")
    budget = eps_text or f"{float(confusion['eps']):.4g}"
    ax.set_title(f"eps = {literal(budget)}, worst case over the attacks", fontsize=10)
    if len(classes) <= _MAX_ANNOTATED_CLASSES:
        middle = matrix.max() / 2
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                color = "white" if count > middle else "#222222"
                weight = "bold" if row == col else "normal"
                ax.text(
                    col,
                    row,
                    f"{count:g}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=color,
                    fontweight=weight,
                )
    separate_tick_labels(fig, [(ax, "x"), (ax, "y")])
    return fig
