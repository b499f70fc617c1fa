"""What counts as a successful attack: the goals of Papernot et al. 2016 as criteria.

A criterion judges the model's outputs on the returned inputs; the attack base uses it, and
only it, to set ``success``. The four goals of the paper's taxonomy (section 2):

- :class:`Misclassification`: any class but the true one, ``max_{j != y} s_j - s_y > kappa``;
- :class:`TargetedMisclassification`: a chosen class t per input,
  ``s_t - max_{j != t} s_j > kappa``;
- :class:`SourceTarget`: inputs of class s only, each aimed at t (the targeted test);
- :class:`ConfidenceReduction`: the probability of the true class below a threshold.

``s`` are the model's scores (a classifier's logits). With ``kappa = 0`` the test is on the
predicted label itself (argmax), so it also judges a model that only returns labels; a
margin ``kappa > 0`` (the C&W confidence) needs scores.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.randomness import per_sample
from brittle.threat import Goal
from brittle.validation import is_integer, is_real

TargetChoice = Tensor | np.ndarray | Literal["random", "least_likely", "next"]
TARGET_CHOICES = ("random", "least_likely", "next")
"""The named target choices: a random other class, the least likely, the next ((y + 1) mod K)."""


def _check_kappa(kappa: float) -> float:
    if not is_real(kappa) or not kappa >= 0:
        raise InputError(f"kappa must be a number >= 0 (a margin in score units), got {kappa!r}")
    if not math.isfinite(kappa):
        raise InputError(f"kappa must be finite, got {kappa!r}")
    return float(kappa)


def other_best(scores: Tensor, classes: Tensor) -> Tensor:
    """max_{j != c} s_j per row, for the class ``c`` of each row."""
    return scores.scatter(1, classes[:, None], float("-inf")).amax(1)


class Criterion(ABC):
    """A goal the attack base checks on the model's outputs at the returned inputs."""

    goal: ClassVar[Goal]
    targeted: ClassVar[bool] = False
    kappa: float = 0.0

    @property
    def needs_scores(self) -> bool:
        """Whether labels alone cannot decide it (a margin, or a probability)."""
        return self.kappa > 0

    def targets(
        self,
        y: Tensor,
        num_classes: int,
        clean_scores: Tensor | None,
        ids: Tensor,
        seed: int,
    ) -> Tensor | None:
        """The class each input is aimed at (checked), or ``None`` for untargeted goals."""
        return None

    @abstractmethod
    def met(
        self, scores: Tensor, y: Tensor, target: Tensor | None, probabilities: Tensor | None
    ) -> Tensor:
        """Per row: do these outputs meet the goal? ``probabilities`` only when needed."""

    @property
    def needs_probabilities(self) -> bool:
        return False

    def restricted(self, target: Tensor | None) -> Criterion:
        """This goal for a subset of the samples whose resolved targets are ``target``."""
        return self

    def describe(self) -> str:
        """The criterion as a short call, e.g. ``Misclassification(kappa=0)``."""
        return f"{type(self).__name__}(kappa={self.kappa:g})"


@dataclass(frozen=True)
class Misclassification(Criterion):
    """Untargeted: max_{j != y} s_j - s_y > kappa (with kappa = 0: the label is not y)."""

    kappa: float = 0.0
    goal: ClassVar[Goal] = Goal.UNTARGETED

    def __post_init__(self) -> None:
        object.__setattr__(self, "kappa", _check_kappa(self.kappa))

    def met(
        self, scores: Tensor, y: Tensor, target: Tensor | None, probabilities: Tensor | None
    ) -> Tensor:
        if self.kappa == 0:
            return scores.argmax(1) != y
        real = scores.gather(1, y[:, None]).squeeze(1)
        return other_best(scores, y) - real > self.kappa


def _targeted_met(scores: Tensor, target: Tensor | None, kappa: float) -> Tensor:
    if target is None:
        raise AssertionError("a targeted criterion is always resolved with targets")
    if kappa == 0:
        return scores.argmax(1) == target
    aimed = scores.gather(1, target[:, None]).squeeze(1)
    return aimed - other_best(scores, target) > kappa


