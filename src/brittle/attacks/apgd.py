"""Auto-PGD: APGD and APGD-T of Croce & Hein (ICML 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", section 3 and Algorithm 1).

APGD ascends a loss f in S = B_eps(x) ∩ box with momentum and a step size it sets itself:

    eta^(0) = 2 eps,    x^(1) = P_S(x^(0) + eta s(grad f(x^(0)))),
    z^(k+1) = P_S(x^(k) + eta s(grad f(x^(k)))),
    x^(k+1) = P_S(x^(k) + alpha (z^(k+1) - x^(k)) + (1 - alpha)(x^(k) - x^(k-1))),  alpha = 0.75,

with ``s`` the steepest-ascent direction of the norm (sign for Linf, grad/||grad||_2 for L2).
At the checkpoints w_j = ceil(p_j N_iter), p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), the step size is halved and the iterate set
back to the best point x_max found so far when

    condition 1:  sum_{i = w_{j-1}}^{w_j - 1} 1[f(x^(i+1)) > f(x^(i))] < rho (w_j - w_{j-1}),
    condition 2:  eta^(w_{j-1}) = eta^(w_j)  and  f_max^(w_{j-1}) = f_max^(w_j),

(too few steps raised the loss; or the step size was kept at the last checkpoint and the best
loss has not moved since). The paper's losses: the cross-entropy and the difference of logits
ratio DLR(x, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3), with z_pi the logits sorted in
decreasing order; APGD-T ascends the targeted DLR

    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)

for each of the top classes t in turn (:func:`targeted_dlr`).

Everything is batched over samples: each has its own step size, counters and best point. A
sample the model already fails on at x is returned as is without a gradient (the clean pass,
one query, is the one the base class would have made), and a sample whose iterate meets the
goal stops there and costs no further gradient, as PGD's do (:mod:`.iterative`). Each run
takes N_iter gradients, the last iterate needing only a forward pass. One host sync per step:
the count of samples still active.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any, Literal

import torch
from torch import Tensor

from brittle.access import ModelAccess
from brittle.errors import InputError
from brittle.losses import cross_entropy, dlr
from brittle.model import Bounds
from brittle.perturbation import broadcast_view, project
from brittle.threat import Goal, Norm

from .base import AttackRun, FixedBudgetAttack
from .fgsm import ALL_GOALS, steepest_ascent
from .iterative import random_start
from .params import SEED, TARGETED, NormArg, budget, declared, norm_choice, param

MOMENTUM = 0.75
"""alpha of the momentum step (the paper's value)."""

APGDLoss = Literal["ce", "dlr"]
ObjectiveKind = Literal["ce", "dlr", "ce-targeted", "dlr-targeted"]

RHO: Any = param(
    default=0.75,
    help="APGD's rho, in (0, 1): a checkpoint halves the step size when fewer than this share "
    "of the steps since the last one raised the loss.",
    low=0.0,
    low_open=True,
)
"""Condition 1's threshold (the paper's 0.75); :func:`_check_rho` refuses rho >= 1."""
RESTARTS: Any = param(default=1, help="Runs from new random starts, best kept per sample.", low=1)


def checkpoints(steps: int) -> dict[int, int]:
    """The checkpoints w_j = ceil(p_j N_iter) of N_iter = ``steps`` iterations, j >= 1, each
    mapped to the length w_j - w_{j-1} of the stretch it closes.

    p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), while p_j <= 1;
    the p_j are exact hundredths, so the ceilings are computed in integers. Checkpoints that
    coincide for a small N_iter are one checkpoint.
    """
    hundredths = [0, 22]
    while True:
        step = max(hundredths[-1] - hundredths[-2] - 3, 6)
        if hundredths[-1] + step > 100:
            break
        hundredths.append(hundredths[-1] + step)
    ws = sorted({-(-p * steps // 100) for p in hundredths})
    return {w: w - previous for previous, w in pairwise(ws)}


def targeted_dlr(logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12): the targeted DLR of Croce & Hein
    2020 (shift and scale invariant; positive once t beats y; needs K >= 4)."""
    if logits.shape[1] < 4:
        raise InputError("the targeted DLR loss needs at least 4 classes")
    ordered = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    z_t = logits.gather(1, targets[:, None]).squeeze(1)
    scale = ordered[:, 0] - (ordered[:, 2] + ordered[:, 3]) / 2 + 1e-12
    return -(z_y - z_t) / scale


@dataclass(frozen=True)
class Objective:
    """The loss f that APGD ascends, per sample (larger is closer to the goal).

    ``y`` holds each run row's label, ``t`` its target for the targeted kinds: ``"ce"`` and
    ``"dlr"`` are about y; ``"ce-targeted"`` is -CE(z, t), ``"dlr-targeted"`` is
    :func:`targeted_dlr` with y and t.
    """

    kind: ObjectiveKind
    y: Tensor
    t: Tensor | None = None

    def __call__(self, logits: Tensor, idx: Tensor) -> Tensor:
        """f for the logits of the run rows ``idx``."""
        y = self.y[idx]
        if self.kind == "ce":
            return cross_entropy(logits, y)
        if self.kind == "dlr":
            return dlr(logits, y)
        assert self.t is not None
        t = self.t[idx]
        if self.kind == "ce-targeted":
            return -cross_entropy(logits, t)
        return targeted_dlr(logits, y, t)

    def gradient(self, access: ModelAccess, x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """grad_x f at ``x`` (run rows ``idx``) and the logits: one counted gradient each."""
        return access.loss_gradient(x, self.y[idx], lambda z, _: self(z, idx), idx)


@dataclass
class Rows:
    """The samples one APGD run still works on, compacted; one row each.

    ``pos``: each row's position among the rows the run started with; ``idx``: its row in
    ``run.x``. ``x``, ``x_prev``, ``grad`` and ``f`` are x^(k), x^(k-1), grad f(x^(k)) and
    f(x^(k)); ``x_max``, ``grad_max`` and ``f_max`` the best point so far. ``eta`` (shaped
    like ``eps`` to broadcast over inputs) is the step size; ``increases`` counts the steps
    that raised f since the last checkpoint, ``f_checked`` is f_max at that checkpoint and
    ``halved`` whether eta was halved there.
    """

    pos: Tensor
    idx: Tensor
    x0: Tensor
    eps: Tensor
    eta: Tensor
    x: Tensor
    x_prev: Tensor
    grad: Tensor
    f: Tensor
    x_max: Tensor
    grad_max: Tensor
    f_max: Tensor
    increases: Tensor
    f_checked: Tensor
    halved: Tensor

    def select(self, keep: Tensor) -> Rows:
        """The rows ``keep`` (integer indices) of every field."""
        return Rows(*(getattr(self, f.name)[keep] for f in fields(self)))


def next_point(rows: Rows, k: int, norm: Norm, bounds: Bounds) -> Tensor:
    """x^(k+1) from x^(k): the projected gradient step z^(k+1), taken whole at k = 0, then
    with momentum: P_S(x^(k) + alpha (z^(k+1) - x^(k)) + (1 - alpha)(x^(k) - x^(k-1)))."""
    eps = rows.eps.flatten()
    z = project(rows.x0, rows.x + rows.eta * steepest_ascent(rows.grad, norm), norm, eps, bounds)
    if k == 0:
        return z
    moved = rows.x + MOMENTUM * (z - rows.x) + (1 - MOMENTUM) * (rows.x - rows.x_prev)
    return project(rows.x0, moved, norm, eps, bounds)


def advance(
    rows: Rows, k: int, windows: dict[int, int], rho: float, x: Tensor, grad: Tensor, f: Tensor
) -> None:
    """Take x^(k+1) = ``x`` (its gradient and loss given) into ``rows``: update the best point;
    at a checkpoint k = w_j, halve eta and set x^(k+1) to x_max where condition 1 or 2 holds
    (judged on the iterates up to w_j); then count whether f(x^(k+1)) > f(x^(k)), into the
    stretch that starts at w_j."""
    check = k in windows
    better = f > rows.f_max
    if check:
        few_increases = rows.increases < rho * windows[k]
        stalled = ~rows.halved & (rows.f_max == rows.f_checked)
        rows.f_checked = rows.f_max
        rows.increases = torch.zeros_like(rows.increases)
    wide = broadcast_view(better, x)
    rows.x_max = torch.where(wide, x, rows.x_max)
    rows.grad_max = torch.where(wide, grad, rows.grad_max)
    rows.f_max = torch.where(better, f, rows.f_max)
    if check:
        halve = few_increases | stalled
        wide = broadcast_view(halve, x)
        rows.eta = torch.where(wide, rows.eta / 2, rows.eta)
        x = torch.where(wide, rows.x_max, x)
        grad = torch.where(wide, rows.grad_max, grad)
        f = torch.where(halve, rows.f_max, f)
        rows.halved = halve
    rows.increases = rows.increases + (f > rows.f)
    rows.x_prev, rows.x, rows.grad, rows.f = rows.x, x, grad, f


def apgd(
    run: AttackRun,
    objective: Objective,
    idx: Tensor,
    x_start: Tensor,
    steps: int,
    rho: float,
    norm: Norm,
) -> tuple[Tensor, Tensor, Tensor]:
    """Algorithm 1 of Croce & Hein 2020 from x^(0) = ``x_start`` on the run rows ``idx``.

    Returns, per row, the point to keep (the first iterate that met the goal, else x_max), the
    goal-met flags, and f_max (``inf`` where the goal was met). As in the paper, the check at
    a checkpoint k = w_j comes once x^(k+1) is evaluated, and a halving sets x^(k+1) to x_max
    (which includes x^(k+1)). x^(N_iter) needs no gradient: no step follows it, nor does the
    checkpoint at k = N_iter - 1 change anything returned.
    """
    bounds = run.access.bounds
    n = len(idx)
    out = torch.empty_like(x_start)
    met = torch.zeros(n, dtype=torch.bool, device=x_start.device)
    best = torch.full((n,), torch.inf, dtype=x_start.dtype, device=x_start.device)

    def finish(
        rows: Rows, logits: Tensor, points: Tensor, *new: Tensor
    ) -> tuple[Rows | None, list[Tensor]]:
        """Write out the rows whose ``logits`` meet the goal (at ``points``); return the
        others and their rows of ``new``."""
        done = run.goal_met(logits, rows.idx)
        left = len(done) - int(done.sum())
        if left == len(done):
            return rows, list(new)
        order = torch.sort(done.to(torch.uint8), stable=True).indices  # active rows first
        out[rows.pos[order[left:]]] = points[order[left:]]
        met[rows.pos[order[left:]]] = True
        keep = order[:left]
        return (rows.select(keep) if left else None), [v[keep] for v in new]

    grad, logits = objective.gradient(run.access, x_start, idx)
    f = objective(logits, idx)
    eps = run.eps_view(idx)
    first = Rows(
        pos=torch.arange(n, device=idx.device),
        idx=idx,
        x0=run.x[idx],
        eps=eps,
        eta=2 * eps,
        x=x_start,
        x_prev=x_start,
        grad=grad,
        f=f,
        x_max=x_start,
        grad_max=grad,
        f_max=f,
        increases=torch.zeros(n, dtype=torch.long, device=idx.device),
        f_checked=f,
        halved=torch.zeros(n, dtype=torch.bool, device=idx.device),
    )
    rows, _ = finish(first, logits, x_start)
    windows = checkpoints(steps)
    for k in range(steps - 1):
        if rows is None:
            return out, met, best
        x_next = next_point(rows, k, norm, bounds)
        grad, logits = objective.gradient(run.access, x_next, rows.idx)
        f = objective(logits, rows.idx)
        rows, (x_next, grad, f) = finish(rows, logits, x_next, x_next, grad, f)
        if rows is not None:
            advance(rows, k, windows, rho, x_next, grad, f)
    if rows is None:
        return out, met, best
    x_last = next_point(rows, steps - 1, norm, bounds)
    logits = run.access.logits(x_last, rows.idx)
    f = objective(logits, rows.idx)
    rows, (x_last, f) = finish(rows, logits, x_last, x_last, f)
    if rows is not None:
        better = broadcast_view(f > rows.f_max, x_last)
        out[rows.pos] = torch.where(better, x_last, rows.x_max)
        best[rows.pos] = torch.maximum(f, rows.f_max)
    return out, met, best


@declared
class APGD(FixedBudgetAttack):
    """Auto-PGD (Croce & Hein 2020, Algorithm 1): projected gradient ascent with momentum
    alpha = 0.75 and a step size that starts at eta = 2 eps and halves at the checkpoints
    w_j = ceil(p_j N_iter) where too few steps raised the loss (fewer than rho of them) or
    nothing moved; each halving restarts from the best point (see the module docstring).

    ``loss``: the cross-entropy or the DLR loss -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)
    (K >= 3). Targeted (a target t through the base class), the cross-entropy becomes
    -CE(z, t) and DLR the targeted DLR of :func:`targeted_dlr` (K >= 4). ``restarts`` reruns
    the samples not yet fooled from new random starts (uniform in the ball, drawn per sample
    from (``seed``, its id, the restart)) and keeps, per sample, a success over a failure and
    among failures the highest loss. A failure comes back as its best point x_max.

    Where AutoAttack's code (and torchattacks', which follows it) reads the paper otherwise,
    this follows the paper: condition 2 can hold at the first checkpoint, condition 1 is a
    strict "<", the checkpoints are ceil(p_j N_iter) (AutoAttack's stretches are floors of
    0.22 N_iter, shrinking by floor(0.03 N_iter) to at least floor(0.06 N_iter): the same
    checkpoints for N_iter = 100, not for all N_iter), a run takes N_iter gradients (not
    N_iter + 1), and the random start is uniform in the ball (not on a scaled cube or sphere).
    """

    goals = ALL_GOALS
    norms = frozenset({Norm.LINF, Norm.L2})
    eps: float = budget()
    steps: int = param(default=100, help="Iterations.", low=1)
    norm: NormArg = norm_choice("linf", ("linf", "l2"))
    restarts: int = RESTARTS
    loss: APGDLoss = param(default="ce", help="Loss ascended on the logits.")
    rho: float = RHO
    targeted: bool = TARGETED
    seed: int = SEED

    def _configure(self, **values: Any) -> None:
        super()._configure(**values)
        _check_rho(self)

    def _objective(self, run: AttackRun) -> Objective:
        """f for this run, checked against the model's classes before any work."""
        k = run.access.num_classes
        if run.target is None:
            if self.loss == "dlr" and k < 3:
                raise InputError(
                    f"{self.name}: the DLR loss needs at least 3 classes, the model has {k}; "
                    "use loss='ce'"
                )
            return Objective(self.loss, run.y)
        if self.loss == "dlr" and k < 4:
            raise InputError(
                f"{self.name}: the targeted DLR loss needs at least 4 classes, the model has "
                f"{k}; use loss='ce'"
            )
        return Objective("dlr-targeted" if self.loss == "dlr" else "ce-targeted", run.y, run.target)

    def _run(self, run: AttackRun) -> Tensor:
        objective = self._objective(run)
        search = Search.start(run)
        search.runs(self, objective, range(self.restarts))
        return search.best


@declared
class APGDT(FixedBudgetAttack):
    """APGD-T (Croce & Hein 2020, section 4): APGD on the targeted DLR loss

        -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)

    aimed in turn at the ``n_target_classes`` classes of highest clean logit other than the
    label (at most K - 1 exist; K >= 4), each target on the samples no earlier target fooled,
    ``restarts`` runs each. The goal is untargeted: any misclassification. Per sample it keeps
    a success over a failure and among failures the point of highest targeted DLR. Step size,
    momentum, checkpoints, random starts and early stopping as in :class:`APGD`.
    """

    goals = frozenset({Goal.UNTARGETED})
    norms = frozenset({Norm.LINF, Norm.L2})
    eps: float = budget()
    steps: int = param(default=100, help="Iterations.", low=1)
    norm: NormArg = norm_choice("linf", ("linf", "l2"))
    restarts: int = RESTARTS
    n_target_classes: int = param(
        default=9,
        help="APGD-T's targets: the classes of highest clean logit after the label, in turn.",
        low=1,
    )
    rho: float = RHO
    seed: int = SEED

    def _configure(self, **values: Any) -> None:
        super()._configure(**values)
        _check_rho(self)

    def _run(self, run: AttackRun) -> Tensor:
        k = run.access.num_classes
        if k < 4:
            raise InputError(
                f"{self.name}: the targeted DLR loss needs at least 4 classes, the model has {k}"
            )
        search = Search.start(run)
        assert run.clean_scores is not None
        ranked = run.clean_scores.scatter(1, run.y[:, None], -torch.inf).argsort(1, descending=True)
        for i in range(min(self.n_target_classes, k - 1)):
            objective = Objective("dlr-targeted", run.y, ranked[:, i])
            search.runs(self, objective, range(i * self.restarts, (i + 1) * self.restarts))
        return search.best


def _check_rho(attack: APGD | APGDT) -> None:
    """The declaration bounds rho below (> 0); above, rho < 1, which it cannot state."""
    if attack.rho >= 1:
        raise InputError(f"{attack.name}: rho must be a number > 0 and < 1, got {attack.rho!r}")


@dataclass
class Search:
    """The best point per sample over an attack's runs, and the samples still standing.

    Starts from the clean inputs: one forward pass, kept as the run's clean scores (the base
    class reuses them), and the samples that already meet the goal there are done at x.
    """

    run: AttackRun
    best: Tensor
    best_f: Tensor
    todo: Tensor

    @classmethod
    def start(cls, run: AttackRun) -> Search:
        run.clean_scores = run.access.logits(run.x)
        todo = (~run.goal_met(run.clean_scores)).nonzero().squeeze(1)
        best_f = torch.full((len(run.x),), -torch.inf, dtype=run.x.dtype, device=run.x.device)
        return cls(run, run.x.clone(), best_f, todo)

    def runs(self, attack: APGD | APGDT, objective: Objective, streams: range) -> None:
        """One APGD run per random-start stream on the samples still standing; keep the best."""
        for stream in streams:
            if not len(self.todo):
                return
            todo = self.todo
            x_start = random_start(self.run, todo, attack.norm, stream)
            x_adv, met, f = apgd(
                self.run, objective, todo, x_start, attack.steps, attack.rho, attack.norm
            )
            better = met | (f > self.best_f[todo])
            self.best[todo] = torch.where(broadcast_view(better, x_adv), x_adv, self.best[todo])
            self.best_f[todo] = torch.where(better, f, self.best_f[todo])
            self.todo = todo[~met]
