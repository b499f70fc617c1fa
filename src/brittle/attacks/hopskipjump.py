"""HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020): a decision-based attack.

It sees the model's predicted label only. From a starting point that meets the goal it walks
along the decision boundary towards the original input: a binary search puts the iterate on
the boundary, Monte Carlo probes around it estimate the direction of the boundary's normal
from the labels alone, and a geometric step size search moves along that direction while the
goal stays met. Batched over samples: every sample at iteration t takes the same phase at the
same time, each with its own draws and its own query budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from brittle.model import box_scale
from brittle.perturbation import broadcast_view
from brittle.threat import Capability, Norm

from .base import AttackRun, MinimizationAttack
from .decision import adversarial, clip_rows, count, flat_box
from .params import SEED, TARGETED, NormArg, budget, declared, norm_choice, param
from .rows import first

PROBE_ELEMENTS = 1 << 23
"""The most probe features (probes x features) drawn and sent to the model at once in one
gradient estimate; only memory and speed depend on it, never the result."""
MOST_HALVINGS = 64
"""The most halvings of one step size search (after 64 the step is below any float's
resolution: the candidate is the iterate itself)."""
BLEND_STEPS = 10
"""Steps of the first binary search, between the original and the noise that met the goal
(the reference implementation's tolerance 0.001 of the blend)."""


def blend(x: Tensor, far: Tensor, alpha: Tensor) -> Tensor:
    """(1 - alpha) x + alpha far, per flat row (one alpha per row)."""
    return x + alpha[:, None] * (far - x)


@declared
class HopSkipJump(MinimizationAttack):
    """HopSkipJump (Chen, Jordan & Wainwright 2020), decision-based, L2 and Linf.

    With phi(x') = 1 when x' meets the goal (another label; the target when targeted) and
    S(x') > 0 exactly there, each iteration t = 1, 2, ... does, per sample:

    1. **Gradient-direction estimate** at the boundary point x_t, with B_t = min(B_0 sqrt(t),
       B_max) probes u_b (standard normal for L2, uniform in [-1, 1]^d for Linf, scaled to
       unit L2 norm, and clipped with x_t + delta_t u_b to the box) and the baseline
       phi-bar = (1/B) sum_b phi_b:

           grad S(x_t) ~ 1/(B - 1) sum_b (phi(x_t + delta_t u_b) - phi-bar) u_b,

       (where every probe gives the same answer, the mean of the u_b with that answer's sign),
       with delta_t = sqrt(d) theta ||x~_{t-1} - x*||_2 (L2) or d theta ||x~_{t-1} - x*||_inf
       (Linf), and delta_1 = 0.1 of the box's width. The update direction is
       v_t = grad / ||grad||_2 (L2) or sign(grad) (Linf).
    2. **Geometric step size**: xi_t = ||x_t - x*||_p / sqrt(t), halved until
       x~_t = clip(x_t + xi_t v_t) meets the goal.
    3. **Binary search** between x* and x~_t for the boundary: x_{t+1} = proj(x~_t, alpha) at
       the smallest alpha found to meet the goal, with proj = (1 - alpha) x* + alpha x~
       (L2, alpha in [0, 1]) or clip(x~, x* - alpha, x* + alpha) (Linf, alpha in
       [0, ||x~ - x*||_inf]), stopped when the bracket is theta of its start:
       ceil(log2(1 / theta)) queries, with theta = gamma / d^(3/2) (L2) or gamma / d^2 (Linf).

    The start (the paper's initialisation): uniform noise in the box, up to ``init_trials``
    draws, until one meets the goal, then a binary search of 10 steps on the blend
    (1 - alpha) x* + alpha noise, then the binary search of step 3. A sample for which no
    draw meets the goal (likely for a target class of a real model) fails, with the queries
    it spent counted. Every point kept has been confirmed to meet the goal by a query; the
    sample returns the closest of them.

    A sample stops after ``steps`` iterations, when its query budget ``max_queries`` cannot
    pay an iteration (at least 2 probes, a step and the binary search: the last iteration's
    gradient estimate takes fewer probes to leave room for them), or, with a cap ``eps``,
    as soon as its distance is within it (what the cap asks for). Counting, per sample: one
    query for the clean input, one per noise draw, then one per probe, per step tried and
    per binary search step. A sample already meeting the goal comes back unchanged with
    distance 0. One host sync per model call (the count of rows, which sizes it; one for
    all the calls of a gradient estimate), and one ending each step size search (the count
    that finds no sample left). Draws come from the sample's own streams (``seed``, its id).
    """

    capability = Capability.ORACLE_LABELS
    norms = frozenset({Norm.L2, Norm.LINF})
    supports_unbounded = False
    supports_query_budget: ClassVar[bool] = True
    norm: NormArg = norm_choice("l2", ("l2", "linf"))
    eps: float | None = budget(default=None)
    max_queries: int = param(default=10_000, help="Most queries per sample.", low=1)
    steps: int = param(default=64, help="Most iterations per sample.", low=1)
    init_evals: int = param(default=100, help="Probes of the first gradient estimate (B_0).", low=2)
    max_evals: int = param(
        default=10_000, help="Most probes of one gradient estimate (B_max).", low=2
    )
    gamma: float = param(
        default=1.0,
        help="Binary search tolerance: theta = gamma / d^(3/2) (L2) or gamma / d^2 (Linf).",
        low=0.0,
        low_open=True,
    )
    init_trials: int = param(
        default=100, help="Uniform-noise draws tried for a starting point.", low=1
    )
    targeted: bool = TARGETED
    seed: int = SEED

    # ------------------------------------------------------------------ the pieces
    def _distance(self, delta: Tensor) -> Tensor:
        """||delta||_p per flat row, in the attack's norm."""
        if self.norm is Norm.L2:
            return delta.norm(dim=1)
        return delta.abs().amax(1)

    def _project(self, x: Tensor, far: Tensor, alpha: Tensor) -> Tensor:
        """proj(far, alpha) towards the original ``x`` (flat rows; one alpha per row)."""
        if self.norm is Norm.L2:
            return blend(x, far, alpha)
        a = alpha[:, None]
        return torch.minimum(torch.maximum(far, x - a), x + a)

    def _theta(self, features: int) -> float:
        return self.gamma / (features**1.5 if self.norm is Norm.L2 else features**2)

    def _bisect(
        self,
        run: AttackRun,
        going: Tensor,
        far: Tensor,
        high: Tensor,
        steps: int,
        project: Callable[[Tensor, Tensor, Tensor], Tensor],
    ) -> Tensor:
        """A binary search for the samples ``going`` along ``project(x*, far, alpha)``:
        ``steps`` halvings of the bracket [0, high] of each sample, one query each while its
        budget lasts. Returns the upper ends: alphas confirmed to meet the goal (or ``high``
        itself, where ``far`` met it)."""
        access, x = run.access, run.x.flatten(1)
        low = torch.zeros_like(high)
        high = high.clone()
        for _ in range(steps):
            ask = going & (access.remaining() > 0)
            k = count(ask)
            if not k:
                break
            rows = first(ask, k)
            mid = (low[rows] + high[rows]) / 2
            met = adversarial(run, project(x[rows], far[rows], mid), rows)
            high[rows] = torch.where(met, mid, high[rows])
            low[rows] = torch.where(met, low[rows], mid)
        return high

    def _draws(self, run: AttackRun, rows: Tensor, t: int, probes: int) -> Tensor:
        """The probes u_b ``(len(rows), probes, d)`` of iteration ``t``, from each sample's
        stream: standard normal (L2) or uniform in [-1, 1] (Linf), unit L2 norm."""
        d = run.x[0].numel()
        if self.norm is Norm.L2:
            u = run.normal(("hsj-probe", t), probes * d, rows)
        else:
            u = 2 * run.uniform(("hsj-probe", t), probes * d, rows) - 1
        u = u.view(len(rows), probes, d).to(run.x.dtype)
        return u / u.norm(dim=2, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)

    def _gradient(
        self,
        run: AttackRun,
        current: Tensor,
        rows: Tensor,
        probes: Tensor,
        most: int,
        total: int,
        delta: Tensor,
        t: int,
        box: tuple[Tensor, Tensor],
    ) -> Tensor:
        """The estimate of grad S at ``current[rows]`` from ``probes[i]`` probes of sample
        ``rows[i]`` (at most ``most``, ``total`` in all), with the baseline (step 1)."""
        m = len(rows)
        base = current[rows][:, None, :]
        d = delta[:, None, None]
        points = clip_rows(base + d * self._draws(run, rows, t, most), box)
        u = (points - base) / d
        used = torch.arange(most, device=rows.device)[None, :] < probes[:, None]
        flat = first(used.flatten(), total)
        owners = rows[:, None].expand(m, most).flatten()[flat]
        met = adversarial(run, points.flatten(0, 1)[flat], owners)
        phi = torch.zeros(m * most, dtype=u.dtype, device=u.device)
        phi[flat] = torch.where(met, 1.0, -1.0).to(u.dtype)
        phi = phi.view(m, most)
        mean = phi.sum(1) / probes.to(u.dtype)
        same = mean.abs() == 1
        weights = torch.where(same[:, None], mean[:, None], phi - mean[:, None]) * used
        return (weights[:, :, None] * u).sum(1)

    def _direction(self, grad: Tensor) -> Tensor:
        """v_t: the unit gradient estimate (L2) or its sign (Linf)."""
        if self.norm is Norm.LINF:
            return grad.sign()
        return grad / grad.norm(dim=1, keepdim=True).clamp_min(torch.finfo(grad.dtype).tiny)

    # ------------------------------------------------------------------ the attack
    def _run(self, run: AttackRun) -> Tensor:
        access, shape = run.access, run.x.shape
        x = run.x.flatten(1)
        n, d = x.shape
        box = flat_box(run)
        every = torch.arange(n, device=x.device)
        clean = adversarial(run, x, every)
        best = x.clone()
        best_dist = torch.where(clean, 0.0, math.inf).to(x.dtype)
        start, found = self._start(run, x, clean, box)
        going = found & ~clean
        theta = self._theta(d)
        search = math.ceil(math.log2(1 / theta))
        ones = torch.ones(n, dtype=x.dtype, device=x.device)
        far = blend(x, start, self._bisect(run, going, start, ones, BLEND_STEPS, blend))
        current, post = self._boundary(run, going, far, search)
        dist = self._distance(current - x)
        best = torch.where(going[:, None], current, best)
        best_dist = torch.where(going, dist, best_dist)
        if run.eps is not None:
            going &= best_dist > run.eps.to(x.dtype)
        width = box_scale(access.bounds)
        for t in range(1, self.steps + 1):
            most = min(int(self.init_evals * math.sqrt(t)), self.max_evals)
            # the probes each sample can pay for, leaving a step and the binary search
            probes = torch.clamp(access.remaining() - 1 - search, max=most)
            going &= probes >= 2
            probes = torch.where(going, probes, 0)
            per_sample = probes.tolist()  # the one sync that sizes the gradient's calls
            rows_host = [i for i, p in enumerate(per_sample) if p]
            if not rows_host:
                break
            rows_all = first(going, len(rows_host))
            delta = self._delta(t, width, post, d, theta)
            grad = torch.zeros_like(x)
            chunk = max(1, PROBE_ELEMENTS // (most * d))
            for c in range(0, len(rows_host), chunk):
                rows = rows_all[c : c + chunk]
                total = sum(per_sample[i] for i in rows_host[c : c + chunk])
                grad[rows] = self._gradient(
                    run, current, rows, probes[rows], most, total, delta[rows], t, box
                )
            far, accepted = self._step(run, going, current, self._direction(grad), dist, t, box)
            going &= accepted
            moved, post_t = self._boundary(run, going, far, search)
            current = torch.where(going[:, None], moved, current)
            post = torch.where(going, post_t, post)
            dist = self._distance(current - x)
            better = going & (dist < best_dist)
            best = torch.where(better[:, None], current, best)
            best_dist = torch.where(better, dist, best_dist)
            if run.eps is not None:
                going &= best_dist > run.eps.to(x.dtype)
        return best.view(shape)

    def _start(
        self, run: AttackRun, x: Tensor, clean: Tensor, box: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Uniform noise in the box, drawn until it meets the goal (at most ``init_trials``
        draws per sample): the starting points and which samples have one."""
        access = run.access
        low, high = box
        start = x.clone()
        found = clean.clone()
        d = x.shape[1]
        for trial in range(self.init_trials):
            ask = ~found & (access.remaining() > 0)
            k = count(ask)
            if not k:
                break
            rows = first(ask, k)
            u = run.uniform("hsj-start", d, rows, start=trial * d).to(x.dtype)
            noise = low + (high - low) * u
            met = adversarial(run, noise, rows)
            start[rows] = torch.where(met[:, None], noise, start[rows])
            found[rows] = met
        return start, found

    def _boundary(
        self, run: AttackRun, going: Tensor, far: Tensor, steps: int
    ) -> tuple[Tensor, Tensor]:
        """Step 3 from ``far`` (which meets the goal) for the samples ``going``: the boundary
        point, and ||far - x*||_p (the distance delta_t is made from)."""
        x = run.x.flatten(1)
        post = self._distance(far - x)
        high = torch.ones_like(post) if self.norm is Norm.L2 else post
        alpha = self._bisect(run, going, far, high, steps, self._project)
        return self._project(x, far, alpha), post

    def _delta(self, t: int, width: float, post: Tensor, d: int, theta: float) -> Tensor:
        """delta_t per sample: 0.1 of the box's width at t = 1, then from ||x~ - x*||_p."""
        if t == 1:
            return torch.full_like(post, 0.1 * width)
        scale = math.sqrt(d) if self.norm is Norm.L2 else d
        return (scale * theta * post).clamp_min(torch.finfo(post.dtype).tiny)

    def _step(
        self,
        run: AttackRun,
        going: Tensor,
        current: Tensor,
        v: Tensor,
        dist: Tensor,
        t: int,
        box: tuple[Tensor, Tensor],
    ) -> tuple[Tensor, Tensor]:
        """Step 2: xi_t = dist / sqrt(t), halved until clip(x_t + xi_t v_t) meets the goal.
        Returns the points reached and which samples reached one (the others ran out of
        queries)."""
        access = run.access
        xi = dist / math.sqrt(t)
        searching = going.clone()
        accepted = torch.zeros_like(going)
        for _ in range(MOST_HALVINGS):
            ask = searching & (access.remaining() > 0)
            k = count(ask)
            if not k:
                break
            rows = first(ask, k)
            candidate = clip_rows(current[rows] + broadcast_view(xi[rows], v[rows]) * v[rows], box)
            met = adversarial(run, candidate, rows)
            accepted[rows] = met
            searching[rows] = ~met
            xi[rows] = torch.where(met, xi[rows], xi[rows] / 2)
        far = clip_rows(current + xi[:, None] * v, box)
        return far, accepted