@dataclass(frozen=True, eq=False)
class TargetedMisclassification(Criterion):
    """Each input to its class t: s_t - max_{j != t} s_j > kappa (kappa = 0: the label is t).

    ``targets``: one class per input, ``"random"`` (a class other than the label, drawn per
    sample id from the attack's seed), ``"least_likely"`` (the class of the lowest clean
    score other than the label, Kurakin et al. 2017) or ``"next"`` ((y + 1) mod K).
    """

    targets_spec: TargetChoice = "random"
    kappa: float = 0.0
    goal: ClassVar[Goal] = Goal.TARGETED
    targeted: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kappa", _check_kappa(self.kappa))
        spec = self.targets_spec
        if isinstance(spec, str) and spec not in TARGET_CHOICES:
            raise InputError(
                f"unknown target {spec!r}: give a tensor of classes or one of "
                + ", ".join(TARGET_CHOICES)
            )
        if not isinstance(spec, str | Tensor | np.ndarray):
            raise InputError(
                f"target must be a tensor of classes or one of {', '.join(TARGET_CHOICES)}; "
                f"got {type(spec).__name__}"
            )

    @property
    def least_likely(self) -> bool:
        """Whether the targets are the least likely classes (resolved from the clean scores)."""
        return isinstance(self.targets_spec, str) and self.targets_spec == "least_likely"

    @property
    def needs_scores(self) -> bool:
        """A margin, or least-likely targets: labels alone give neither."""
        return self.kappa > 0 or self.least_likely

    def targets(
        self,
        y: Tensor,
        num_classes: int,
        clean_scores: Tensor | None,
        ids: Tensor,
        seed: int,
    ) -> Tensor:
        spec = self.targets_spec
        if isinstance(spec, str):
            if spec == "random":
                return random_targets(y, num_classes, ids, seed)
            if spec == "next":
                return (y + 1) % num_classes
            if clean_scores is None:
                raise AssertionError("least_likely targets need the clean scores")
            # the least likely class other than the label (a misclassified input's label may
            # itself be the least likely, and aiming at it would reward a correct answer)
            return clean_scores.scatter(1, y[:, None], float("inf")).argmin(1)
        return check_targets(spec, y, num_classes)

    def met(
        self, scores: Tensor, y: Tensor, target: Tensor | None, probabilities: Tensor | None
    ) -> Tensor:
        return _targeted_met(scores, target, self.kappa)

    def restricted(self, target: Tensor | None) -> Criterion:
        return self if target is None else TargetedMisclassification(target, self.kappa)

    def describe(self) -> str:
        spec = self.targets_spec if isinstance(self.targets_spec, str) else "given"
        return f"TargetedMisclassification(targets={spec}, kappa={self.kappa:g})"


@dataclass(frozen=True)
class SourceTarget(Criterion):
    """Inputs of class ``source`` only, each to class ``target`` (Papernot 2016's source/target
    misclassification): s_t - max_{j != t} s_j > kappa. Inputs of other classes are refused."""

    source: int
    target: int
    kappa: float = 0.0
    goal: ClassVar[Goal] = Goal.SOURCE_TARGET
    targeted: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kappa", _check_kappa(self.kappa))
        for name in ("source", "target"):
            value = getattr(self, name)
            if not is_integer(value) or value < 0:
                raise InputError(f"SourceTarget {name} must be a class index >= 0, got {value!r}")
        if self.source == self.target:
            raise InputError(f"SourceTarget needs source != target, got {self.source} twice")

    def targets(
        self,
        y: Tensor,
        num_classes: int,
        clean_scores: Tensor | None,
        ids: Tensor,
        seed: int,
    ) -> Tensor:
        if max(self.source, self.target) >= num_classes:
            raise InputError(
                f"SourceTarget({self.source}, {self.target}) names a class the model does not "
                f"have (it has {num_classes}: 0 to {num_classes - 1})"
            )
        others = y != self.source
        if bool(others.any()):
            raise InputError(
                f"SourceTarget({self.source}, {self.target}): {int(others.sum())} of the "
                f"{len(y)} inputs are not of class {self.source}; pass only inputs of the "
                f"source class, e.g. x[y == {self.source}]"
            )
        return torch.full_like(y, int(self.target))

    def met(
        self, scores: Tensor, y: Tensor, target: Tensor | None, probabilities: Tensor | None
    ) -> Tensor:
        return _targeted_met(scores, target, self.kappa)

    def describe(self) -> str:
        return f"SourceTarget(source={self.source}, target={self.target}, kappa={self.kappa:g})"


