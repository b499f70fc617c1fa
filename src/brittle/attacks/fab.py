"""FAB and FAB-T: the fast adaptive boundary attack of Croce & Hein (ICML 2020, "Minimally
distorted adversarial examples with a fast adaptive boundary attack"), in Linf and L2.

FAB looks for the smallest perturbation that changes the decision. At its iterate x^(i) it
linearises the classifier: for each class l other than the label c (FAB-T: the target t alone)

    f_l(x^(i)) - f_c(x^(i)) + <grad f_l(x^(i)) - grad f_c(x^(i)), z - x^(i)> = 0

is the linearised decision hyperplane pi_l, and FAB takes the one closest to x^(i), with q the
dual norm of p (q = 1 for Linf, q = 2 for L2):

    s = argmin_{l != c} |f_l(x^(i)) - f_c(x^(i))| / ||grad f_l(x^(i)) - grad f_c(x^(i))||_q.

It projects both the iterate and the original x_orig onto pi_s intersected with the box C:

    delta^(i)      = proj_p(x^(i), pi_s, C) - x^(i),
    delta_orig^(i) = proj_p(x_orig, pi_s, C) - x_orig,

where proj_p(x, pi, C) = argmin_{z in C, z in pi} ||z - x||_p (:func:`hyperplane_projection`,
exact in both norms), and takes the biased step toward the original, with the overshoot eta:

    alpha   = min(||delta^(i)||_p / (||delta^(i)||_p + ||delta_orig^(i)||_p), alpha_max),
    x^(i+1) = proj_C((1 - alpha)(x^(i) + eta delta^(i)) + alpha (x_orig + eta delta_orig^(i))).

An iterate that meets the goal is kept if it is the closest to x_orig so far, and FAB steps
back toward the original, x^(i+1) <- (1 - beta) x_orig + beta x^(i+1), to search for a
closer one. The final search then refines the closest point x_out on the segment from x_orig
(:func:`final_search`). Restarts after the first start at a random point of the ball of radius
half the smallest perturbation found (or of ``eps``, or of the distance to the first
linearised boundary), drawn per sample.

FAB-T (Croce & Hein's version in the standard AutoAttack, "Reliable evaluation of
adversarial robustness with an ensemble of diverse parameter-free attacks", ICML 2020)
is FAB aimed in turn at the classes of highest clean logit after the label: it linearises
only f_t - f_c, so an iteration costs one gradient instead of K - 1; its goal is any
misclassification, and each target runs on the samples the earlier ones left standing.

Everything is batched over samples. A sample the model already fails on at x is returned as
is. With a budget ``eps`` a sample stops at its first adversarial point within ``eps`` (the
verdict at that budget is settled: later iterations could only shrink a perturbation the
budget admits) and later targets and restarts skip it; without one, every iteration runs, to
minimise. One host sync per iteration (with ``eps``: the count of samples still going; none
without).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from brittle.criteria import other_best
from brittle.model import Bounds
from brittle.perturbation import broadcast_view
from brittle.threat import Goal, Norm

from .base import AttackRun, MinimizationAttack
from .deepfool import candidate_classes, linearise
from .iterative import ball_points
from .params import SEED, TARGETED, NormArg, budget, declared, norm_choice, param

_TINY = 1e-12
"""Floor of the norms FAB divides by: a zero gradient gives a zero step."""
LEAN = 0.1
"""The final search's step leans this share of the way from the linear interpolation's
boundary point toward the adversarial end, so that it lands past the boundary (on a linear
model the interpolation is exact, and a point on the boundary is adversarial or not by
rounding) and stays past it when the model is run again on another batch."""
FINAL_FALLBACK = 0.5
"""Where the final search goes on the segment when the interpolation says nothing useful (a
margin of the wrong sign): halfway, as bisection does."""

STEPS: Any = param(default=100, help="Iterations per run.", low=1)
RESTARTS: Any = param(
    default=1,
    help="Runs per sample (per target for FAB-T); each after the first from a random start.",
    low=1,
)
ALPHA_MAX: Any = param(
    default=0.1,
    help="alpha_max: the largest weight of the step from the original.",
    low=0.0,
    high=1.0,
)
ETA: Any = param(default=1.05, help="eta: the overshoot of each projection.", low=1.0)
BETA: Any = param(
    default=0.9,
    help="beta: the backward step toward the original after an adversarial iterate.",
    low=0.0,
    low_open=True,
    high=1.0,
)
FINAL_SEARCH: Any = param(
    default=3,
    help="Steps of the final search on the segment from the original to the closest point.",
    low=0,
)


def hyperplane_projection(
    x: Tensor, w: Tensor, c: Tensor, low: Tensor, high: Tensor, norm: Norm
) -> Tensor:
    """The smallest step delta, in ``norm`` (Linf or L2), with <w, delta> = c and
    low <= x + delta <= high, per row: proj_p(x, pi, C) - x for the hyperplane
    pi = {z : <w, z - x> = c} and the box C = [low, high] (proj_p of Croce & Hein 2020).

    ``x`` and ``w`` are ``(M, d)``, ``c`` is ``(M,)``, ``low`` and ``high`` are ``(d,)`` (they
    may be infinite). With the sign of (w, c) flipped so that c >= 0, every coordinate moves
    along sign(w_i), at most by its room u_i to the box (u_i = high_i - x_i for w_i > 0,
    x_i - low_i for w_i < 0). Linf: delta_i = sign(w_i) min(r, u_i) for the smallest radius r
    with g(r) = sum_i |w_i| min(r, u_i) = c. L2 (the KKT conditions): delta_i = sign(w_i)
    min(lambda |w_i|, u_i) with g(lambda) = sum_i w_i^2 min(lambda, u_i / |w_i|) = c. Both g
    are sum_i a_i min(t, v_i), piecewise linear and nondecreasing: sorting the knots v_i, the
    segment holding c is found by counting the knots where g < c, and t solves the linear
    equation on it. When no t reaches c (the hyperplane does not meet the box), every
    coordinate takes its whole room: the corner of the box closest to the hyperplane. Exact, in
    O(d log d) per row, for all rows at once, without a host sync.
    """
    flip = torch.where(c < 0, -1.0, 1.0).to(w.dtype)
    w = w * flip[:, None]
    c = c * flip
    moves = w != 0
    room = torch.where(w > 0, high - x, x - low).clamp_min(0)
    room = torch.where(moves, room, torch.zeros_like(room))
    size = w.abs()
    if norm is Norm.LINF:
        weight, knot, scale = size, room, torch.ones_like(size)
    else:
        weight = size * size
        knot = torch.where(moves, room / size.clamp_min(_TINY), torch.zeros_like(room))
        scale = size
    knot, order = knot.sort(dim=1, stable=True)
    weight = weight.gather(1, order)
    zero = torch.zeros_like(c)[:, None]
    # g at knot k: the coordinates before it saturated, the others moving at the rate weight
    saturated = torch.cat([zero, (weight * knot).cumsum(1)[:, :-1]], dim=1)
    free = weight.flip(1).cumsum(1).flip(1)
    reach = saturated + knot * free
    k = (reach < c[:, None]).sum(1)
    d = x.shape[1]
    at = k.clamp_max(d - 1)[:, None]
    t = (c - saturated.gather(1, at).squeeze(1)) / free.gather(1, at).squeeze(1).clamp_min(_TINY)
    feasible = (k < d)[:, None]
    t = torch.where(feasible.squeeze(1), t.clamp_min(0), torch.zeros_like(t))
    step = torch.where(feasible, torch.minimum(t[:, None] * scale, room), room)
    return w.sign() * step


def p_norm(delta: Tensor, norm: Norm) -> Tensor:
    """||delta||_p per row of ``(M, d)``."""
    return delta.abs().amax(1) if norm is Norm.LINF else delta.norm(dim=1)


def box(bounds: Bounds, like: Tensor) -> tuple[Tensor, Tensor]:
    """The box's low and high corners, flattened to ``(d,)`` for inputs like ``like``."""
    shape = like.shape[1:]
    return tuple(  # type: ignore[return-value]
        torch.as_tensor(b, dtype=like.dtype, device=like.device).expand(shape).reshape(-1)
        for b in bounds
    )


