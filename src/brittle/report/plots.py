"""Figures of an evaluation, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot), so drawing
never touches a global state or needs a display.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from brittle.eval.runner import Examples

_DPI = 110


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def accuracy_curve(eps: Sequence[float], summaries: Sequence[dict[str, Any]], title: str) -> bytes:
    """Robust accuracy and success rate against the budget; eps = 0 is the clean accuracy."""
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    clean = float(np.nanmean([s["clean_accuracy"] for s in summaries]))
    xs = [0.0, *eps]
    robust = [clean, *(s["robust_accuracy"] for s in summaries)]
    success = [s["success_rate"] for s in summaries]
    ax.plot(xs, robust, marker="o", color="#1f5fa8", label="robust accuracy")
    ax.plot(list(eps), success, marker="s", color="#c0392b", label="success rate (on correct)")
    ax.set_xlabel("eps (budget)")
    ax.set_ylabel("fraction")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    return to_png(fig)


def _image(array: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` to what imshow takes: ``(H, W)`` for one channel, ``(H, W, C)`` else."""
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def _perturbation(array: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` to ``(H, W)``: the channel mean of the perturbation."""
    return np.asarray(array.mean(axis=0))


def example_grid(
    eps: Sequence[float], examples: Sequence[Examples], classes: Sequence[str]
) -> bytes | None:
    """Clean inputs, then per budget the adversarial inputs and their perturbations.

    Perturbations are drawn with a diverging colormap (red: increase, blue: decrease),
    amplified to the row's largest ``|delta|``, which the row's label states. Titles give the
    prediction on the adversarial input, red when the attack succeeded. ``None`` when no
    example was kept.
    """
    if not examples or not examples[0].indices:
        return None
    cols = len(examples[0].indices)
    rows = 1 + 2 * len(eps)
    fig = Figure(figsize=(1.1 * cols + 1.2, 1.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    first = examples[0]
    for j in range(cols):
        ax = axes[0, j]
        ax.imshow(_image(first.clean[j].numpy()), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"label {classes[int(first.y[j])]}", fontsize=8)
    axes[0, 0].set_ylabel("clean", fontsize=8)
    for i, (e, ex) in enumerate(zip(eps, examples, strict=True)):
        delta = (ex.adversarial - ex.clean).numpy()
        scale = float(np.abs(delta).max()) or 1.0
        adv_row, delta_row = axes[1 + 2 * i], axes[2 + 2 * i]
        for j in range(min(cols, len(ex.indices))):
            adv_row[j].imshow(_image(ex.adversarial[j].numpy()), cmap="gray", vmin=0, vmax=1)
            won = bool(ex.success[j])
            adv_row[j].set_title(
                f"pred {classes[int(ex.pred_adv[j])]}",
                fontsize=8,
                color="#c0392b" if won else "#333333",
            )
            delta_row[j].imshow(_perturbation(delta[j]), cmap="RdBu_r", vmin=-scale, vmax=scale)
        adv_row[0].set_ylabel(f"adversarial\neps={e:g}", fontsize=8)
        delta_row[0].set_ylabel(f"perturbation\nscale ±{scale:.3g}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "clean, adversarial (red title: attack succeeded) and perturbation "
        "(red +, blue -, amplified to the stated scale)",
        fontsize=9,
    )
    return to_png(fig)
