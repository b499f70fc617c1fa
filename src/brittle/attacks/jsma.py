"""The Jacobian-based saliency map attack of Papernot et al. (EuroS&P 2016, section 3)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.perturbation import max_features
from brittle.threat import Goal, Norm

from .base import AttackRun, FixedBudgetAttack
from .params import Param
from .targets import all_other_targets

PAIR_CHUNK_ELEMENTS = 1 << 22
"""The pair search looks at (rows x chunk x M) candidate pairs at a time: memory stays
bounded whatever M (about 16 MB of float32 per buffer), and the result is exact."""


def saliency_terms(
    run: AttackRun, x: Tensor, target: Tensor, idx: Tensor, of: str
) -> tuple[Tensor, Tensor, Tensor]:
    """alpha_i = dF_t/dX_i and beta_i = sum_{j != t} dF_j/dX_i per feature ``(N, M)``, and the
    logits at ``x`` (rows ``idx`` of the run): two vector-Jacobian products."""
    k = run.access.num_classes
    onehot = torch.nn.functional.one_hot(target, k).to(x.dtype)
    vectors = torch.stack([onehot, 1 - onehot], dim=1)
    products, scores = run.access.vjp(x, vectors, idx, of)
    return products[:, 0].flatten(1), products[:, 1].flatten(1), scores


def best_single(
    alpha: Tensor, beta: Tensor, domain: Tensor, increase: bool, paper: bool
) -> tuple[Tensor, Tensor]:
    """The best feature per row and whether one exists (the single-feature saliency map).

    Paper: S[i] = alpha_i |beta_i| if alpha_i > 0 and beta_i < 0 (increasing; alpha_i < 0,
    beta_i > 0 and |alpha_i| beta_i when decreasing), else 0; i.e. -alpha_i beta_i under the
    sign constraints. Target: alpha_i alone (its sign the direction of change).
    """
    sign = 1.0 if increase else -1.0
    if paper:
        valid = domain & (sign * alpha > 0) & (sign * beta < 0)
        score = -alpha * beta
    else:
        valid = domain & (sign * alpha > 0)
        score = sign * alpha
    score = score.masked_fill(~valid, float("-inf"))
    best = score.argmax(1)
    return best[:, None], valid.any(1)


def best_pair(
    alpha: Tensor, beta: Tensor, domain: Tensor, increase: bool, paper: bool
) -> tuple[Tensor, Tensor]:
    """The pair (p, q), p != q in the search domain, maximising the pair saliency, exactly.

    Paper: alpha = alpha_p + alpha_q, beta = beta_p + beta_q; maximise -alpha beta under
    alpha > 0 and beta < 0 (increasing; alpha < 0 and beta > 0 when decreasing). Target:
    maximise the sign-corrected alpha alone (ART's choice: the two largest). Searched in chunks
    of rows p against all q, so memory does not grow with M squared.
    """
    n, m = alpha.shape
    sign = 1.0 if increase else -1.0
    best_score = torch.full((n,), float("-inf"), dtype=alpha.dtype, device=alpha.device)
    best = torch.zeros(n, 2, dtype=torch.long, device=alpha.device)
    chunk = max(1, PAIR_CHUNK_ELEMENTS // max(1, n * m))
    q = torch.arange(m, device=alpha.device)
    for start in range(0, m, chunk):
        p = q[start : start + chunk]
        a = alpha[:, p, None] + alpha[:, None, :]
        valid = domain[:, p, None] & domain[:, None, :] & (p[:, None] != q[None, :])
        if paper:
            b = beta[:, p, None] + beta[:, None, :]
            valid &= (sign * a > 0) & (sign * b < 0)
            score = -a * b
        else:
            valid &= sign * a > 0
            score = sign * a
        flat = score.masked_fill(~valid, float("-inf")).flatten(1)
        value, where = flat.max(1)
        better = value > best_score
        best_score = torch.where(better, value, best_score)
        pick = torch.stack([p[where // m], where % m], dim=1)
        best = torch.where(better[:, None], pick, best)
    return best, torch.isfinite(best_score)


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
    ART implements). The pair search is exact, in chunks (:func:`best_pair`).

    Goals: targeted and source/target; untargeted, each sample is tried against every other
    class (batched) and the success with the fewest changed features is kept. Costs per
    sample and iteration: one query and two gradients (two vector-Jacobian products). The
    change theta is a share of the box's width, so the box must be bounded. A sample stops
    early on its target's label; the base then judges the result with the run's criterion.
    """

    goals = frozenset({Goal.UNTARGETED, Goal.TARGETED, Goal.SOURCE_TARGET})
    norms = frozenset({Norm.L0})
    supports_unbounded = False
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "eps",
            float,
            0.145,
            "Upsilon, the largest share of features changed.",
            low=0.0,
            high=1.0,
        ),
        Param(
            "theta",
            float,
            1.0,
            "Change per feature, a share of the box width (negative: decrease).",
            low=-1.0,
            high=1.0,
        ),
        Param("pairs", bool, True, "Change pairs of features (False: single features)."),
        Param(
            "of",
            str,
            "logits",
            "Forward derivative of the logits or the probabilities.",
            choices=("logits", "probabilities"),
            cli="jacobian-of",
        ),
        Param(
            "score",
            str,
            "paper",
            "Saliency: the paper's alpha |beta|, or the target's derivative.",
            choices=("paper", "target"),
        ),
        Param("targeted", bool, False, "Aim at target classes.", cli=None),
    )
    theta: float
    pairs: bool
    of: str
    score: str

    def __init__(
        self,
        eps: float = 0.145,
        theta: float = 1.0,
        pairs: bool = True,
        of: str = "logits",
        score: str = "paper",
        targeted: bool = False,
    ) -> None:
        self._configure(eps=eps, theta=theta, pairs=pairs, of=of, score=score, targeted=targeted)
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
        step = self.theta * (high_f - low_f)
        allowed = max_features(float(self.eps or 0.0), m)
        per_step = 2 if self.pairs else 1
        x = x0.flatten(1).clone()
        domain = (x < high_f) if increase else (x > low_f)
        changed = torch.zeros(n, m, dtype=torch.bool, device=x0.device)
        active = torch.arange(n, device=x0.device)
        for _ in range(m):
            if not len(active):
                break
            current = x[active].view(-1, *x0.shape[1:])
            alpha, beta, scores = saliency_terms(
                run, current, target[active], owner[active], self.of
            )
            done = scores.argmax(1) == target[active]
            count = changed[active].sum(1)
            room = count + per_step <= allowed
            pick, found = (best_pair if self.pairs else best_single)(
                alpha, beta, domain[active], increase, self.score == "paper"
            )
            going = ~done & room & found
            active, pick = active[going], pick[going]
            if not len(active):
                break
            rows = active[:, None].expand_as(pick)
            new = (x[rows, pick] + step[pick]).clamp(low_f[pick], high_f[pick])
            x[rows, pick] = new
            changed[rows, pick] = True
            saturated = (new >= high_f[pick]) if increase else (new <= low_f[pick])
            domain[rows, pick] = ~saturated
        return x.view_as(x0)
