"""The attack a task runs and the threat model it is checked against.

The threat model is an input (Papernot et al. 2016: what the adversary may do is stated
first, then an attack is chosen within it). A task is given one, or builds it from what the
user stated: the goal (``targeted`` / ``target``), the ``capability`` (white box by
default), the norm (``params["norm"]`` or the attack's default), the budget (``eps`` or
the attack's default) and the model's input box. Either way the attack is checked against it
with :meth:`~brittle.attacks.base.Attack.check_threat` before any sample is attacked, so an
attack that needs more than the threat grants (gradients under ``oracle_scores``, say) is
refused up front.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from brittle.attacks.base import Attack, MinimizationAttack, TargetSpec
from brittle.attacks.registry import accepted_parameters, attack_class, describe_attack, make_attack
from brittle.criteria import TARGET_CHOICES
from brittle.errors import InputError
from brittle.eval.sanity import unbounded_failure_warnings
from brittle.perturbation import box_diameter
from brittle.threat import Capability, Goal, ThreatModel

from .common import Target

EVERY_TARGET = "all"
"""The ``--target`` choice that attacks each sample once per other class."""
TARGETS = (*TARGET_CHOICES, EVERY_TARGET)
"""The target choices of the command line (``--target``)."""


def target_spec(targeted: bool, target: str | None) -> TargetSpec:
    """The targets to aim at: ``target`` implies a targeted attack; random by default.
    ``"all"`` is resolved by the task (each sample once per other class), before this."""
    if target is None:
        return "random" if targeted else None
    if target == EVERY_TARGET:
        raise InputError(
            "--target all (each sample once per other class) is an option of `brittle "
            "attack`; an evaluation takes one target per sample: random, least_likely or next"
        )
    if target not in TARGET_CHOICES:
        raise InputError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    return cast(TargetSpec, target)


def unbounded(attack: Attack, victim: Target) -> bool:
    """Whether ``attack`` looks for minimal perturbations without a budget that binds: none,
    or one at least the diameter of ``victim``'s box in the attack's norm (any change inside
    the box is then within it)."""
    if not isinstance(attack, MinimizationAttack):
        return False
    if attack.eps is None:
        return True
    diameter = box_diameter(attack.norm, victim.classifier.envelope(), victim.features)
    return attack.eps >= diameter * (1 - 1e-9)


@dataclass(frozen=True)
class Adversary:
    """An attack by name with the parameters stated for it, its targets and its threat.

    :meth:`attack` builds it at any budget; every build has the same parameters, goal and
    norm as the one checked against ``threat``.
    """

    name: str
    minimize: bool
    seed: int
    target: TargetSpec
    threat: ThreatModel
    params: dict[str, Any]

    def attack(self, eps: float | None) -> Attack:
        """The attack with budget ``eps`` (``None``: the attack's default)."""
        return _build(self.name, self.params, self.minimize, self.seed, eps, self.target)

    def describe(self, attack: Attack) -> dict[str, Any]:
        """The attack's name and declared parameters without its budget, with ``minimize``
        and the targets: what identifies the attack in a summary and in a run key."""
        info = describe_attack(attack)
        info["params"].pop("eps", None)
        return {**info, "minimize": self.minimize, "target": self.target}

    def failure_warnings(self, attack: Attack, victim: Target, success_rate: float) -> list[str]:
        """The warning that ``attack``, minimal and :func:`unbounded`, left correctly
        classified samples unbroken (``success_rate`` below 1): it is too weak as set."""
        if not unbounded(attack, victim):
            return []
        label = f"{self.name} --minimize" if self.minimize else self.name
        return unbounded_failure_warnings(label, success_rate)


def prepare(
    name: str,
    victim: Target,
    *,
    eps: float | None,
    params: Mapping[str, Any] | None,
    minimize: bool,
    targeted: bool,
    target: str | None,
    capability: Capability,
    threat: ThreatModel | None,
    seed: int,
) -> tuple[Adversary, Attack]:
    """The adversary of a task and its attack at budget ``eps``, checked against the threat.

    With ``threat`` given, what the user left unstated comes from it: the budget, the norm
    (for attacks that take one) and, for a targeted goal, random targets; ``capability`` is
    then unused. Without it, the threat is built from the stated options (see the module's
    docstring). ``params`` are the attack's parameters; ``None`` values count as not given.
    """
    stated = {k: v for k, v in (params or {}).items() if v is not None}
    spec = target_spec(targeted, target)
    if threat is not None:
        eps = threat.eps if eps is None else eps
        if "norm" in accepted_parameters(attack_class(name)):
            stated.setdefault("norm", threat.norm.value)
        if spec is None and threat.goal is Goal.TARGETED:
            spec = "random"
    built = _build(name, stated, minimize, seed, eps, spec)
    if built.targeted and spec is None:  # an attack targeted by default (L-BFGS)
        spec = "random"
    if threat is None:
        threat = stated_threat(built, spec, capability, victim)
    built.check_threat(threat)
    adversary = Adversary(name, minimize, seed, spec, threat, stated)
    return adversary, built


def stated_threat(
    attack: Attack, target: TargetSpec, capability: Capability, victim: Target
) -> ThreatModel:
    """The threat the user stated: goal from the targets, the capability asked for, the
    attack's norm and budget (an attack without one is bounded by the box's diameter), and
    the model's box."""
    bounds = victim.classifier.envelope()
    eps = attack.eps
    if eps is None:
        eps = box_diameter(attack.norm, bounds, victim.features)
    return ThreatModel(
        goal=Goal.TARGETED if target is not None else Goal.UNTARGETED,
        capability=capability,
        norm=attack.norm,
        eps=eps,
        bounds=bounds,
    )


def _build(
    name: str,
    params: Mapping[str, Any],
    minimize: bool,
    seed: int,
    eps: float | None,
    target: TargetSpec,
) -> Attack:
    """The attack ``name``; an attack that takes no targets is built untargeted, for the
    threat check to refuse the targeted goal with the attack's goals."""
    aims = target is not None and "targeted" in accepted_parameters(attack_class(name))
    return make_attack(
        name, minimize=minimize, seed=seed, eps=eps, targeted=True if aims else None, **params
    )
