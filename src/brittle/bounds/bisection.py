"""Bisection along paths: the smallest change of label along a segment from a clean point
(:func:`refine_segment`, with a re-check of the refined points in one batch) or along a ray
searched by doubling (:func:`ray_search`, labels only)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from brittle.classifier import Classifier
from brittle.perturbation import broadcast_view

Path = Callable[[Tensor, Tensor], Tensor]
"""Maps path parameters ``t`` ``(M,)`` of the rows ``rows`` ``(M,)`` to their points."""
Changed = Callable[[Tensor, Tensor], Tensor]
"""Maps points of the rows ``rows`` to whether the model's label there changed."""

TOLERANCE = 1e-3
"""Bisection stops for a sample once its bracket is under this fraction of its upper end."""
MAX_BISECTIONS = 30

_NUDGES = (1e-3, 1e-2, 1e-1, 1.0)
"""Shares of the way from a refined point to its segment's end tried when the re-check of the
whole batch does not confirm it: a point within rounding of the boundary, which a batch of
another size can round the other way."""


def bisect_path(
    path: Path,
    changed: Changed,
    lo: Tensor,
    hi: Tensor,
    best: Tensor,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
) -> Tensor:
    """Bisect each row's bracket [lo, hi] of a path parameter; return its last changed point.

    ``lo`` is a parameter where the label has not changed, ``hi`` one where it has (rows with
    ``hi = inf`` are skipped); ``best`` holds each row's point at ``hi``. Each step evaluates
    the midpoints of the rows still going, in one batch, and moves ``hi`` (changed, and the
    point goes to ``best``) or ``lo`` (not changed). A row stops once hi - lo <= tolerance * hi
    (early stop per sample) or after ``max_steps`` steps. ``lo``, ``hi`` and ``best`` are
    updated in place. Along a path whose label changes once, hi ends within ``tolerance`` of
    the change; otherwise at some change, never at a point that was not seen changed.
    """
    active = ((hi - lo) > tolerance * hi).nonzero().squeeze(1)
    for _ in range(max_steps):
        if not len(active):
            break
        mid = (lo[active] + hi[active]) / 2
        points = path(mid, active)
        flip = changed(points, active)
        hi[active] = torch.where(flip, mid, hi[active])
        lo[active] = torch.where(flip, lo[active], mid)
        best[active] = torch.where(broadcast_view(flip, points), points, best[active])
        active = active[(hi[active] - lo[active]) > tolerance * hi[active]]
    return best


def refine_segment(
    model: Classifier,
    start: Tensor,
    end: Tensor,
    found: Tensor,
    y: Tensor,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
) -> Tensor:
    """Per sample, the point start + t (end - start), t in (0, 1], where ``model``'s label
    stops being ``y``, by bisection on t from the bracket [0, 1].

    ``start`` has label ``y``; ``end`` (where ``found``) does not. Rows not ``found`` come
    back as ``end``. A label that changes once along the segment is located within
    ``tolerance`` (relative) of the change: the smallest change along that direction.
    """
    direction = end - start

    def path(t: Tensor, rows: Tensor) -> Tensor:
        return start[rows] + broadcast_view(t, start) * direction[rows]

    def changed(points: Tensor, rows: Tensor) -> Tensor:
        return model.predict(points) != y[rows]

    lo = torch.zeros(len(start), dtype=start.dtype, device=start.device)
    hi = torch.where(found, 1.0, math.inf).to(lo)
    best = bisect_path(path, changed, lo, hi, end.clone(), tolerance, max_steps)
    return _confirm(model, path, hi, best, found, y)


def _confirm(
    model: Classifier, path: Path, hi: Tensor, best: Tensor, found: Tensor, y: Tensor
) -> Tensor:
    """Re-check the refined points of all rows in one batch; move those it does not confirm
    (within rounding of the boundary) 0.1%, 1%, 10%, then all of the way to the end."""
    for share in _NUDGES:
        doubt = (found & (model.predict(best) == y)).nonzero().squeeze(1)
        if not len(doubt):
            break
        t = hi[doubt] + (1 - hi[doubt]) * share
        best[doubt] = path(t, doubt)
        hi[doubt] = t
    return best


def ray_search(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    direction: Tensor,
    start: Tensor,
    doublings: int,
    tolerance: float = TOLERANCE,
) -> Tensor:
    """Per sample, a point of the ray clip(x + t u), u = direction / ||direction||, where
    ``model``'s label is no longer ``y``: t = start, 2 start, 4 start, ... (``doublings``
    times) until the label changes, then bisection between the last two (labels only: a
    decision-based search). Rows with a zero direction, an infinite start or no change come
    back as x."""
    size = direction.flatten(1).norm(dim=1)
    u = direction / broadcast_view(size.clamp_min(1e-12), direction)
    t = torch.where((size > 0) & torch.isfinite(start), start, math.inf)
    lo, hi, best = torch.zeros_like(t), torch.full_like(t, math.inf), x.clone()

    def path(s: Tensor, rows: Tensor) -> Tensor:
        return model.clip(x[rows] + broadcast_view(s, x) * u[rows])

    def changed(points: Tensor, rows: Tensor) -> Tensor:
        return model.predict(points) != y[rows]

    active = torch.isfinite(t).nonzero().squeeze(1)
    for _ in range(doublings + 1):
        if not len(active):
            break
        points = path(t[active], active)
        flip = changed(points, active)
        hi[active] = torch.where(flip, t[active], hi[active])
        lo[active] = torch.where(flip, lo[active], t[active])
        best[active] = torch.where(broadcast_view(flip, points), points, best[active])
        t[active] = t[active] * 2
        active = active[~flip]
    return bisect_path(path, changed, lo, hi, best, tolerance)
