"""The L2 attack of Carlini & Wagner (IEEE S&P 2017, section V.A): the smallest L2 change that
meets the goal, found by Adam in tanh space and a binary search over the constant c."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from brittle.model import Bounds
from brittle.perturbation import broadcast_view
from brittle.threat import Goal, Norm

from .base import AttackRun, MinimizationAttack
from .params import TARGETED, budget, declared, param

_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_SHRINK = 1 - 1e-6
"""Keeps (2 (x - low) / (high - low) - 1) inside (-1, 1), so that atanh stays finite."""
_GIVE_UP = 0.01
"""Abort early: a sample that has not met the goal in this round stops it when its loss fell
by less than this fraction over the last ceil(steps / 10) iterations."""
_PATIENCE = 20
"""Abort early: a sample that has met the goal in this round stops it (at a check) once this
many of its iterations that met the goal passed since its best L2 shrank by ``_PROGRESS``."""
_PROGRESS = 1e-4
_BRACKET = 1.1
"""The search over c ends once upper <= 1.1 * lower: later rounds would move c by under 10%."""
_SATURATION = 0.05
"""The distance term no longer steers Adam once its gradient is under this fraction of c f's."""


def to_tanh_space(x: Tensor, bounds: Bounds) -> Tensor:
    """w = atanh((2 (x - low) / (high - low) - 1) * (1 - 1e-6)), the inverse of :func:`from_tanh_space`."""
    low, high = bounds
    return torch.atanh(((x - low) / (high - low) * 2 - 1) * _SHRINK)


def from_tanh_space(w: Tensor, bounds: Bounds) -> Tensor:
    """x = low + (high - low) * (tanh(w) + 1) / 2: inside the box for every w (the change of variables)."""
    low, high = bounds
    return low + (high - low) * (torch.tanh(w) + 1) / 2


def tanh_jacobian(w: Tensor, bounds: Bounds) -> Tensor:
    """dx'/dw = (high - low) / 2 * (1 - tanh(w)^2), elementwise (the change of variables)."""
    low, high = bounds
    return (high - low) / 2 * (1 - torch.tanh(w).square())


def distance_share(distance_grad: Tensor, f_grad: Tensor) -> Tensor:
    """||grad_w ||x' - x||_2^2||_2 / ||grad_w c f(x')||_2 per sample."""
    return distance_grad.flatten(1).norm(dim=1) / f_grad.flatten(1).norm(dim=1)


