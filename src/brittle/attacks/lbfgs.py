"""Box-constrained L-BFGS of Szegedy et al. (2013, "Intriguing properties", section 4.1)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import Tensor

from brittle.perturbation import broadcast_view, within_budget
from brittle.threat import Goal, Norm

from .base import AttackRun, MinimizationAttack
from .params import budget, declared, param

if TYPE_CHECKING:
    from scipy.optimize import Bounds

Evaluate = Callable[[list[int], np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Objective values and gradients of the optimisers ``rows`` at the points stacked in a batch."""


class _Lockstep:
    """Independent optimisers, one thread each, whose objectives are evaluated as one batch.

    Each optimiser calls :meth:`objective` and blocks; once every optimiser still running has
    asked, the last one to ask evaluates the whole round in one batched call and wakes the
    others. An optimiser that stops calls :meth:`close`. A round holds exactly the optimisers
    still running, so its composition does not depend on thread timing. An error in the
    evaluation is raised in every waiting optimiser.
    """

    def __init__(self, evaluate: Evaluate, count: int) -> None:
        self._evaluate = evaluate
        self._running = count
        self._asked: dict[int, np.ndarray] = {}
        self._answers: dict[int, tuple[float, np.ndarray]] = {}
        self._error: BaseException | None = None
        self._ready = threading.Condition()

    def objective(self, row: int, point: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient of optimiser ``row``'s objective at ``point`` (blocks for the round)."""
        with self._ready:
            self._asked[row] = point
            self._evaluate_if_complete()
            self._ready.wait_for(lambda: row in self._answers or self._error is not None)
            if self._error is not None:
                raise self._error
            return self._answers.pop(row)

    def close(self) -> None:
        """An optimiser has stopped: the rounds no longer wait for it."""
        with self._ready:
            self._running -= 1
            self._evaluate_if_complete()

    def _evaluate_if_complete(self) -> None:
        if self._error is not None or not self._asked or len(self._asked) < self._running:
            return
        rows = sorted(self._asked)
        try:
            values, grads = self._evaluate(rows, np.stack([self._asked[r] for r in rows]))
        except BaseException as err:  # handed to every waiting optimiser
            self._error = err
        else:
            for i, row in enumerate(rows):
                self._answers[row] = (float(values[i]), grads[i])
        self._asked.clear()
        self._ready.notify_all()


def _flat_bound(bound: float | Tensor, features: int) -> np.ndarray:
    """One bound of the box as L-BFGS-B's per-feature array (infinite bounds stay so)."""
    if isinstance(bound, Tensor):
        return bound.flatten().double().cpu().numpy()
    return np.full(features, bound)


@declared
class LBFGS(MinimizationAttack):
    """Box-constrained L-BFGS (Szegedy et al. 2013, section 4.1), a minimal L2 attack.

    For each sample, with l the target class (targeted) or the true class (untargeted):

        minimise_r  c * ||r||_2^2 + loss_f(x + r, l)   subject to  x + r in [low, high]^m

    solved by L-BFGS-B (scipy) with the box as bounds, starting from r = 0. The paper's |r| is
    taken as the squared L2 norm (smooth at r = 0). The loss is
        targeted:    loss_f(x', t) = CE(f(x'), t) = -log p_t(x'),  the paper's form;
        untargeted:  loss_f(x', y) = -log(1 - p_y(x')) = logsumexp_j z_j - logsumexp_{j!=y} z_j,
    the cross-entropy of the event "not y": it pushes probability off y towards any other
    class, and is bounded below by 0, so it needs no clipping (unlike -CE(x', y)).

    Search over c, per sample: a larger c weighs ||r||^2 more, so its minimiser is smaller and
    less likely to fool the model. The smallest successful perturbation is therefore found at
    the *largest* c whose minimiser still succeeds (the paper's text asks for the "minimum c",
    which under its own objective would give the largest perturbation; we follow its intent).
    From ``initial_const``: success -> c_ok = c and c grows (x10 until a failure brackets it,
    then bisection); failure -> c_fail = c and c shrinks (/10 until a success brackets it, then
    bisection), for ``binary_steps`` steps. Across steps the smallest successful r is kept
    (within ``eps`` when given), so more steps never give a larger perturbation: the schedule of
    fewer steps is a prefix. Samples that already meet the goal are returned unchanged; samples
    never fooled are failures, returned unchanged (``minimal``).

    Efficiency: the objective is separable over samples, but one L-BFGS-B over the
    concatenated batch would couple them: a shared line search, curvature pairs whose inner
    products mix all samples, and global stopping tests, so a sample's result would depend on
    its batch. Instead every sample runs its own L-BFGS-B (exactly the paper's problem) in a
    thread, and the objectives of all running optimisers are evaluated together in torch on the
    classifier's device, one batched forward+backward per round (:class:`_Lockstep`); only
    the scipy interface goes through numpy. That is one thread per sample of the batch: split
    batches of thousands. Costs per sample: one gradient per objective evaluation, one query
    per step to check success, one for the clean check. The gradient of loss_f comes from the
    model access; c ||r||^2's, 2 c r, is added in closed form. Unbounded and per-feature boxes
    are L-BFGS-B's bounds as they are.
    """

    goals = frozenset({Goal.UNTARGETED, Goal.TARGETED, Goal.SOURCE_TARGET})
    norms = frozenset({Norm.L2})
    targeted: bool = param(
        default=True, help="Aim at target classes (the paper's setting).", cli=None
    )
    binary_steps: int = param(default=10, help="Steps of the search over the constant c.", low=1)
    initial_const: float = param(
        default=1e-2, help="The constant c of the first step.", low=0.0, low_open=True
    )
    max_iter: int = param(default=100, help="L-BFGS-B iterations per step.", low=1)
    eps: float | None = budget(default=None)

    def _run(self, run: AttackRun) -> Tensor:
        x = run.x
        run.clean_scores = run.access.logits(x)
        best = x.clone()
        best_size = torch.full((len(x),), math.inf, dtype=x.dtype, device=x.device)
        todo = (~run.goal_met(run.clean_scores)).nonzero().squeeze(1)
        c = torch.full((len(todo),), self.initial_const, dtype=x.dtype, device=x.device)
        c_ok = torch.zeros_like(c)
        c_fail = torch.full_like(c, math.inf)
        for _ in range(self.binary_steps if len(todo) else 0):
            z = self._minimise(run, todo, c)
            fooled = run.goal_met(run.access.logits(z, todo), todo)
            delta = z - x[todo]
            kept = fooled
            if run.eps is not None:
                kept = fooled & within_budget(delta, Norm.L2, run.eps[todo])
            size = delta.flatten(1).norm(dim=1)
            better = kept & (size < best_size[todo])
            best[todo[better]] = z[better]
            best_size[todo[better]] = size[better]
            # success (even over budget) asks for a smaller r: a larger c
            c_ok = torch.where(fooled, c, c_ok)
            c_fail = torch.where(fooled, c_fail, c)
            bracketed = (c_ok > 0) & torch.isfinite(c_fail)
            c = torch.where(bracketed, (c_ok + c_fail) / 2, torch.where(fooled, c * 10, c / 10))
        return best

    @staticmethod
    def _loss(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
        """Per-sample loss_f: -log p_t (targeted) or -log(1 - p_y) (untargeted)."""
        if targeted:
            return F.cross_entropy(logits, labels, reduction="none")
        mask = F.one_hot(labels, logits.shape[1]).bool()
        return logits.logsumexp(1) - logits.masked_fill(mask, -math.inf).logsumexp(1)

    def _minimise(self, run: AttackRun, todo: Tensor, c: Tensor) -> Tensor:
        """Minimisers x + r of c * ||r||^2 + loss_f(x + r, l) for the samples ``todo``."""
        x = run.x[todo]
        labels = run.labels[todo]

        def evaluate(rows: list[int], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            sel = torch.as_tensor(rows, device=x.device)
            z = torch.from_numpy(points).to(x.device, x.dtype).view(-1, *x.shape[1:])

            def loss_f(logits: Tensor, labels: Tensor) -> Tensor:
                return self._loss(logits, labels, run.targeted)

            grad, logits = run.access.loss_gradient(z, labels[sel], loss_f, todo[sel])
            with torch.no_grad():
                r = z - x[sel]
                c_rows = broadcast_view(c[sel], r)
                objective = c[sel] * r.flatten(1).pow(2).sum(1) + loss_f(logits, labels[sel])
                grad = grad + 2 * c_rows * r
            return (
                objective.double().cpu().numpy(),
                grad.flatten(1).double().cpu().numpy(),
            )

        from scipy.optimize import Bounds  # ~1 s to import: only when L-BFGS runs

        start = x.flatten(1).double().cpu().numpy()
        box = Bounds(*(_flat_bound(b, start.shape[1]) for b in run.access.bounds))
        lockstep = _Lockstep(evaluate, len(start))
        # scipy's L-BFGS-B calls BLAS on tiny matrices; threaded OpenBLAS makes it 10-30x
        # slower (scipy issue #22438), worse still on a busy machine
        with (
            threadpool_limits(limits=1, user_api="blas"),
            ThreadPoolExecutor(max_workers=len(start)) as pool,
        ):
            futures = [
                pool.submit(self._optimise, partial(lockstep.objective, row), lockstep, s, box)
                for row, s in enumerate(start)
            ]
            found = np.stack([f.result() for f in futures])
        return torch.from_numpy(found).to(x.device, x.dtype).view_as(x)

    def _optimise(
        self,
        objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
        lockstep: _Lockstep,
        start: np.ndarray,
        box: Bounds,
    ) -> np.ndarray:
        """One sample's L-BFGS-B run; tells ``lockstep`` when it stops, however it stops."""
        from scipy.optimize import minimize

        try:
            result = minimize(
                objective,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=box,
                options={"maxiter": self.max_iter},
            )
            found: np.ndarray = result.x
            return found
        finally:
            lockstep.close()