def margin(run: AttackRun, scores: Tensor, idx: Tensor) -> Tensor:
    """How far the scores of rows ``idx`` are from the goal (positive: not met):
    untargeted s_y - max_{j != y} s_j + kappa, targeted max_{j != t} s_j - s_t + kappa."""
    kappa = run.criterion.kappa
    if run.target is None:
        y = run.y[idx]
        return scores.gather(1, y[:, None]).squeeze(1) - other_best(scores, y) + kappa
    t = run.target[idx]
    return other_best(scores, t) - scores.gather(1, t[:, None]).squeeze(1) + kappa


@dataclass(frozen=True)
class Settings:
    """A run's parameters: the norm, steps, alpha_max, eta and beta."""

    norm: Norm
    steps: int
    alpha_max: float
    eta: float
    beta: float


@dataclass
class Search:
    """Per sample, the closest adversarial point so far over an attack's runs.

    ``best`` holds it (the clean input until one is found), ``best_norm`` its distance
    (``inf`` until then) and ``best_scores`` the model's scores there. ``reach`` is the
    distance from the original to its first linearised boundary (for random starts without a
    budget). ``todo``: the samples still to attack.
    """

    run: AttackRun
    low: Tensor
    high: Tensor
    best: Tensor
    best_norm: Tensor
    best_scores: Tensor
    reach: Tensor
    todo: Tensor

    @classmethod
    def start(cls, run: AttackRun) -> Search:
        """One forward pass on the clean inputs (kept as the run's clean scores, which the
        base class reuses); the samples that already meet the goal there are done at x."""
        x = run.x
        run.clean_scores = run.access.logits(x)
        todo = (~run.goal_met(run.clean_scores)).nonzero().squeeze(1)
        low, high = box(run.access.bounds, x)
        inf = torch.full((len(x),), torch.inf, dtype=x.dtype, device=x.device)
        return cls(run, low, high, x.clone(), inf, run.clean_scores.clone(), inf.clone(), todo)

    def settled(self, idx: Tensor) -> Tensor:
        """Whether the rows ``idx`` have an adversarial point within the budget (never
        without one)."""
        if self.run.eps is None:
            return torch.zeros_like(idx, dtype=torch.bool)
        return self.best_norm[idx].double() <= self.run.eps[idx]

    def start_point(self, idx: Tensor, settings: Settings, stream: tuple[Any, ...]) -> Tensor:
        """A random point around x_orig, per sample of (seed, id, ``stream``): uniform in the
        ball of radius half the smallest perturbation found, or of ``eps``, or of the distance
        to the first linearised boundary, the smallest of those known; clipped to the box."""
        run = self.run
        radius = self.best_norm[idx]
        if run.eps is not None:
            radius = torch.minimum(radius, run.eps[idx].to(radius.dtype))
        radius = torch.where(torch.isinf(radius), self.reach[idx], radius)
        u = ball_points(run, idx, settings.norm, ("fab-start", settings.norm.value, *stream))
        x = run.x[idx]
        offset = 0.5 * broadcast_view(radius, x) * u.to(x.dtype).view_as(x)
        return run.access.clip(x + offset)

    def runs(
        self,
        settings: Settings,
        restarts: int,
        aim: Tensor | None,
        stream: tuple[Any, ...],
    ) -> None:
        """``restarts`` runs on the samples still to attack, the first from x_orig, the others
        from random starts; ``aim``: one class per sample to linearise alone (FAB-T's targets;
        ``None``: every class but the label)."""
        for restart in range(restarts):
            self.todo = self.todo[~self.settled(self.todo)]
            if not len(self.todo):
                return
            idx = self.todo
            if restart == 0:
                x_start = self.run.x[idx]
            else:
                x_start = self.start_point(idx, settings, (*stream, restart))
            self.fab(settings, idx, x_start, aim)

    def fab(self, settings: Settings, idx: Tensor, x_start: Tensor, aim: Tensor | None) -> None:
        """One run of FAB's iterations (see the module docstring) on the rows ``idx`` from
        ``x_start``, keeping each sample's closest adversarial point."""
        run, access = self.run, self.run.access
        shape = run.x.shape[1:]
        norm, eta = settings.norm, settings.eta
        q = 1 if norm is Norm.LINF else 2
        kappa = run.criterion.kappa
        num_classes = access.num_classes
        x0 = run.x[idx].flatten(1)
        x = x_start.flatten(1)
        assert run.clean_scores is not None
        if aim is None:
            classes = candidate_classes(run.clean_scores[idx], run.y[idx], num_classes - 1)
        else:
            classes = aim[idx][:, None]
        current = run.clean_scores[idx]  # the latest scores known near each iterate
        for _ in range(settings.steps):
            if not len(idx):
                return
            pivot = run.y[idx] if run.target is None else _strongest_other(current, classes[:, 0])
            diff, grads = linearise(access, x.view(-1, *shape), pivot, classes, idx)
            w_all = grads.flatten(2)  # (C, M, d)
            diff = diff - kappa
            size = w_all.norm(p=q, dim=2).T.clamp_min(_TINY)  # (M, C)
            rows = torch.arange(len(idx), device=idx.device)
            s = (diff.abs() / size).argmin(1)
            w = w_all[s, rows]
            f = diff[rows, s]
            # pi_s: f + <w, z - x> = 0; from x: <w, delta> = -f, from x0: <w, delta> = -f - <w, x0 - x>
            c = torch.cat([-f, -f - (w * (x0 - x)).sum(1)])
            delta = hyperplane_projection(
                torch.cat([x, x0]), torch.cat([w, w]), c, self.low, self.high, norm
            )
            d1, d2 = delta.split(len(idx))
            n1, n2 = p_norm(d1, norm), p_norm(d2, norm)
            self.reach[idx] = torch.where(torch.isinf(self.reach[idx]), n2, self.reach[idx])
            alpha = (n1 / (n1 + n2).clamp_min(_TINY)).clamp(0, settings.alpha_max)[:, None]
            moved = (1 - alpha) * (x + eta * d1) + alpha * (x0 + eta * d2)
            x_new = access.clip(moved.view(-1, *shape)).flatten(1)
            scores = access.logits(x_new.view(-1, *shape), idx)
            current = scores
            adv = run.goal_met(scores, idx)
            distance = p_norm(x_new - x0, norm)
            closer = adv & (distance < self.best_norm[idx])
            self.best[idx] = torch.where(
                broadcast_view(closer, run.x[idx]), x_new.view(-1, *shape), self.best[idx]
            )
            self.best_norm[idx] = torch.where(closer, distance, self.best_norm[idx])
            self.best_scores[idx] = torch.where(closer[:, None], scores, self.best_scores[idx])
            x = torch.where(adv[:, None], x0 + settings.beta * (x_new - x0), x_new)
            if run.eps is not None:  # the one host sync per iteration
                going = (~self.settled(idx)).nonzero().squeeze(1)
                idx, x, x0, classes = idx[going], x[going], x0[going], classes[going]
                current = current[going]

    def final_search(self, steps: int) -> None:
        """Refine each sample's closest point x_out on the segment [x_orig, x_out].

        The segment is bracketed by a = x_orig (goal not met) and b = x_out (met); each step
        goes to the boundary point of the linear interpolation of the goal's margin m
        between them, t = m(a) / (m(a) - m(b)), leaned by :data:`LEAN` toward b (halfway
        when the margins have the wrong signs), and replaces b when the goal is met there,
        else a (one query per sample and step). b stays adversarial and only comes closer
        to x_orig: every point lies on the segment, inside the box and the ball.
        """
        run = self.run
        if steps == 0 or run.clean_scores is None:
            return
        found = torch.isfinite(self.best_norm).nonzero().squeeze(1)
        if not len(found):
            return
        a, b = run.x[found], self.best[found]
        m_a = margin(run, run.clean_scores[found], found)
        m_b = margin(run, self.best_scores[found], found)
        for _ in range(steps):
            t = m_a / (m_a - m_b)
            t = torch.where((t > 0) & (t < 1), t, torch.full_like(t, FINAL_FALLBACK))
            t = broadcast_view(t + LEAN * (1 - t), a)
            point = a + t * (b - a)
            scores = run.access.logits(point, found)
            met = run.goal_met(scores, found)
            m = margin(run, scores, found)
            wide = broadcast_view(met, a)
            b, a = torch.where(wide, point, b), torch.where(wide, a, point)
            m_b, m_a = torch.where(met, m, m_b), torch.where(met, m_a, m)
        self.best[found] = b