def margin(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """Z_y - max_{i != y} Z_i (untargeted) or max_{i != t} Z_i - Z_t (targeted).

    Negative exactly when the goal is met; the attack meets it with confidence kappa when the
    margin is below -kappa.
    """
    real = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return other - real if targeted else real - other


@dataclass
class _Rows:
    """Per-sample state, one row per sample; :meth:`keep` drops the samples that are done."""

    def keep(self, rows: Tensor) -> None:
        """Drop every row but ``rows`` (positions in the current rows)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[rows])


@dataclass
class _Search(_Rows):
    """The binary search over c of the samples still searching (indices ``idx`` in the batch)."""

    idx: Tensor
    const: Tensor
    lower: Tensor
    upper: Tensor

    def update(self, found: Tensor, dominated: Tensor) -> Tensor:
        """Move the bounds and c after a round; return which searches are over.

        If the round met the goal, upper = min(upper, c), else lower = max(lower, c); then
        c = (lower + upper) / 2, or 10 c while upper is infinite. Over: the bracket is tight
        (upper <= 1.1 lower), or the search is saturated: every round failed so far and, at
        the end of this one, the distance term was ``dominated`` by c * f. Adam's steps do not
        depend on the scale of the gradient, so a larger c would repeat the round.
        """
        self.upper = torch.where(found, torch.minimum(self.upper, self.const), self.upper)
        self.lower = torch.where(found, self.lower, torch.maximum(self.lower, self.const))
        bisect = (self.lower + self.upper) / 2
        self.const = torch.where(self.upper.isfinite(), bisect, self.const * 10)
        return (self.upper.isinf() & dominated) | (self.upper <= _BRACKET * self.lower)


@dataclass
class _Round(_Rows):
    """The samples one round of Adam still optimises: their positions ``idx`` in the round,
    their problem, Adam's moments ``m`` and ``v``, and what abort-early watches: whether the
    round met the goal yet, its loss at the last check and the iterations without progress."""

    idx: Tensor
    x: Tensor
    labels: Tensor
    const: Tensor
    w: Tensor
    m: Tensor
    v: Tensor
    met: Tensor
    checked_loss: Tensor
    stalled: Tensor

    def adam_step(self, grad: Tensor, t: int, lr: float) -> None:
        """One Adam step (Kingma & Ba 2015) on w, with bias correction for step ``t``."""
        self.m = _BETA1 * self.m + (1 - _BETA1) * grad
        self.v = _BETA2 * self.v + (1 - _BETA2) * grad * grad
        m_hat = self.m / (1 - _BETA1**t)
        v_hat = self.v / (1 - _BETA2**t)
        self.w = self.w - lr * m_hat / (v_hat.sqrt() + _ADAM_EPS)


@declared
class CarliniWagnerL2(MinimizationAttack):
    """Carlini & Wagner's L2 attack (2017, section V.A), untargeted or targeted.

    With the change of variables x' = low + (high - low) * (tanh(w) + 1) / 2 (always inside
    the box), Adam minimises over w, for each sample,
        ||x' - x||_2^2 + c * f(x')
        f(x') = max(Z_y(x') - max_{i != y} Z_i(x'), -kappa)      (untargeted)
        f(x') = max(max_{i != t} Z_i(x') - Z_t(x'), -kappa)      (targeted)
    with Z the logits and kappa = ``confidence``. Each of ``binary_steps`` rounds runs up to
    ``steps`` iterations of Adam with fresh moments; then, per sample, the constant c
    (starting at ``initial_const``) is searched: if the round met the goal, upper =
    min(upper, c), else lower = max(lower, c); then c = (lower + upper) / 2 when upper is
    finite, else c = 10 c (so a too small start is left behind quickly). The result is the
    smallest-L2 input, over all rounds and iterations, whose logits meet the goal with margin
    kappa; a sample with none fails and is returned unchanged.

    Rounds start from w = atanh((2 (x - low) / (high - low) - 1) * (1 - 1e-6)), as in the
    paper; with ``warm_start`` (the default) a sample that already has a result starts from
    that result instead, and a round meets the goal when its last iterate does (it starts on
    the goal's side, so "some iterate met it" would say nothing about c). Warm starts and the
    pruning below save gradients at no loss of L2 (``benchmarks/bench_cw_variants.py``).

    Pruning, all per sample. A sample whose clean input already meets the goal (with margin
    kappa) is returned as it is and never optimised. With ``abort_early`` a sample stops a
    round, at the checks every ceil(steps / 10) iterations, (1) when it has not met the goal
    in the round and its loss fell by less than 1% since the last check (the paper's check, per
    sample), or (2) when it has met the goal and 20 or more of its iterations that met it have
    passed since its best L2 last shrank by 0.01%.
    (The paper's single test of the batch's summed loss made for rounds as long as the
    slowest sample's; applying it per sample cut rounds short for samples whose oscillating
    loss was still finding smaller results: the second rule watches the best L2 instead.)
    A sample's search over c ends when upper <= 1.1 lower, or when it is saturated: every
    round failed so far and, at the end of the last one, the gradient of the distance term
    was under 5% of that of c * f. Adam's steps do not depend on the scale of the gradient,
    so raising c tenfold again would only repeat that failing round. Host syncs: one per
    ceil(steps / 10) iterations and one per round. One gradient evaluation per sample and
    iteration it runs, plus one query for the clean logits. The gradient comes from the
    model access as grad_x' c f(x'); the distance term's, 2 (x' - x), is added in closed
    form, and both go through the change of variables' Jacobian to w.

    The defaults (100 steps, 9 binary steps, lr 0.1, c starting at 0.01) are the strong
    setting on the zoo's models; the paper's lr 0.01 needs thousands of steps.
    The tanh change of variables needs a bounded box: an unbounded one is refused.

    ``eps`` optionally caps the result: the base class projects it onto the eps-ball, and a
    sample whose smallest perturbation found is larger then fails and is returned unchanged.
    """

    goals = frozenset({Goal.UNTARGETED, Goal.TARGETED, Goal.SOURCE_TARGET})
    norms = frozenset({Norm.L2})
    supports_unbounded = False
    steps: int = param(default=100, help="Adam iterations per binary step.", low=1)
    binary_steps: int = param(default=9, help="Rounds of the search over the constant c.", low=1)
    confidence: float = param(default=0.0, help="Logit margin kappa.", low=0.0)
    lr: float = param(default=0.1, help="Adam's learning rate.", low=0.0, low_open=True)
    initial_const: float = param(
        default=1e-2, help="The constant c of the first round.", low=0.0, low_open=True
    )
    targeted: bool = TARGETED
    abort_early: bool = param(default=True, help="Stop a sample's round when it stops progressing.")
    warm_start: bool = param(default=True, help="Start later rounds from the sample's best result.")
    eps: float | None = budget(default=None)

    def _run(self, run: AttackRun) -> Tensor:
        x = run.x
        run.clean_scores = run.access.logits(x)
        met = margin(run.clean_scores, run.labels, run.targeted) < -self.confidence
        best_l2 = torch.where(met, 0.0, math.inf).to(x.dtype)
        best_x = x.clone()
        todo = (~met).nonzero().squeeze(1)
        const = torch.full_like(best_l2[todo], self.initial_const)
        search = _Search(todo, const, torch.zeros_like(const), torch.full_like(const, math.inf))
        for _ in range(self.binary_steps):
            if not len(search.idx):
                break
            found, dominated = self._optimise(run, search.idx, search.const, best_l2, best_x)
            going = (~search.update(found, dominated)).nonzero().squeeze(1)  # one sync per round
            if len(going) < len(search.idx):
                search.keep(going)
        return best_x

    def _start(self, run: AttackRun, samples: Tensor, best_l2: Tensor, best_x: Tensor) -> Tensor:
        """Adam's starting w: tanh space of x, or of the sample's result so far (warm start)."""
        bounds = run.access.bounds
        if not self.warm_start:
            return to_tanh_space(run.x[samples], bounds)
        has = (best_l2[samples] > 0) & best_l2[samples].isfinite()
        start = torch.where(broadcast_view(has, run.x), best_x[samples], run.x[samples])
        return to_tanh_space(start, bounds)

    def _optimise(
        self, run: AttackRun, samples: Tensor, const: Tensor, best_l2: Tensor, best_x: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One round of Adam on ``samples`` (indices in the batch) with constants ``const``.

        Updates ``best_l2`` and ``best_x`` (indexed like the batch) in place. Returns, per
        sample, whether the round met the goal (margin below -kappa: at some iteration, or,
        with ``warm_start``, at the last one it ran), and whether at its last iteration the distance
        term's gradient was under 5% of c f's.
        """
        bounds, kappa, targeted = run.access.bounds, self.confidence, run.targeted
        x = run.x[samples]
        w = self._start(run, samples, best_l2, best_x)
        n = len(samples)
        rows = _Round(
            idx=torch.arange(n, device=x.device),
            x=x,
            labels=run.labels[samples],
            const=const,
            w=w,
            m=torch.zeros_like(w),
            v=torch.zeros_like(w),
            met=torch.zeros(n, dtype=torch.bool, device=x.device),
            checked_loss=torch.full((n,), math.inf, device=x.device),
            stalled=torch.zeros(n, dtype=torch.long, device=x.device),
        )
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        dominated = torch.zeros_like(found)
        check_every = math.ceil(self.steps / 10)
        for t in range(1, self.steps + 1):
            w = rows.w
            x_adv = from_tanh_space(w, bounds)
            sample = samples[rows.idx]
            const = rows.const

            def weighted(logits: Tensor, labels: Tensor, c: Tensor = const) -> Tensor:
                return c * margin(logits, labels, targeted).clamp_min(-kappa)

            f_grad, logits = run.access.loss_gradient(x_adv, rows.labels, weighted, sample)
            with torch.no_grad():
                jac = tanh_jacobian(w, bounds)
                distance_grad = 2 * (x_adv - rows.x) * jac
                f_grad = f_grad * jac
                grad = distance_grad + f_grad
                l2 = (x_adv - rows.x).flatten(1).square().sum(1)
                z = margin(logits, rows.labels, targeted)
                loss = l2 + const * z.clamp_min(-kappa)
                adv = z < -kappa
                best_before = best_l2[sample]
                progress = adv & (l2 < best_before * (1 - _PROGRESS))
                better = adv & (l2 < best_before)
                best_l2[sample] = torch.where(better, l2, best_before)
                best_x[sample] = torch.where(broadcast_view(better, x), x_adv, best_x[sample])
                found[rows.idx] = adv if self.warm_start else found[rows.idx] | adv
                rows.met |= adv
                rows.stalled = torch.where(progress, 0, rows.stalled + adv.long())
                check = (t - 1) % check_every == 0
                if check or t == self.steps:  # the last iteration a sample may run
                    share = distance_share(distance_grad, f_grad)
                    dominated[rows.idx] = share < _SATURATION
                rows.adam_step(grad, t, self.lr)
                if not (self.abort_early and check):
                    continue
                give_up = ~rows.met & ~(loss <= (1 - _GIVE_UP) * rows.checked_loss)
                rows.checked_loss = loss
                going = (~give_up & (rows.stalled < _PATIENCE)).nonzero().squeeze(1)
                if len(going) < len(rows.idx):  # the one host sync, at checks only
                    if not len(going):
                        break
                    rows.keep(going)
        return found, dominated
