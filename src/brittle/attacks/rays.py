"""RayS (Chen & Gu, KDD 2020): a decision-based Linf attack by hierarchical sign search.

It sees the model's predicted label only. The smallest Linf perturbation is sought as a ray:
a sign vector s in {-1, +1}^d and the radius r at which x + r s first meets the goal. The
signs are searched block by block, halving the blocks (the hierarchy), and a sign flip is
kept when its ray meets the goal nearer. Batched over samples: every sample flips the same
block at the same iteration, each with its own query budget.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from brittle.threat import Capability, Norm

from .base import AttackRun, MinimizationAttack
from .decision import adversarial, clip_rows, count, flat_box
from .params import SEED, TARGETED, NormArg, budget, declared, norm_choice, param
from .rows import first

RAY_TOLERANCE = 1e-3
"""The paper's binary search tolerance, along the ray's unit L2 direction s / sqrt(d)."""


def block(level: int, index: int, features: int) -> tuple[int, int]:
    """The features ``[start, end)`` of block ``index`` of ``2^level`` blocks of
    ceil(d / 2^level) features each (the last one shorter)."""
    size = math.ceil(features / 2**level)
    start = index * size
    return start, min(features, start + size)


def next_block(level: int, index: int, features: int) -> tuple[int, int]:
    """The block after ``(level, index)``: the next of its level, or the first of the next
    level after the last (the hierarchy goes on with single features, in cycles)."""
    _, end = block(level, index, features)
    index += 1
    if index == 2**level or end == features:
        return level + 1, 0
    return level, index


@declared
class RayS(MinimizationAttack):
    """RayS (Chen & Gu 2020), decision-based, Linf.

    The Linf distance to the decision boundary is sought as a search over rays: for a sign
    vector s in {-1, +1}^d (the directions of the Linf ball's vertices),

        g(s) = min { r >= 0 : clip(x* + r s) meets the goal },    min over s of g(s),

    where clip is the box (so g(s) is the Linf size of the perturbation found, at most r).
    **Hierarchical sign search**: s starts at all +1; at stage k the d features (in their
    flat order) are cut into 2^k blocks, and for each block in turn the candidate s' is s
    with that block's signs flipped. **Ray check**: one query at the best radius so far,
    clip(x* + r_best s'): if it does not meet the goal, g(s') >= r_best and s' is dropped;
    else a binary search on [0, r_best] finds g(s') to the tolerance, and s' and its radius
    replace the best. Before any ray met the goal, r_best is the box's widest side (a
    corner of the box). After the single features the hierarchy starts again.

    ``tolerance``: the binary search stops when the bracket of r is below it (default the
    paper's 0.001 along the unit L2 direction s / sqrt(d), so 0.001 / sqrt(d) in Linf, times
    the box's width). A sample stops when its query budget ``max_queries`` is spent or, with
    a cap ``eps``, once its radius is within it (as the paper's evaluation at eps). Every
    point kept has been confirmed to meet the goal by a query. Counting, per sample: one
    query for the clean input, one per ray check, one per binary search step. A sample
    already meeting the goal comes back unchanged. No random draws (``seed`` is that of
    random targets). One host sync per model call (the count of rows, which sizes it) and
    one ending each binary search (the count that finds no sample left to search).
    """

    capability = Capability.ORACLE_LABELS
    norms = frozenset({Norm.LINF})
    supports_unbounded = False
    supports_query_budget: ClassVar[bool] = True
    norm: NormArg = norm_choice("linf", ("linf",))
    eps: float | None = budget(default=None)
    max_queries: int = param(default=10_000, help="Most queries per sample.", low=1)
    tolerance: float | None = param(
        default=None,
        help="Binary search tolerance of the radius (default: 0.001 / sqrt(d) of the box width).",
        low=0.0,
        low_open=True,
        cli="ray-tolerance",  # --tolerance is the bisection's of --minimize
    )
    targeted: bool = TARGETED
    seed: int = SEED

    def _run(self, run: AttackRun) -> Tensor:
        access, shape = run.access, run.x.shape
        x = run.x.flatten(1)
        n, d = x.shape
        box = flat_box(run)
        low, high = box
        widest = float((high - low).max()) if d else 0.0
        tolerance = self.tolerance or RAY_TOLERANCE / math.sqrt(max(d, 1)) * widest
        every = torch.arange(n, device=x.device)
        clean = adversarial(run, x, every)
        best = x.clone()
        radius = torch.where(clean, 0.0, math.inf).to(x.dtype)
        signs = torch.ones_like(x)
        going = ~clean
        level, index = 0, 0
        while True:
            if run.eps is not None:
                going &= radius > run.eps.to(x.dtype)
            ask = going & (access.remaining() > 0)
            k = count(ask)
            if not k:
                break
            rows = first(ask, k)
            start, end = block(level, index, d)
            trial = signs.clone()
            trial[rows, start:end] *= -1
            reach = radius.clamp(max=widest)
            met = adversarial(run, clip_rows(x[rows] + reach[rows, None] * trial[rows], box), rows)
            searching = torch.zeros_like(going)
            searching[rows] = met
            found = self._search(run, x, trial, searching, reach, tolerance, box)
            better = searching & (found < radius)
            radius = torch.where(better, found, radius)
            signs = torch.where(better[:, None], trial, signs)
            point = clip_rows(x + found[:, None] * trial, box)
            best = torch.where(better[:, None], point, best)
            level, index = next_block(level, index, d)
        return best.view(shape)

    def _search(
        self,
        run: AttackRun,
        x: Tensor,
        trial: Tensor,
        searching: Tensor,
        high: Tensor,
        tolerance: float,
        box: tuple[Tensor, Tensor],
    ) -> Tensor:
        """The binary search on [0, high] of the rays ``trial`` of the samples ``searching``
        (whose ray met the goal at ``high``), while the bracket is above ``tolerance`` and
        the budget lasts: the upper ends, radii confirmed to meet the goal."""
        access = run.access
        low = torch.zeros_like(high)
        high = high.clone()
        while True:
            ask = searching & (high - low > tolerance) & (access.remaining() > 0)
            k = count(ask)
            if not k:
                return high
            rows = first(ask, k)
            mid = (low[rows] + high[rows]) / 2
            met = adversarial(run, clip_rows(x[rows] + mid[:, None] * trial[rows], box), rows)
            high[rows] = torch.where(met, mid, high[rows])
            low[rows] = torch.where(met, low[rows], mid)
