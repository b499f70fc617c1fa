"""The Jacobian-based saliency map attack of Papernot et al. (EuroS&P 2016, section 3)."""

from __future__ import annotations

from dataclasses import InitVar
from typing import Any

import torch
from torch import Tensor

from brittle.access import ModelAccess
from brittle.errors import InputError
from brittle.perturbation import max_features
from brittle.threat import Goal, Norm

from .base import AttackRun, FixedBudgetAttack
from .params import TARGETED, argument, declared, param
from .rows import first
from .targets import all_other_targets

UPSILON = 0.145
"""Papernot et al.'s budget on MNIST: at most 14.5% of the features changed."""

PAIR_CHUNK_ELEMENTS = 1 << 22
"""An exhaustive pair search looks at (rows x chunk x L) candidate pairs at a time, so its
memory stays bounded (about 16 MB of float32 per buffer) whatever the number L of candidates."""


def saliency_terms(
    access: ModelAccess,
    x: Tensor,
    target: Tensor,
    idx: Tensor | None,
    of: str,
    with_beta: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """alpha_i = dF_t/dX_i and beta_i = sum_{j != t} dF_j/dX_i per feature ``(N, M)``, and the
    logits at ``x`` (rows ``idx`` of the access's count): two vector-Jacobian products, or
    one when ``with_beta`` is false (the target-only score; beta is then zero and unused)."""
    k = access.num_classes
    onehot = torch.nn.functional.one_hot(target, k).to(x.dtype)
    vectors = torch.stack([onehot, 1 - onehot] if with_beta else [onehot], dim=1)
    products, scores = access.vjp(x, vectors, idx, of)
    alpha = products[:, 0].flatten(1)
    beta = products[:, 1].flatten(1) if with_beta else torch.zeros_like(alpha)
    return alpha, beta, scores


def saliency_map(alpha: Tensor, beta: Tensor, increase: bool) -> Tensor:
    """The saliency map S(X, t) of Papernot 2016 (equations 8 and 9), per feature ``(N, M)``.

    Increasing features: S[i] = 0 if alpha_i < 0 or beta_i > 0, else alpha_i |beta_i|;
    decreasing features: S[i] = 0 if alpha_i > 0 or beta_i < 0, else |alpha_i| beta_i. Both
    are -alpha_i beta_i where the sign constraints hold.
    """
    sign = 1.0 if increase else -1.0
    valid = (sign * alpha >= 0) & (sign * beta <= 0)
    return (-alpha * beta).where(valid, torch.zeros_like(alpha))


def _oriented(alpha: Tensor, beta: Tensor, increase: bool) -> tuple[Tensor, Tensor]:
    """``(a, b)`` with the constraints of either direction as ``a > 0, b > 0`` and the paper's
    score as ``a * b``: ``a = alpha, b = -beta`` (increasing), ``a = -alpha, b = beta``."""
    return (alpha, -beta) if increase else (-alpha, beta)


def best_single(
    alpha: Tensor, beta: Tensor, domain: Tensor, increase: bool, paper: bool
) -> tuple[Tensor, Tensor]:
    """The best feature per row and whether one exists (the single-feature saliency map).

    Paper: the largest S[i] > 0 of :func:`saliency_map` (S[i] > 0 exactly where the strict
    sign constraints hold). Target: alpha_i alone (its sign the direction of change).
    """
    if paper:
        score = saliency_map(alpha, beta, increase)
        valid = domain & (score > 0)
    else:
        score = alpha if increase else -alpha
        valid = domain & (score > 0)
    score = score.masked_fill(~valid, float("-inf"))
    return score.argmax(1)[:, None], valid.any(1)


def best_pair(
    alpha: Tensor,
    beta: Tensor,
    domain: Tensor,
    increase: bool,
    paper: bool,
    candidates: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The pair (p, q), p != q in the search domain, that maximises the pair saliency.

    Paper: alpha = alpha_p + alpha_q, beta = beta_p + beta_q; maximise alpha |beta| under
    alpha > 0 and beta < 0 (increasing; |alpha| beta under alpha < 0 and beta > 0 when
    decreasing). In the oriented terms ``a, b`` of :func:`_oriented` that is the largest
    ``(a_p + a_q)(b_p + b_q)`` with both sums positive. Found exactly, without looking at M^2
    pairs: the product grows with both sums, so the best partner of any feature is not
    dominated (no other feature has both a larger ``a`` and a larger ``b``) by any feature but
    the first of the pair. Both features of the best pair therefore lie in the first two
    Pareto layers of the points ``(a_i, b_i)`` (:func:`pareto_candidates`), usually a few
    dozen features, and only pairs of those are scored. ``candidates`` (optional, for very
    large inputs whose layers are wide) keeps only that many of them, those with the largest
    upper bound ``(a_p + max a)(b_p + max b)``: no longer exact.

    Target: maximise the sign-corrected alpha_p + alpha_q alone (ART's choice), exactly: the
    two largest.
    """
    pick, found, _ = pair_search(alpha, beta, domain, increase, paper, candidates)
    return pick, found


def pair_search(
    alpha: Tensor,
    beta: Tensor,
    domain: Tensor,
    increase: bool,
    paper: bool,
    candidates: int | None = None,
    width: int | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`best_pair`, with the candidate features of each row laid out in ``width`` slots
    (default: as many as the widest row needs, which the host reads: a sync).

    Also returns the slots the search needs, on the device (``None`` for ``paper=False``,
    which needs none): the result is :func:`best_pair`'s exactly when ``width`` is at least
    that, and a caller that reads it with other values saves the sync of the default.
    """
    a, b = _oriented(alpha, beta, increase)
    if not paper:
        pick, found = _top_two(a, domain)
        return pick, found, None
    keep = pareto_candidates(a, b, domain)
    if candidates is not None:
        keep &= _largest_bounds(a, b, keep, candidates)
    index, mask, needed = _compact(keep, width)
    pick, found = _exhaustive_pairs(a.gather(1, index), b.gather(1, index), mask)
    return index.gather(1, pick), found, needed


def pareto_candidates(a: Tensor, b: Tensor, domain: Tensor) -> Tensor:
    """The features of the domain in the first two Pareto layers of the points ``(a_i, b_i)``
    (maximising both), per row: a superset of every feature dominated by at most one other.

    Rows are sorted by ``a``, descending; a feature is on a layer unless a feature before it
    (so with an ``a`` at least as large) has a ``b`` at least as large, i.e. dominates it.
    """
    minus = a.new_full((), float("-inf"))
    order = torch.sort(a.where(domain, minus), dim=1, descending=True).indices
    inside = domain.gather(1, order)
    b_sorted = b.gather(1, order)

    def layer(members: Tensor) -> Tensor:
        values = b_sorted.where(members, minus)
        before = torch.cat([minus.expand(len(values), 1), values[:, :-1]], dim=1).cummax(1).values
        return members & (values > before)

    first = layer(inside)
    both = first | layer(inside & ~first)
    return torch.zeros_like(domain).scatter(1, order, both)


def _compact(keep: Tensor, width: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The indices of each row's kept features, left-aligned in ``(N, L)`` slots, which of
    them hold one, and the slots needed: the largest count, at least 2 and at most the
    number of features (a 0-dim tensor). ``L`` is ``width``, by default the slots needed (read
    by the host); a row with more features than ``width`` keeps its first ``width``."""
    n, m = keep.shape
    count = keep.sum(1)
    needed = count.max().clamp(min(2, m), m)
    if width is None:
        width = int(needed)
    slot = (keep.cumsum(1) - 1).where(keep, torch.full_like(count[:, None], width))
    features = torch.arange(m, device=keep.device).expand(n, m)
    index = torch.zeros(n, width + 1, dtype=torch.long, device=keep.device)
    index = index.scatter(1, slot.clamp_max(width), features)[:, :width]
    mask = torch.arange(width, device=keep.device)[None, :] < count[:, None]
    return index, mask, needed


def _largest_bounds(a: Tensor, b: Tensor, keep: Tensor, k: int) -> Tensor:
    """The ``k`` features of ``keep`` with the largest bound ``(a_p + max a)(b_p + max b)`` on
    any pair they are in (``-inf`` when no pair with them can be valid)."""
    minus = a.new_full((), float("-inf"))
    top_a = a.where(keep, minus).amax(1, keepdim=True)
    top_b = b.where(keep, minus).amax(1, keepdim=True)
    sa, sb = a + top_a, b + top_b
    bound = (sa * sb).where(keep & (sa > 0) & (sb > 0), minus)
    chosen = bound.topk(min(k, bound.shape[1]), dim=1).indices
    return torch.zeros_like(keep).scatter(1, chosen, True) & keep


def _top_two(a: Tensor, domain: Tensor) -> tuple[Tensor, Tensor]:
    """The two features of the domain with the largest ``a`` and whether their sum is > 0."""
    values, pick = a.masked_fill(~domain, float("-inf")).topk(2, dim=1)
    total = values.sum(1)
    return pick, torch.isfinite(total) & (total > 0)


def _exhaustive_pairs(a: Tensor, b: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The largest ``(a_p + a_q)(b_p + b_q)`` with both sums > 0 over pairs p != q of
    ``mask``, by looking at every pair, in chunks of rows p (memory independent of L^2)."""
    n, width = a.shape
    best_score = torch.full((n,), float("-inf"), dtype=a.dtype, device=a.device)
    best = torch.zeros(n, 2, dtype=torch.long, device=a.device)
    chunk = max(1, PAIR_CHUNK_ELEMENTS // max(1, n * width))
    q = torch.arange(width, device=a.device)
    for start in range(0, width, chunk):
        p = q[start : start + chunk]
        sa = a[:, p, None] + a[:, None, :]
        sb = b[:, p, None] + b[:, None, :]
        valid = mask[:, p, None] & mask[:, None, :] & (p[:, None] != q[None, :])
        valid &= (sa > 0) & (sb > 0)
        value, where = (sa * sb).masked_fill(~valid, float("-inf")).flatten(1).max(1)
        better = value > best_score
        best_score = torch.where(better, value, best_score)
        pick = torch.stack([p[where // width], where % width], dim=1)
        best = torch.where(better[:, None], pick, best)
    return best, torch.isfinite(best_score)


@declared
class JSMA(FixedBudgetAttack):
    """JSMA (Papernot et al. 2016, Algorithms 2 and 3), an L0 attack of budget Upsilon.

    At each iteration, from the forward derivative of the logits (or the probabilities) at
    the current input, alpha_i = dF_t/dX_i and beta_i = sum_{j != t} dF_j/dX_i, it picks the
    pair of features (p, q) of the search domain Gamma maximising alpha |beta| with
    alpha = alpha_p + alpha_q > 0 and beta = beta_p + beta_q < 0 (``theta > 0``, increasing
    features; ``theta < 0``: alpha < 0, beta > 0, maximising |alpha| beta), changes both by
    theta times the box's width, clips them to the box, and removes saturated features from
    Gamma. A sample stops when the model outputs t, when no valid pair is left (a failure,
    never a degenerate pick), or when one more pair would change more than
    ``max_features(Upsilon, M)`` features (the project's L0 rounding). ``pairs=False``
    picks single features; ``score="target"`` ranks by the target's derivative alone (what
    ART implements). The pair search is exact (:func:`best_pair`); ``max_candidates`` caps it for
    very large inputs, at the price of exactness.

    The budget is ``eps`` or its alias ``max_distortion`` (Upsilon, a share of the features);
    ``increase`` may state the direction instead of theta's sign (theta is then its size:
    ``increase=False`` decreases features by ``|theta|``). Goals: targeted and source/target; untargeted, each sample is tried against
    every other class (batched) and the success with the fewest changed features is kept.
    Costs per sample and iteration: one query and two gradients (two vector-Jacobian
    products; one with the target-only score, which needs alpha alone). The change theta is a share of the box's width, so the box must be bounded.
    A sample stops early on its target's label; the base then judges the result with the
    run's criterion. One host sync per iteration (the samples going on, and the slots the
    pair search needed), and one more where the search meets a row wider than any before.
    """

    goals = frozenset({Goal.UNTARGETED, Goal.TARGETED, Goal.SOURCE_TARGET})
    norms = frozenset({Norm.L0})
    supports_unbounded = False
    eps: float = param(
        default=UPSILON,
        help="Upsilon, the largest share of features changed.",
        low=0.0,
        high=1.0,
    )
    theta: float = param(
        default=1.0,
        help="Change per feature, a share of the box width (negative: decrease).",
        low=-1.0,
        high=1.0,
    )
    pairs: bool = param(default=True, help="Change pairs of features (False: single features).")
    use_logits: bool = param(
        default=True, help="Forward derivative of the logits (False: of the probabilities)."
    )
    score: str = param(
        default="paper",
        help="Saliency: the paper's alpha |beta|, or the target's derivative.",
        choices=("paper", "target"),
    )
    max_candidates: int | None = param(
        default=None,
        help="Cap the exact pair search at this many features (large inputs; not exact).",
        low=2,
    )
    targeted: bool = TARGETED
    max_distortion: InitVar[float | None] = argument(default=None, kw_only=True)
    increase: InitVar[bool | None] = argument(default=None, kw_only=True)

    def _configure(
        self,
        *,
        max_distortion: float | None = None,
        increase: bool | None = None,
        **values: Any,
    ) -> None:
        """Resolve the aliases: ``max_distortion`` is ``eps``; ``increase`` gives theta's sign."""
        eps, theta = values["eps"], values["theta"]
        if max_distortion is not None:
            if eps not in (UPSILON, max_distortion):
                raise InputError(
                    f"JSMA: eps={eps} and max_distortion={max_distortion} are the same budget "
                    "(Upsilon); give one of them"
                )
            values["eps"] = max_distortion
        if increase is not None and isinstance(theta, int | float):
            if increase and theta < 0:
                raise InputError(
                    f"JSMA: theta={theta} decreases features but increase=True; give a "
                    "positive theta or leave increase out"
                )
            values["theta"] = abs(theta) if increase else -abs(theta)
        super()._configure(**values)
        if self.theta == 0:
            raise InputError("JSMA: theta must not be 0 (it is the change per feature)")

    def _run(self, run: AttackRun) -> Tensor:
        if run.target is not None:
            return self._craft(run, torch.arange(len(run.x), device=run.x.device), run.target)
        return self._every_target(run)

    def _every_target(self, run: AttackRun) -> Tensor:
        """Untargeted: every other class for each sample, the fewest changed features kept."""
        x, y, k = run.x, run.y, run.access.num_classes
        rows = torch.arange(len(x), device=x.device)
        _, _, t = all_other_targets(rows, y, k)
        owner = rows.repeat_interleave(k - 1)
        crafted = self._craft(run, owner, t)
        scores = run.access.logits(crafted, owner)
        met = scores.argmax(1) != y[owner]
        changed = (crafted != x[owner]).flatten(1).sum(1).masked_fill(~met, x[0].numel() + 1)
        best = changed.view(len(x), k - 1).argmin(1)
        return crafted.view(len(x), k - 1, *x.shape[1:])[rows, best]

    def _craft(self, run: AttackRun, owner: Tensor, target: Tensor) -> Tensor:
        """The targeted crafting loop for rows ``owner`` of the run aimed at ``target``."""
        x0 = run.x[owner]
        n, m = len(x0), x0[0].numel()
        low, high = (
            torch.as_tensor(b, dtype=x0.dtype, device=x0.device) for b in run.access.bounds
        )
        low_f, high_f = low.expand(x0.shape[1:]).flatten(), high.expand(x0.shape[1:]).flatten()
        increase = self.theta > 0
        of = "logits" if self.use_logits else "probabilities"
        paper = self.score == "paper"
        step = self.theta * (high_f - low_f)
        allowed = max_features(float(self.eps or 0.0), m)
        per_step = 2 if self.pairs else 1
        x = x0.flatten(1).clone()
        domain = (x < high_f) if increase else (x > low_f)
        changed = torch.zeros(n, m, dtype=torch.bool, device=x0.device)
        active = torch.arange(n, device=x0.device)
        width: int | None = None  # the pair search's slots: the widest it needed so far
        for _ in range(m):
            current = x[active].view(-1, *x0.shape[1:])
            alpha, beta, scores = saliency_terms(
                run.access, current, target[active], owner[active], of, paper
            )
            done = scores.argmax(1) == target[active]
            count = changed[active].sum(1)
            live = ~done & (count + per_step <= allowed)
            needed = None
            if self.pairs:
                pick, found, needed = pair_search(
                    alpha, beta, domain[active], increase, paper, self.max_candidates, width
                )
            else:
                pick, found = best_single(alpha, beta, domain[active], increase, paper)
            going = live & found
            if needed is None:  # the one host sync per iteration: the samples going on
                left = int(going.sum())
            else:  # ... and the slots the pair search needed, which it had if they fit
                left, slots = torch.stack([going.sum(), needed]).tolist()
                if width is not None and slots > width:  # a new widest: search again
                    pick, found, _ = pair_search(
                        alpha, beta, domain[active], increase, paper, self.max_candidates, slots
                    )
                    going = live & found
                    left = int(going.sum())
                width = max(width or 0, slots)
            if not left:
                break
            keep = first(going, left)
            active, pick = active[keep], pick[keep]
            rows = active[:, None].expand_as(pick)
            new = (x[rows, pick] + step[pick]).clamp(low_f[pick], high_f[pick])
            x[rows, pick] = new
            changed[rows, pick] = True
            saturated = (new >= high_f[pick]) if increase else (new <= low_f[pick])
            domain[rows, pick] = ~saturated
        return x.view_as(x0)
