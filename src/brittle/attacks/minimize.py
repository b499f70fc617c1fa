"""Bisection over the budget: any fixed-budget attack as a minimal-perturbation attack."""

from __future__ import annotations

import math
from dataclasses import InitVar
from typing import Any

import torch
from torch import Tensor

from brittle.errors import InputError

from .base import AttackRun, FixedBudgetAttack, MinimizationAttack
from .params import argument, declared, param


@declared
class Minimize(MinimizationAttack):
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

    attack: InitVar[FixedBudgetAttack] = argument()
    low: float = param(default=0.0, help="Smallest budget of the bisection.", low=0.0)
    high: float | None = param(
        default=None, help="Largest budget (default: the attack's eps).", low=0.0
    )
    tolerance: float = param(
        default=1e-3, help="Bisection stops at this width.", low=0.0, low_open=True
    )
    max_steps: int = param(default=20, help="Most bisection steps.", low=0.0)

    def _configure(self, *, attack: Any = None, **values: Any) -> None:
        """Check the wrapped attack, then the bisection's parameters; take its goal."""
        if not isinstance(attack, FixedBudgetAttack):
            raise InputError(
                f"Minimize wraps a fixed-budget attack (FGSM, PGD, ...), got "
                f"{type(attack).__name__}"
            )
        self.wrapped = attack
        if values["high"] is None:
            values["high"] = attack.eps
        super()._configure(**values)
        high = self.high
        assert high is not None  # checked as the wrapped attack's budget when not given
        if self.low > high:
            raise InputError(f"Minimize needs low <= high, got low={self.low}, high={high}")
        self.eps = high
        self.norm = attack.norm
        self.targeted = attack.targeted
        self.seed = attack.seed
        self.goals = attack.goals
        self.norms = frozenset({attack.norm})
        self.capability = attack.capability

    def config(self) -> dict[str, Any]:
        return {
            "attack": self.wrapped.name,
            "attack_params": self.wrapped.config(),
            **super().config(),
        }

    def _run(self, run: AttackRun) -> Tensor:
        """Bisect each sample's budget; the smallest successful eps goes to ``run.min_eps``."""
        if run.eps is None:
            raise AssertionError("Minimize always has a budget: high")
        x = run.x
        run.clean_scores = run.outputs(x)
        lo = run.eps.clamp(max=self.low)
        hi = torch.full_like(run.eps, math.inf)  # smallest eps seen successful
        hi[run.goal_met(run.clean_scores)] = 0.0
        best = x.clone()

        def attempt(idx: Tensor, eps: Tensor) -> Tensor:
            """Run the attack on ``idx`` at ``eps``; keep its successes; return the failures."""
            result = run.delegate(self.wrapped, idx, eps)
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
