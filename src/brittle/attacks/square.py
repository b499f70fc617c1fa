"""The Square attack of Andriushchenko, Croce, Flammarion & Hein (ECCV 2020): score queries only.

A random search over localised square-shaped updates at the boundary of the budget. Each
iteration draws one square window per sample, changes the perturbation on it, queries the
model once, and keeps the change only if it lowers the score margin
(:func:`~brittle.attacks.score_objective.score_objective`). The window's area is a fraction p of
the image, halved at the iterations {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000} of 10,000
(rescaled to ``max_queries``): large moves first, fine ones later.
"""

from __future__ import annotations

import math
from functools import cache
from typing import ClassVar

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.perturbation import broadcast_view
from brittle.threat import Capability, Norm

from .base import AttackRun, FixedBudgetAttack
from .fgsm import ALL_GOALS
from .params import SEED, TARGETED, NormArg, budget, declared, norm_choice, param
from .rows import first
from .score_objective import score_objective

HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
"""The paper's iterations (of 10,000) after which the window's share p is halved."""
DRAWS_PER_CHUNK = 100
"""Iterations whose draws are made at once (the draws of iteration t are the elements
t k ... t k + k - 1 of the sample's sequence, whatever the chunks: only the speed depends on
this)."""
_TINY = 1e-10


def window_share(p_init: float, iteration: int, iterations: int) -> float:
    """p at ``iteration`` of ``iterations``: p_init halved at each of :data:`HALVINGS` passed
    (on the schedule rescaled to 10,000 iterations)."""
    scaled = iteration * 10_000 // iterations
    return p_init / 2 ** sum(scaled > mark for mark in HALVINGS)


def window_side(p: float, height: int, width: int, norm: Norm) -> int:
    """The window's side s, so that s^2 is about p of the image's H * W pixels.

    Linf: at least 1 and at most min(H, W) - 1; L2: at least 3 and odd (its update has a
    positive and a negative half), at most min(H, W).
    """
    s = round(math.sqrt(p * height * width))
    if norm is Norm.LINF:
        return max(1, min(s, min(height, width) - 1))
    s = max(s, 3)
    s += 1 - s % 2
    most = min(height, width)
    return min(s, most - 1 + most % 2)


