"""Several attacks, the worst case per sample (in the spirit of AutoAttack)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.perturbation import norm_of, within_budget
from brittle.threat import Capability, Goal, Norm

from .base import Attack, AttackRun


class WorstCase(Attack):
    """Runs several attacks and keeps, per sample, a successful adversarial input.

    A sample counts as broken if any attack breaks it, the worst case over the attacks, as in
    AutoAttack (Croce & Hein 2020): robust accuracy under ``WorstCase`` is at most that under
    each attack alone. The attacks must share the goal (all targeted or all untargeted); they
    all aim at the same targets.

    - All attacks fixed-budget: they run in order, each only on the samples no earlier attack
      broke, so a sample costs only the attacks up to its first success. A sample no attack
      breaks gets the first attack's output.
    - Any attack minimal: every attack runs on every sample, to find the smallest perturbation.

    Among the successful candidates of a sample the one smallest in the common norm is kept
    when all attacks share one norm, else the first successful one (in the order given).

    As an attack: norm = the first attack's norm, eps = the largest of the attacks' budgets
    (``None`` if any has none), goals = the intersection of theirs, capability = the
    strongest. A candidate counts only if it lies inside that budget, so the base's projection
    never changes a kept input. A per-call ``eps`` scales every attack's budget by
    ``eps / self.eps`` (or replaces it when ``self.eps`` is ``None`` or 0). Gradients and
    queries are summed over the attacks.
    """

    def __init__(self, attacks: Sequence[Attack]) -> None:
        self.attacks = tuple(attacks)
        if not self.attacks or not all(isinstance(a, Attack) for a in self.attacks):
            raise InputError("WorstCase needs a non-empty sequence of attacks")
        if len({a.targeted for a in self.attacks}) > 1:
            raise InputError("WorstCase needs attacks that are all targeted or all untargeted")
        budgets = [a.eps for a in self.attacks]
        finite: list[float] = [b for b in budgets if b is not None]
        eps = max(finite) if len(finite) == len(budgets) else None
        first = self.attacks[0]
        super().__init__(eps=eps, norm=first.norm, targeted=first.targeted)

    @property
    def goals(self) -> frozenset[Goal]:  # type: ignore[override]
        return frozenset.intersection(*(a.goals for a in self.attacks))

    @property
    def norms(self) -> frozenset[Norm]:  # type: ignore[override]
        return frozenset({self.attacks[0].norm})

    @property
    def capability(self) -> Capability:  # type: ignore[override]
        return max(a.capability for a in self.attacks)

    @property
    def minimal(self) -> bool:  # type: ignore[override]
        return any(a.minimal for a in self.attacks)

    def _run(self, run: AttackRun) -> Tensor:
        x = run.x
        best = x.clone()
        # size of the kept candidate; 0 for every success when norms differ (first one wins)
        size = torch.full((len(x),), math.inf, dtype=x.dtype, device=x.device)
        same_norm = all(a.norm is self.norm for a in self.attacks)
        for k, attack in enumerate(self.attacks):
            idx = torch.arange(len(x), device=x.device)
            if not self.minimal:
                idx = idx[torch.isinf(size)]
            if not len(idx):
                break
            target = None if run.target is None else run.target[idx]
            budget = self._budget_of(attack, run, idx)
            result = attack.attack(run.classifier, x[idx], run.y[idx], target, eps=budget)
            run.gradients[idx] += result.gradients
            run.queries[idx] += result.queries
            delta = result.x_adv - x[idx]
            ok = result.success
            if run.eps is not None:
                ok = ok & within_budget(delta, self.norm, run.eps[idx])
            new = norm_of(delta, self.norm) if same_norm else torch.zeros_like(size[idx])
            better = ok & (new < size[idx])
            if k == 0:
                best[idx] = result.x_adv
            best[idx[better]] = result.x_adv[better]
            size[idx[better]] = new[better]
        return best

    def _budget_of(self, attack: Attack, run: AttackRun, idx: Tensor) -> Tensor | None:
        """``attack``'s budget for the samples ``idx`` in this call (``None``: its own)."""
        if run.eps is None:
            return None
        if self.eps and attack.eps is not None:
            return run.eps[idx] * (attack.eps / self.eps)
        return run.eps[idx]