@dataclass(frozen=True)
class ConfidenceReduction(Criterion):
    """The probability of the true class pushed below ``threshold``: p_y(x') < threshold."""

    threshold: float = 0.5
    goal: ClassVar[Goal] = Goal.CONFIDENCE_REDUCTION

    def __post_init__(self) -> None:
        t = self.threshold
        if not is_real(t) or not 0 < t <= 1:
            raise InputError(f"threshold must be a probability in (0, 1], got {t!r}")

    @property
    def needs_scores(self) -> bool:
        return True

    @property
    def needs_probabilities(self) -> bool:
        return True

    def met(
        self, scores: Tensor, y: Tensor, target: Tensor | None, probabilities: Tensor | None
    ) -> Tensor:
        if probabilities is None:
            raise AssertionError("ConfidenceReduction is always judged on probabilities")
        return probabilities.gather(1, y[:, None]).squeeze(1) < self.threshold

    def describe(self) -> str:
        return f"ConfidenceReduction(threshold={self.threshold:g})"


def random_targets(y: Tensor, num_classes: int, ids: Tensor, seed: int) -> Tensor:
    """A uniformly random class other than each label, drawn from the sample's own stream."""
    offsets = per_sample(
        seed, ids, "random-target", lambda g: torch.randint(1, num_classes, (), generator=g)
    )
    return (y + offsets.to(y.device, torch.long)) % num_classes


def check_targets(target: Tensor | np.ndarray, y: Tensor, num_classes: int) -> Tensor:
    """Given targets as long tensor on ``y``'s device: one class per input, in range, not y."""
    if isinstance(target, np.ndarray):
        target = torch.from_numpy(target)
    if target.is_floating_point() or target.ndim != 1 or target.shape[0] != y.shape[0]:
        raise InputError(
            f"target must be integer classes of shape ({y.shape[0]},), got dtype {target.dtype} "
            f"shape {tuple(target.shape)}"
        )
    target = target.to(y.device, torch.long)
    if len(target) and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise InputError(
            f"target has classes in [{int(target.min())}, {int(target.max())}] but the model has "
            f"{num_classes} classes"
        )
    same = target == y
    if bool(same.any()):
        first = int(same.nonzero()[0, 0])
        raise InputError(
            f"target equals the true label for {int(same.sum())} sample(s) (first: index {first}); "
            "a targeted attack must aim at another class"
        )
    return target


def criterion_for(
    goal: Goal | str,
    *,
    target: TargetChoice | int | None = None,
    source: int | None = None,
    threshold: float = 0.5,
    kappa: float = 0.0,
) -> Criterion:
    """The criterion of a threat model's goal (``ThreatModel.goal``), with its parameters."""
    goal = Goal(goal)
    if goal is Goal.UNTARGETED:
        return Misclassification(kappa)
    if goal is Goal.TARGETED:
        if isinstance(target, int):
            raise InputError(
                "a targeted goal takes a tensor of targets, 'random' or 'least_likely'"
            )
        return TargetedMisclassification("random" if target is None else target, kappa)
    if goal is Goal.SOURCE_TARGET:
        if source is None or not isinstance(target, int):
            raise InputError("the source_target goal needs a source class and a target class")
        return SourceTarget(source, target, kappa)
    return ConfidenceReduction(threshold)