def pseudo_gaussian(rows: int, cols: int) -> Tensor:
    """The paper's pseudo-Gaussian rectangle of ``rows x cols``, unit L2 norm:

        M[i, j] = sum_{k = d(i, j)}^{K - 1} 1 / (k + 1)^2,

    with d the Chebyshev distance of (i, j) to the centre (rows // 2, cols // 2) and
    K = max(rows, cols) // 2 + 1: nested rectangles, the centre the largest."""
    i = (torch.arange(rows, dtype=torch.float64) - rows // 2).abs()[:, None]
    j = (torch.arange(cols, dtype=torch.float64) - cols // 2).abs()[None, :]
    distance = torch.maximum(i, j)
    k = torch.arange(max(rows, cols) // 2 + 1, dtype=torch.float64)
    weights = 1.0 / (k + 1) ** 2
    m = (weights * (k >= distance[..., None])).sum(-1)
    return m / m.norm()


@cache
def _bump_on(side: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """:func:`square_bump` on ``device`` in ``dtype``, copied there once."""
    return square_bump(side).to(device, dtype)


@cache
def square_bump(side: int) -> Tensor:
    """The L2 update's pattern on an s x s window, unit L2 norm: a pseudo-Gaussian rectangle
    on the first s // 2 rows and its negative on the others (float64, CPU)."""
    top = pseudo_gaussian(side // 2, side)
    bottom = -pseudo_gaussian(side - side // 2, side)
    m = torch.cat([top, bottom])
    return m / m.norm()


def window_masks(top: Tensor, left: Tensor, side: int, height: int, width: int) -> Tensor:
    """Per sample, its square window ``[top, top + side) x [left, left + side)`` as a boolean
    mask ``(N, 1, H, W)``."""
    r = torch.arange(height, device=top.device)[None, :] - top[:, None]
    c = torch.arange(width, device=left.device)[None, :] - left[:, None]
    rows = (r >= 0) & (r < side)
    cols = (c >= 0) & (c < side)
    return (rows[:, :, None] & cols[:, None, :])[:, None]


def placed(pattern: Tensor, top: Tensor, left: Tensor, height: int, width: int) -> Tensor:
    """Each sample's ``pattern`` ``(N, C, s, s)`` put on its window of an ``(N, C, H, W)``
    image of zeros."""
    n, c, side, _ = pattern.shape
    r = torch.arange(height, device=top.device)[None, :] - top[:, None]
    col = torch.arange(width, device=left.device)[None, :] - left[:, None]
    inside = window_masks(top, left, side, height, width)
    full = pattern[
        torch.arange(n, device=top.device)[:, None, None, None],
        torch.arange(c, device=top.device)[None, :, None, None],
        r.clamp(0, side - 1)[:, None, :, None],
        col.clamp(0, side - 1)[:, None, None, :],
    ]
    return full * inside


@declared
class Square(FixedBudgetAttack):
    """Square attack (Andriushchenko, Croce, Flammarion & Hein 2020), score-based, Linf and L2.

    Random search (the paper's Algorithm 1): from x^0 it tries, per iteration,
    x_new = Proj_{B_eps(x) ∩ box}(x^k + delta) for a random update delta on a square window of
    side s (s^2 about p of the image) and keeps x^{k+1} = x_new if it lowers the margin
    o(x_new) < o(x^k), else x^k.

    - Linf (Algorithm 2): x^0 is x plus vertical stripes, eps times a random sign per channel
      and column; an update sets the window to the vertex x + eps * sigma, one random sign
      sigma per channel. Where that vertex leaves the window as it is, the opposite vertex is
      tried (the paper redraws the signs).
    - L2 (Algorithm 3): x^0 is a grid of squares of side min(H, W) // 5, each the
      bump of :func:`square_bump` times a random sign per channel, scaled to norm eps. An
      update moves the perturbation's mass on two random windows W1 and W2 onto W1: per
      channel, W1 becomes the bump times a random sign plus its old content over that old
      content's norm, rescaled to the norm sqrt(max(eps^2 - ||delta||^2, 0) / C + ||delta on
      W1 ∪ W2||^2), W2 outside W1 becomes 0, and the whole perturbation is rescaled to norm
      eps.

    ``p_init`` is the window's share of the image at the start (AutoAttack's 0.8; the paper
    halves it on the schedule of :data:`HALVINGS`). Inputs must be images (C, H, W) with
    sides of at least 3. Each sample stops as soon as it meets the goal, or when it has spent
    ``max_queries`` queries (``result.exhausted``). Counting, per sample: one query for the
    clean scores, one for x^0, then one per iteration; a candidate that the box leaves where
    the iterate is, is not queried. Draws (windows, signs, the bump's orientation) come from
    the sample's own stream (``seed``, its id). One host sync per iteration: the counts of
    the samples still going and of the candidates to query.
    """

    capability = Capability.ORACLE_SCORES
    goals = ALL_GOALS
    norms = frozenset({Norm.LINF, Norm.L2})
    supports_query_budget: ClassVar[bool] = True
    eps: float = budget()
    norm: NormArg = norm_choice("linf", ("linf", "l2"))
    max_queries: int = param(default=5_000, help="Most queries per sample.", low=1)
    p_init: float = param(
        default=0.8,
        help="The square window's share of the image at the start (halved on a schedule).",
        low=0.0,
        low_open=True,
        high=1.0,
    )
    targeted: bool = TARGETED
    seed: int = SEED

    # ------------------------------------------------------------------ the attack
    def _run(self, run: AttackRun) -> Tensor:
        access, x = run.access, run.x
        if x.ndim != 4 or min(x.shape[2], x.shape[3]) < 3:
            raise InputError(
                f"Square needs image inputs (C, H, W) with sides of at least 3, got per-sample "
                f"shape {tuple(x.shape[1:])}; use simba, which needs no image layout"
            )
        every = torch.arange(len(x), device=x.device)
        scores = access.scores(x, every)
        run.clean_scores = scores
        done = run.goal_met(scores)
        x_best = x.clone()
        objective = score_objective(run, scores, every)
        active = every[~done & (access.remaining(every) > 0)]
        if not len(active):
            return x_best
        start = self._start(run, active)
        found = access.scores(start, active)
        x_best[active] = start
        objective[active] = score_objective(run, found, active)
        done[active] = run.goal_met(found, active)
        iterations = self.max_queries
        iteration = 1
        # ``active`` may still hold samples that finished in the last iteration (``going``
        # says which did not): they are dropped at the next count, the one host sync per
        # iteration, which also sizes the batch of candidates that moved
        going = ~done[active] & (access.remaining(active) > 0)
        while True:
            if (iteration - 1) % DRAWS_PER_CHUNK == 0:
                draws, place = self._draws(run, active, iteration - 1)
            u = draws[place[active], (iteration - 1) % DRAWS_PER_CHUNK]
            p = window_share(self.p_init, iteration, iterations)
            candidate = self._candidate(run, active, x_best[active], p, u)
            moved = going & (candidate != x_best[active]).flatten(1).any(1)
            left, queried = torch.stack([going.sum(), moved.sum()]).tolist()
            if not left:
                return x_best
            pos = first(moved, queried)
            rows, candidate = active[pos], candidate[pos]
            active = active[first(going, left)]
            if queried:
                found = access.scores(candidate, rows)
                value = score_objective(run, found, rows)
                better = value < objective[rows]
                wide = broadcast_view(better, candidate)
                x_best[rows] = torch.where(wide, candidate, x_best[rows])
                objective[rows] = torch.where(better, value, objective[rows])
                done[rows] = torch.where(better, run.goal_met(found, rows), done[rows])
            going = ~done[active] & (access.remaining(active) > 0)
            iteration += 1

    def _draws(self, run: AttackRun, rows: Tensor, done: int) -> tuple[Tensor, Tensor]:
        """The k uniforms of each of the :data:`DRAWS_PER_CHUNK` iterations after the first
        ``done`` of the samples ``rows``, ``(len(rows), DRAWS_PER_CHUNK, k)``, and where each
        sample's row is in them."""
        channels = run.x.shape[1]
        k = 2 + channels if self.norm is Norm.LINF else 5 + channels
        draws = run.uniform(
            ("square", self.norm.value), DRAWS_PER_CHUNK * k, rows, start=done * k
        ).view(len(rows), DRAWS_PER_CHUNK, k)
        place = torch.full((len(run.x),), -1, dtype=torch.long, device=run.x.device)
        place[rows] = torch.arange(len(rows), device=run.x.device)
        return draws, place

    def _start(self, run: AttackRun, rows: Tensor) -> Tensor:
        """x^0 for the samples ``rows``: stripes (Linf) or a grid of bumps (L2)."""
        x = run.x[rows]
        _, c, h, w = x.shape
        eps = run.eps_view(rows)
        if self.norm is Norm.LINF:
            u = run.uniform(("square-start", "linf"), c * w, rows).view(len(rows), c, 1, w)
            return run.access.clip(x + eps * torch.where(u < 0.5, -1.0, 1.0).to(x.dtype))
        side = max(min(h, w) // 5, 1)
        grid_h, grid_w = h // side, w // side
        cells = grid_h * grid_w
        draws = run.uniform(("square-start", "l2"), cells * (c + 1), rows)
        draws = draws.view(len(rows), cells, c + 1)
        bump = square_bump(side).to(x.device)
        delta = torch.zeros(len(rows), c, h, w, dtype=torch.float64, device=x.device)
        top0, left0 = (h - side * grid_h) // 2, (w - side * grid_w) // 2
        for cell in range(cells):
            u = draws[:, cell]
            top = top0 + side * (cell // grid_w)
            left = left0 + side * (cell % grid_w)
            pattern = torch.where(u[:, 0, None, None] < 0.5, bump, bump.T)[:, None]
            signs = torch.where(u[:, 1:] < 0.5, -1.0, 1.0)[:, :, None, None]
            delta[:, :, top : top + side, left : left + side] = pattern * signs
        return self._rescaled(run, rows, x, delta.to(x.dtype))

    def _rescaled(self, run: AttackRun, rows: Tensor, x: Tensor, delta: Tensor) -> Tensor:
        """x + eps * delta / ||delta||_2, clipped to the box."""
        size = delta.flatten(1).norm(dim=1).clamp_min(_TINY)
        scale = run.eps_view(rows) / size.view(-1, *([1] * (delta.ndim - 1)))
        return run.access.clip(x + delta * scale)

    def _candidate(
        self, run: AttackRun, rows: Tensor, current: Tensor, p: float, u: Tensor
    ) -> Tensor:
        """One update per sample ``rows`` from its uniforms ``u``: the point to query."""
        x = run.x[rows]
        h, w = x.shape[2], x.shape[3]
        side = window_side(p, h, w, self.norm)
        top = (u[:, 0] * (h - side + 1)).long().clamp_max(h - side)
        left = (u[:, 1] * (w - side + 1)).long().clamp_max(w - side)
        mask = window_masks(top, left, side, h, w)
        if self.norm is Norm.LINF:
            signs = torch.where(u[:, 2:] < 0.5, -1.0, 1.0).to(x.dtype)[:, :, None, None]
            eps = run.eps_view(rows)
            candidate = torch.where(mask, run.access.clip(x + eps * signs), current)
            same = ~(candidate != current).flatten(1).any(1)
            flipped = torch.where(mask, run.access.clip(x - eps * signs), current)
            return torch.where(same.view(-1, 1, 1, 1), flipped, candidate)
        return self._l2_candidate(run, rows, current, side, (top, left), u)

    def _l2_candidate(
        self,
        run: AttackRun,
        rows: Tensor,
        current: Tensor,
        side: int,
        first: tuple[Tensor, Tensor],
        u: Tensor,
    ) -> Tensor:
        """The L2 update (Algorithm 3) at the window ``first`` (tops, lefts): W1 gains the
        mass of W1 ∪ W2, W2 is emptied."""
        x = run.x[rows]
        _, c, h, w = x.shape
        delta = current - x
        mask = window_masks(*first, side, h, w)
        top2 = (u[:, 2] * (h - side + 1)).long().clamp_max(h - side)
        left2 = (u[:, 3] * (w - side + 1)).long().clamp_max(w - side)
        both = mask | window_masks(top2, left2, side, h, w)
        eps = run.eps_view(rows).flatten()
        total = delta.flatten(1).norm(dim=1)
        on_both = (delta * both).pow(2).sum((2, 3)).sqrt()
        on_first = (delta * mask).pow(2).sum((2, 3)).sqrt()
        bump = _bump_on(side, x.device, x.dtype)
        pattern = torch.where(u[:, 4, None, None] < 0.5, bump, bump.T)[:, None]
        signs = torch.where(u[:, 5:] < 0.5, -1.0, 1.0).to(x.dtype)[:, :, None, None]
        update = (
            placed(pattern * signs, *first, h, w)
            + delta * mask / (on_first + _TINY)[..., None, None]
        )
        length = ((eps**2 - total**2).clamp_min(0)[:, None] / c + on_both**2).sqrt()
        update = update / update.pow(2).sum((2, 3), keepdim=True).sqrt().clamp_min(_TINY)
        update = update * length[..., None, None]
        return self._rescaled(run, rows, x, delta * ~both + update)
