"""SimBA, the Simple Black-box Attack of Guo et al. (ICML 2019): score queries only."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.model import box_scale
from brittle.perturbation import broadcast_view, project
from brittle.threat import Capability, Norm

from .base import AttackRun, FixedBudgetAttack
from .fgsm import ALL_GOALS
from .params import SEED, TARGETED, NormArg, budget, declared, norm_choice, param
from .rows import first
from .score_objective import score_objective

DEFAULT_STEP = 0.2
"""The paper's step epsilon for images in [0, 1] (pixel and DCT bases), as a fraction of the
box's width."""


def dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The orthonormal DCT-II matrix: row u is the u-th cosine basis vector of length n."""
    k = torch.arange(n, dtype=torch.float64)
    rows = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    rows[0] /= math.sqrt(2)
    return rows.to(device, dtype)


def frequency_bands(shape: tuple[int, ...], device: torch.device | None = None) -> Tensor:
    """For each DCT coefficient (c, u, v) of an image of ``shape`` (C, H, W), flattened: its
    band max(u, v), so that lower frequencies come first (the paper's low-frequency order)."""
    c, h, w = shape[0], shape[1], shape[2]
    u = torch.arange(h, device=device)[:, None].expand(h, w)
    v = torch.arange(w, device=device)[None, :].expand(h, w)
    return torch.maximum(u, v).expand(c, h, w).flatten().to(torch.float64)


@declared
class SimBA(FixedBudgetAttack):
    """Simple Black-box Attack (Guo, Gardner, You, Wilson & Weinberger 2019), score-based.

    Picks orthonormal directions q one at a time from a basis Q, in a random order per
    sample, and for each tries x' - alpha q, then x' + alpha q, keeping the first that lowers
    the objective:

        x'_{k+1} = Proj_{B_eps(x) ∩ box}(x'_k -/+ alpha q_k)   if it lowers o(x'), else x'_k.

    ``basis="pixel"``: the standard basis (one feature per direction), in a random order;
    ``"dct"``: the 2D DCT basis of each channel (inputs (C, H, W)), lowest frequency band
    max(u, v) first, random within a band. The paper's objective is the probability of the
    true class (untargeted) or of the target (targeted); here it is the margin of the log
    probabilities, log p_y - max_{j != y} log p_j (targeted: max_{j != t} log p_j - log p_t),
    which is monotone in the same direction, reaches 0 exactly at the decision boundary and
    does not saturate when p_y rounds to 1 (for confidence reduction: log p_y). Scores are
    logits or probabilities: both give log probabilities.

    ``step_size`` is alpha; by default 0.2 of the box's width (the paper's 0.2 in [0, 1]), or
    ``eps`` for an Linf budget with the pixel basis (each feature moves by the whole budget).
    The budget is enforced at every step by projection. When a sample has tried every direction
    of the basis it starts another pass in a new random order (on inputs of few features one
    pass is soon over; the paper's images have far more features than queries). Each sample
    stops as soon as it meets the goal, after a pass in which no step was kept (another would
    find the same), or when it has spent ``max_queries`` queries (``result.exhausted``). Counting, per sample: one query for the clean scores, then one per
    candidate evaluated; a candidate that the box or the budget leaves where the iterate
    already is, is not queried. Draws (the order of directions) come from the sample's own
    stream (``seed``, its id). One host sync per query (two per direction where the first step
    did not help): the count of candidates to query, which sizes the model's batch.
    """

    capability = Capability.ORACLE_SCORES
    goals = ALL_GOALS
    norms = frozenset({Norm.L2, Norm.LINF})
    supports_query_budget: ClassVar[bool] = True
    eps: float = budget()
    norm: NormArg = norm_choice("l2", ("l2", "linf"))
    basis: str = param(
        default="pixel",
        help="Directions: the pixel basis or the DCT basis.",
        choices=("pixel", "dct"),
    )
    step_size: float | None = param(
        default=None,
        help="Step alpha per direction (default: 0.2 of the box width; eps for linf pixels).",
        low=0.0,
        low_open=True,
    )
    max_queries: int = param(default=10_000, help="Most queries per sample.", low=1)
    targeted: bool = TARGETED
    seed: int = SEED

    # ------------------------------------------------------------------ the pieces
    def _order(self, run: AttackRun, sweep: int, rows: Tensor) -> Tensor:
        """The order of directions ``(len(rows), d)`` of the samples ``rows`` in pass
        ``sweep``, each from its own stream: d uniforms sorted (a uniformly random
        permutation), within the frequency bands for the DCT basis."""
        u = run.uniform(("simba-order", sweep), run.x[0].numel(), rows)
        if self.basis == "dct":
            u = u + frequency_bands(tuple(run.x.shape[1:]), run.x.device)
        return u.argsort(dim=1, stable=True)

    def _directions(self, index: Tensor, like: Tensor, dct: tuple[Tensor, Tensor] | None) -> Tensor:
        """The unit directions of the basis elements ``index`` (one per row), shaped as inputs."""
        n, shape = len(index), like.shape[1:]
        if dct is None:
            q = torch.zeros(n, like[0].numel(), dtype=like.dtype, device=like.device)
            q[torch.arange(n, device=like.device), index] = 1.0
            return q.view(n, *shape)
        rows_h, rows_w = dct
        _, h, w = shape
        c, rest = index // (h * w), index % (h * w)
        u, v = rest // w, rest % w
        plane = rows_h[u][:, :, None] * rows_w[v][:, None, :]
        q = torch.zeros(n, *shape, dtype=like.dtype, device=like.device)
        q[torch.arange(n, device=like.device), c] = plane
        return q

    def _step(self, run: AttackRun) -> Tensor:
        """alpha per sample, shaped to broadcast over inputs."""
        if self.step_size is not None:
            alpha = torch.full(
                (len(run.x),), self.step_size, dtype=run.x.dtype, device=run.x.device
            )
        elif self.norm is Norm.LINF and self.basis == "pixel":
            assert run.eps is not None
            alpha = run.eps.to(run.x.dtype)
        else:
            alpha = torch.full(
                (len(run.x),),
                DEFAULT_STEP * box_scale(run.access.bounds),
                dtype=run.x.dtype,
                device=run.x.device,
            )
        return broadcast_view(alpha, run.x)

    # ------------------------------------------------------------------ the attack
    def _run(self, run: AttackRun) -> Tensor:
        access, x = run.access, run.x
        assert run.eps is not None
        if self.basis == "dct" and x.ndim != 4:
            raise InputError(
                f"SimBA's dct basis needs image inputs (C, H, W), got per-sample shape "
                f"{tuple(x.shape[1:])}; use basis='pixel'"
            )
        every = torch.arange(len(x), device=x.device)
        scores = access.scores(x, every)
        run.clean_scores = scores
        objective = score_objective(run, scores, every)
        done = run.goal_met(scores)
        x_adv = x.clone()
        alpha = self._step(run)
        dct = None
        if self.basis == "dct":
            dct = (
                dct_matrix(x.shape[2], x.dtype, x.device),
                dct_matrix(x.shape[3], x.dtype, x.device),
            )
        active = every[~done & (access.remaining(every) > 0)]
        sweep = 0
        while len(active):
            # drawn only for the samples still going; ``place`` finds a sample's row in it
            order = self._order(run, sweep, active)
            place = torch.empty_like(every)
            place[active] = torch.arange(len(active), device=x.device)
            moved_on = torch.zeros_like(done)
            # ``active`` may hold samples that finished at the last direction (``going`` says
            # which did not): the count before the first query of the next one drops them
            going = torch.ones_like(active, dtype=torch.bool)
            for k in range(order.shape[1]):
                active, accepted = self._try(
                    run, x_adv, objective, done, active, going, order[place[active], k], alpha, dct
                )
                moved_on[active] |= accepted
                going = ~done[active] & (access.remaining(active) > 0)
                if not len(active):
                    break
            # a pass that accepted nothing left the iterate where it was: another would too
            active = active[moved_on[active] & going]
            sweep += 1
        return x_adv

    def _try(
        self,
        run: AttackRun,
        x_adv: Tensor,
        objective: Tensor,
        done: Tensor,
        active: Tensor,
        going: Tensor,
        index: Tensor,
        alpha: Tensor,
        dct: tuple[Tensor, Tensor] | None,
    ) -> tuple[Tensor, Tensor]:
        """One direction for each of the samples ``active`` that is ``going``: x' - alpha q,
        then x' + alpha q where the first did not lower the objective. Updates the iterates
        in place; returns the samples that were going and which of them moved.

        One host sync per query: the count of candidates to query (with, at the first, the
        count of samples going)."""
        access, x = run.access, run.x
        assert run.eps is not None
        q = self._directions(index, x, dct)
        tried = torch.zeros_like(going)
        for sign in (-1.0, 1.0):
            candidate = project(
                x[active],
                x_adv[active] + sign * alpha[active] * q,
                self.norm,
                run.eps[active],
                access.bounds,
            )
            moved = going & ~tried & (access.remaining(active) > 0)
            moved &= (candidate != x_adv[active]).flatten(1).any(1)
            if sign < 0:
                left, queried = torch.stack([going.sum(), moved.sum()]).tolist()
                if left < len(active):
                    keep = first(going, left)
                    active, going, q, tried = active[keep], going[keep], q[keep], tried[keep]
                    candidate, moved = candidate[keep], moved[keep]
                if not left:
                    break
            else:
                queried = int(moved.sum())
            if not queried:
                continue
            pos = first(moved, queried)
            rows = active[pos]
            found = access.scores(candidate[pos], rows)
            value = score_objective(run, found, rows)
            better = value < objective[rows]
            wide = broadcast_view(better, candidate)
            x_adv[rows] = torch.where(wide, candidate[pos], x_adv[rows])
            objective[rows] = torch.where(better, value, objective[rows])
            done[rows] = torch.where(better, run.goal_met(found, rows), done[rows])
            tried[pos] = better
        return active, tried
