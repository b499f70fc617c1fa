"""A grid of generated samples, as PNG bytes (matplotlib's Agg canvas, no pyplot)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from brittle.errors import InputError
from brittle.report.plots import literal, to_png
from brittle.validation import as_tensor, check_positive_integer


def sample_grid(x: Any, nrow: int = 10, title: str | None = None) -> bytes:
    """Images ``x`` ``(N, C, H, W)`` in ``[0, 1]`` as one mosaic of ``nrow`` images a row,
    with a thin white border between them; ``title`` above it. One or three channels."""
    images = as_tensor(x, "x").detach().float().cpu().clamp(0, 1).numpy()
    if images.ndim != 4 or len(images) == 0 or images.shape[1] not in (1, 3):
        raise InputError(
            f"x must be a non-empty batch (N, C, H, W) with 1 or 3 channels, got {images.shape}"
        )
    check_positive_integer(nrow, "nrow")
    n, c, h, w = images.shape
    cols, rows, pad = min(nrow, n), math.ceil(n / nrow), 1
    mosaic = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3))
    for i, image in enumerate(images):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        mosaic[top : top + h, left : left + w] = (
            image.transpose(1, 2, 0) if c == 3 else image[0, ..., None]
        )
    fig = Figure(figsize=(max(2.0, 0.45 * cols), max(2.0, 0.45 * rows) + 0.3), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(literal(title), fontsize=9)
    return to_png(fig)


def modulus_plot(deltas: Any, omega: Any, lipschitz: float, title: str | None = None) -> bytes:
    """The empirical modulus of continuity ``omega(delta)`` (:func:`~.smoothness.
    modulus_of_continuity`) against the Lipschitz envelope ``L delta``, which lies above it
    when ``L`` is right."""
    t = as_tensor(deltas, "deltas").double().cpu().numpy()
    w = as_tensor(omega, "omega").double().cpu().numpy()
    if t.shape != w.shape or t.ndim != 1 or len(t) == 0:
        raise InputError(
            f"deltas and omega must be 1-D of the same length, got {t.shape} and {w.shape}"
        )
    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(t, w, "o-", label="empirical omega(delta): largest ||g(z) - g(z')||")
    ax.plot(t, lipschitz * t, "--", label=f"L delta, L = {lipschitz:.4g}")
    ax.set_xlabel("delta = ||z - z'|| (latent L2)")
    ax.set_ylabel("image L2")
    ax.legend(fontsize=8)
    ax.set_title(literal(title or "Modulus of continuity of the generator"), fontsize=10)
    return to_png(fig)