def _strongest_other(scores: Tensor, target: Tensor) -> Tensor:
    """argmax_{j != t} s_j per row: the class a targeted goal must beat."""
    return scores.scatter(1, target[:, None], -torch.inf).argmax(1)


def _settings(attack: FAB | FABT) -> Settings:
    return Settings(attack.norm, attack.steps, attack.alpha_max, attack.eta, attack.beta)


@declared
class FAB(MinimizationAttack):
    """FAB (Croce & Hein 2020), untargeted or targeted, in Linf or L2: the smallest
    perturbation found by projections onto the linearised decision boundary.

    Each iteration (see the module docstring):

        s       = argmin_{l != c} |f_l - f_c| / ||grad f_l - grad f_c||_q
        delta   = proj_p(x^(i), pi_s, C) - x^(i),  delta_orig = proj_p(x_orig, pi_s, C) - x_orig
        alpha   = min(||delta||_p / (||delta||_p + ||delta_orig||_p), alpha_max)
        x^(i+1) = proj_C((1 - alpha)(x^(i) + eta delta) + alpha (x_orig + eta delta_orig))

    and after an adversarial iterate, the backward step x^(i+1) <- (1 - beta) x_orig +
    beta x^(i+1). Targeted (a target t through the base class), only f_t - f_c is linearised.
    ``restarts`` runs, each after the first from a random start; then ``final_search`` steps
    on the segment from x_orig to the closest point found.

    Counting, per sample and iteration: K - 1 gradients (one when targeted) and two queries
    (the forward pass that is differentiated, and the check at x^(i+1)); one query for the
    clean logits and one per final-search step. ``eps`` caps the result (and stops a sample at
    its first adversarial point within it); a sample it does not fool comes back unchanged.
    """

    goals = frozenset({Goal.UNTARGETED, Goal.TARGETED})
    norms = frozenset({Norm.LINF, Norm.L2})
    norm: NormArg = norm_choice("linf", ("linf", "l2"))
    steps: int = STEPS
    restarts: int = RESTARTS
    alpha_max: float = ALPHA_MAX
    eta: float = ETA
    beta: float = BETA
    final_search: int = FINAL_SEARCH
    targeted: bool = TARGETED
    seed: int = SEED
    eps: float | None = budget(default=None)

    def _run(self, run: AttackRun) -> Tensor:
        search = Search.start(run)
        search.runs(_settings(self), self.restarts, run.target, ("fab",))
        search.final_search(self.final_search)
        return search.best


