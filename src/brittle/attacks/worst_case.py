"""Several attacks, per sample the best result: the worst case for the model (in the spirit of
AutoAttack, Croce & Hein 2020)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.perturbation import norm_of, within_budget

from .base import Attack, AttackRun, FixedBudgetAttack, MinimizationAttack


def _common(attacks: Sequence[Attack], owner: str) -> tuple[Attack, ...]:
    """The attacks, checked: at least one, all attacks, all of one goal (targeted or not)."""
    out = tuple(attacks)
    if not out or not all(isinstance(a, Attack) for a in out):
        raise InputError(f"{owner} needs a non-empty sequence of attacks")
    if len({a.targeted for a in out}) > 1:
        raise InputError(f"{owner} needs attacks that are all targeted or all untargeted")
    return out


def _adopt(composite: Attack, attacks: tuple[Attack, ...]) -> None:
    """The composite's declarations from its attacks: norm and goal of the first, goals in
    common, the strongest capability needed, bounded boxes if any attack needs one."""
    first = attacks[0]
    composite.norm = first.norm
    composite.targeted = first.targeted
    composite.goals = frozenset.intersection(*(a.goals for a in attacks))
    composite.norms = frozenset({first.norm})
    composite.capability = max(a.capability for a in attacks)
    # an instance attribute: refused at the door, before the first attack does any work
    composite.supports_unbounded = all(a.supports_unbounded for a in attacks)


def _config(attacks: tuple[Attack, ...]) -> dict[str, Any]:
    return {"attacks": [{"name": a.name, "params": a.config()} for a in attacks]}


def _scaled_budget(composite: Attack, attack: Attack, run: AttackRun, idx: Tensor) -> Tensor | None:
    """``attack``'s budget for the samples ``idx`` in this call (``None``: its own).

    A per-call budget scales every attack's budget by ``eps / composite.eps`` (or replaces
    it when the composite has none, or 0).
    """
    if run.eps is None:
        return None
    if composite.eps and attack.eps is not None:
        return run.eps[idx] * (attack.eps / composite.eps)
    return run.eps[idx]


class WorstCase(FixedBudgetAttack):
    """Fixed-budget attacks in order, each only on the samples no earlier one broke.

    A sample counts as broken if any attack breaks it, so robust accuracy under ``WorstCase``
    is at most that under each attack alone, and a sample costs only the attacks up to its
    first success. A sample no attack breaks gets the first attack's output. The attacks must
    share the goal (all targeted or all untargeted); they all aim at the same targets.

    As an attack: norm = the first attack's norm, eps = the largest of the attacks' budgets,
    goals = the intersection of theirs, capability = the strongest. A candidate counts only if
    it lies inside that budget, so the base's projection never changes a kept input.
    Gradients and queries are summed over the attacks.
    """

    def __init__(self, attacks: Sequence[FixedBudgetAttack]) -> None:
        self.attacks = _common(attacks, "WorstCase")
        if not all(isinstance(a, FixedBudgetAttack) for a in self.attacks):
            raise InputError(
                "WorstCase runs fixed-budget attacks (FGSM, PGD, ...); use Smallest to combine "
                "minimal-perturbation attacks"
            )
        _adopt(self, self.attacks)
        self.eps = max(a.eps for a in self.attacks if a.eps is not None)

    def config(self) -> dict[str, Any]:
        return _config(self.attacks)

    def _run(self, run: AttackRun) -> Tensor:
        x = run.x
        best = x.clone()
        todo = torch.arange(len(x), device=x.device)
        for k, attack in enumerate(self.attacks):
            result = run.delegate(attack, todo, _scaled_budget(self, attack, run, todo))
            ok = result.success
            if run.eps is not None:
                ok = ok & within_budget(result.x_adv - x[todo], self.norm, run.eps[todo])
            if k == 0:
                best[todo] = result.x_adv
            best[todo[ok]] = result.x_adv[ok]
            todo = todo[~ok]
            if not len(todo):
                break
        return best


class Smallest(MinimizationAttack):
    """Every attack on every sample; per sample the smallest successful perturbation.

    Among the successful candidates of a sample the one smallest in the common norm is kept
    when all attacks share one norm, else the first successful one (in the order given). A
    sample no attack breaks fails and is returned unchanged. Attacks may be minimal or of
    fixed budget (their successes are candidates too).

    As an attack: norm = the first attack's norm, eps = the largest of the attacks' budgets
    (``None`` if any has none), goals = the intersection of theirs, capability = the
    strongest. Gradients and queries are summed over the attacks.
    """

    def __init__(self, attacks: Sequence[Attack]) -> None:
        self.attacks = _common(attacks, "Smallest")
        _adopt(self, self.attacks)
        budgets = [a.eps for a in self.attacks]
        finite = [b for b in budgets if b is not None]
        self.eps = max(finite) if len(finite) == len(budgets) else None

    def config(self) -> dict[str, Any]:
        return _config(self.attacks)

    def _run(self, run: AttackRun) -> Tensor:
        x = run.x
        best = x.clone()
        size = torch.full((len(x),), math.inf, dtype=x.dtype, device=x.device)
        same_norm = all(a.norm is self.norm for a in self.attacks)
        every = torch.arange(len(x), device=x.device)
        for attack in self.attacks:
            result = run.delegate(attack, every, _scaled_budget(self, attack, run, every))
            delta = result.x_adv - x
            ok = result.success
            if run.eps is not None:
                ok = ok & within_budget(delta, self.norm, run.eps)
            new = norm_of(delta, self.norm) if same_norm else torch.zeros_like(size)
            better = ok & (new < size)
            best[better] = result.x_adv[better]
            size[better] = new[better]
        return best
