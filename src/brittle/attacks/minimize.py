"""Bisection over the budget: any fixed-budget attack as a minimal-perturbation attack."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.threat import Capability, Goal, Norm

from .base import Attack, AttackRun


class Minimize(Attack):
    """The smallest budget at which a fixed-budget attack succeeds, per sample, by bisection.

    For each sample it estimates

        eps*(x) = min { eps in [low, high] : attack(x; eps) meets the goal }

    ``hi`` starts at ``high`` (default: the wrapped attack's eps; a sample the attack does not
    fool there is a failure, returned unchanged), ``lo`` at ``low``; each step tries
    ``mid = (lo + hi) / 2`` with a per-sample budget, ``attack.attack(..., eps=mid)``:
    success -> ``hi = mid``, failure -> ``lo = mid``, until ``hi - lo <= tolerance`` or after
    ``max_steps`` steps. The returned input is the attack's output at the final ``hi``.

    Bisection assumes success is monotone in eps, which holds for no attack in general (steps
    that overshoot, random starts, the box). ``hi`` only ever moves to a budget at which the
    attack was seen to succeed, so the reported eps is the smallest one *seen* successful, an
    upper bound on the true minimum, and never a budget at which the model was not fooled.

    ``result.min_eps`` holds it per sample: 0 for samples whose clean input already meets the
    goal (at eps = 0 every attack returns x, so the clean prediction decides, with one forward
    pass and no call of the attack), ``inf`` for failures. Gradients and queries are summed
    over all calls of the wrapped attack. Norm, goals and capability are the wrapped attack's.
    """

    minimal: ClassVar[bool] = True

    def __init__(
        self,
        attack: Attack,
        low: float = 0.0,
        high: float | None = None,
        tolerance: float = 1e-3,
        max_steps: int = 20,
    ) -> None:
        if not isinstance(attack, Attack):
            raise InputError(f"Minimize wraps an Attack, got {type(attack).__name__}")
        self.wrapped = attack
        high = attack.eps if high is None else high
        if high is None:
            raise InputError(f"{attack.name} has no budget eps: give Minimize a high")
        if not (math.isfinite(high) and 0 <= low <= high):
            raise InputError(f"need 0 <= low <= high < inf, got low={low}, high={high}")
        if not (math.isfinite(tolerance) and tolerance > 0) or max_steps < 0:
            raise InputError(
                f"need tolerance > 0 and max_steps >= 0, got {tolerance} and {max_steps}"
            )
        super().__init__(eps=high, norm=attack.norm, targeted=attack.targeted, seed=attack.seed)
        self.low = float(low)
        self.tolerance = tolerance
        self.max_steps = max_steps

    @property
    def goals(self) -> frozenset[Goal]:  # type: ignore[override]
        return self.wrapped.goals

    @property
    def norms(self) -> frozenset[Norm]:  # type: ignore[override]
        return frozenset({self.wrapped.norm})

    @property
    def capability(self) -> Capability:  # type: ignore[override]
        return self.wrapped.capability

    def _run(self, run: AttackRun) -> Tensor:
        """Bisect each sample's budget; the smallest successful eps goes to ``run.min_eps``."""
        if run.eps is None:
            raise AssertionError("Minimize always has a budget: high")
        x = run.x
        with torch.no_grad():
            run.clean_logits = run.classifier.logits(x)
        run.count(gradients=0)
        lo = run.eps.clamp(max=self.low)
        hi = torch.full_like(run.eps, math.inf)  # smallest eps seen successful
        hi[run.goal_met(run.clean_logits)] = 0.0
        best = x.clone()

        def attempt(idx: Tensor, eps: Tensor) -> Tensor:
            """Run the attack on ``idx`` at ``eps``; keep its successes; return the failures."""
            target = None if run.target is None else run.target[idx]
            result = self.wrapped.attack(run.classifier, x[idx], run.y[idx], target, eps=eps)
            run.gradients[idx] += result.gradients
            run.queries[idx] += result.queries
            ok = result.success
            hi[idx[ok]] = eps[ok]
            best[idx[ok]] = result.x_adv[ok]
            return ~ok

        todo = torch.isinf(hi).nonzero().squeeze(1)
        if len(todo):
            attempt(todo, run.eps[todo])
        if self.low > 0:
            todo = (torch.isfinite(hi) & (hi > lo)).nonzero().squeeze(1)
            if len(todo):
                attempt(todo, lo[todo])
        for _ in range(self.max_steps):
            todo = (torch.isfinite(hi) & (hi - lo > self.tolerance)).nonzero().squeeze(1)
            if not len(todo):
                break
            mid = (lo[todo] + hi[todo]) / 2
            failed = attempt(todo, mid)
            lo[todo[failed]] = mid[failed]
        run.min_eps = hi
        return best