@declared
class FABT(MinimizationAttack):
    """FAB-T (Croce & Hein 2020), AutoAttack's standard version: FAB aimed in turn at the
    ``n_target_classes`` classes of highest clean logit after the label, linearising only
    f_t - f_c (one gradient per iteration), each target on the samples the earlier ones left
    standing (with ``eps``: those without an adversarial point within it). The goal is
    untargeted: any misclassification. Per sample it keeps the closest adversarial point
    over all targets and restarts, then runs the final search. Iterations, restarts, alpha_max,
    eta, beta and the counting as in :class:`FAB` (one gradient per iteration).
    """

    goals = frozenset({Goal.UNTARGETED})
    norms = frozenset({Norm.LINF, Norm.L2})
    norm: NormArg = norm_choice("linf", ("linf", "l2"))
    steps: int = STEPS
    restarts: int = RESTARTS
    n_target_classes: int = param(
        default=9,
        help="FAB-T's targets: the classes of highest clean logit after the label, in turn.",
        low=1,
    )
    alpha_max: float = ALPHA_MAX
    eta: float = ETA
    beta: float = BETA
    final_search: int = FINAL_SEARCH
    seed: int = SEED
    eps: float | None = budget(default=None)

    def _run(self, run: AttackRun) -> Tensor:
        k = run.access.num_classes
        search = Search.start(run)
        assert run.clean_scores is not None
        ranked = run.clean_scores.scatter(1, run.y[:, None], -torch.inf).argsort(1, descending=True)
        for i in range(min(self.n_target_classes, k - 1)):
            search.runs(_settings(self), self.restarts, ranked[:, i], ("fab-t", i))
        search.final_search(self.final_search)
        return search.best
