"""The threat model of Papernot et al. 2016 (section 2): goal x capability x perturbation set.

Every attack declares the goals, norms and the capability it needs; an evaluation under a
:class:`ThreatModel` runs only the attacks the threat permits, and its report states it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Protocol

from brittle.errors import ThreatModelError


class Goal(StrEnum):
    """What the adversary wants (Papernot 2016, Figure 2, vertical axis)."""

    CONFIDENCE_REDUCTION = "confidence_reduction"
    UNTARGETED = "misclassification"
    TARGETED = "targeted"
    SOURCE_TARGET = "source_target"


class Capability(IntEnum):
    """What the adversary knows, strongest first (Papernot 2016, Figure 2, horizontal axis).

    A larger value is a stronger adversary: an attack that needs capability ``c`` is permitted
    under any threat whose capability is ``>= c``.
    """

    SAMPLES = 1
    """Input/output pairs only; no queries."""
    ORACLE_LABELS = 2
    """Queries that return the predicted label only (decision-based)."""
    ORACLE_SCORES = 3
    """Queries that return scores (probabilities or logits)."""
    TRAINING_DATA = 4
    """The training data, not the model: train a surrogate and transfer."""
    WHITE_BOX = 5
    """Architecture and parameters: gradients and forward derivatives."""
    TRAINING_DATA_AND_ARCHITECTURE = 6
    """Everything: the white box plus the training data."""


class Norm(StrEnum):
    """The norm of the perturbation set; L0 is measured as the fraction of features changed."""

    L0 = "l0"
    L1 = "l1"
    L2 = "l2"
    LINF = "linf"

    @classmethod
    def parse(cls, value: str | Norm) -> Norm:
        """Accept ``"linf"``, ``"Linf"``, ``"inf"``, ``"l2"``, ``"2"``, ... or a ``Norm``."""
        if isinstance(value, Norm):
            return value
        key = str(value).strip().lower().replace("_", "")
        aliases = {"inf": "linf", "infinity": "linf", "0": "l0", "1": "l1", "2": "l2"}
        key = aliases.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(n.value for n in cls)
            raise ThreatModelError(f"unknown norm {value!r}: use one of {names}") from None


class AttackTraits(Protocol):
    """What a threat model needs to know of an attack."""

    @property
    def goals(self) -> frozenset[Goal]: ...

    @property
    def norms(self) -> frozenset[Norm]: ...

    @property
    def capability(self) -> Capability: ...


@dataclass(frozen=True)
class ThreatModel:
    """A stated threat: goal, capability, norm, budget ``eps`` and the valid input box.

    ``in_distribution`` restricts perturbations to moves in a generator's latent space
    (Fawzi et al. 2018, section 5).
    """

    goal: Goal = Goal.UNTARGETED
    capability: Capability = Capability.WHITE_BOX
    norm: Norm = Norm.LINF
    eps: float = 0.3
    bounds: tuple[float, float] = (0.0, 1.0)
    in_distribution: bool = False

    def __post_init__(self) -> None:
        try:
            goal = Goal(self.goal)
        except ValueError:
            goals = ", ".join(g.value for g in Goal)
            raise ThreatModelError(f"unknown goal {self.goal!r}: use one of {goals}") from None
        try:
            capability = (
                Capability[str(self.capability).upper()]
                if isinstance(self.capability, str)
                else Capability(self.capability)
            )
        except (KeyError, ValueError):
            names = ", ".join(c.name.lower() for c in Capability)
            raise ThreatModelError(
                f"unknown capability {self.capability!r}: use one of {names}"
            ) from None
        object.__setattr__(self, "goal", goal)
        object.__setattr__(self, "capability", capability)
        object.__setattr__(self, "norm", Norm.parse(self.norm))
        if not math.isfinite(self.eps) or self.eps < 0:
            raise ThreatModelError(f"eps must be a finite number >= 0, got {self.eps}")
        low, high = self.bounds
        if not low < high:
            raise ThreatModelError(f"bounds must satisfy low < high, got {self.bounds}")

    def mismatch(self, attack: AttackTraits) -> str | None:
        """Why ``attack`` is not permitted under this threat, or ``None`` if it is."""
        name = type(attack).__name__
        if self.goal not in attack.goals:
            goals = ", ".join(sorted(g.value for g in attack.goals))
            return f"{name} supports goals {{{goals}}}, not {self.goal.value!r}"
        if self.norm not in attack.norms:
            norms = ", ".join(sorted(n.value for n in attack.norms))
            return f"{name} works in norms {{{norms}}}, not {self.norm.value!r}"
        if attack.capability > self.capability:
            return (
                f"{name} needs capability {attack.capability.name}, stronger than the "
                f"threat's {self.capability.name}"
            )
        return None

    def permits(self, attack: AttackTraits) -> bool:
        """Whether ``attack`` may run under this threat."""
        return self.mismatch(attack) is None

    def check(self, attack: AttackTraits) -> None:
        """Raise :class:`ThreatModelError` naming the mismatch if ``attack`` is not permitted."""
        reason = self.mismatch(attack)
        if reason is not None:
            raise ThreatModelError(reason)

    def describe(self) -> str:
        """One line for a report, e.g. ``misclassification, WHITE_BOX, linf <= 0.3 in [0, 1]``."""
        low, high = self.bounds
        where = " (in-distribution)" if self.in_distribution else ""
        return (
            f"{self.goal.value}, {self.capability.name}, {self.norm.value} <= {self.eps:g} "
            f"in [{low:g}, {high:g}]{where}"
        )
