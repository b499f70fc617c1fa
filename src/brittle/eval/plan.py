"""The first phase of an evaluation: settle its attacks and its threat model, name its run.

The threat model is an input (Papernot et al. 2016: what the adversary may do is stated
first, then an attack is chosen within it). An evaluation is given one, or states it from
the user's options: the goal (from the targets), the capability, the norm (an attack's
``norm`` parameter or its default), the largest budget and the model's box. Either way every
attack is checked against it before any sample is attacked, so an attack that needs more than
the threat grants (gradients under ``oracle_scores``, say) is refused up front, and the
attacks of one evaluation must state one threat.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from brittle.attacks.base import Attack, MinimizationAttack, TargetSpec
from brittle.attacks.registry import accepted_parameters, attack_class
from brittle.checks.sweep import unbounded_failure_warnings
from brittle.data import DATASET_NAMES
from brittle.errors import InputError
from brittle.eval.spec import AttackSpec, EvaluationSpec
from brittle.eval.store import run_key
from brittle.eval.suite import RAISE, suite_attacks
from brittle.eval.victim import Victim
from brittle.perturbation import box_diameter
from brittle.threat import Capability, Goal, Norm, ThreatModel

if TYPE_CHECKING:
    from brittle.eval.runner import Evaluation


@dataclass(frozen=True)
class Plan:
    """An evaluation ready to run: its spec, the victim, the attacks as settled (suite
    expanded, the threat's norm and goal filled in), the threat and the run's identity."""

    spec: EvaluationSpec
    victim: Victim
    attacks: tuple[AttackSpec, ...]
    threat: ThreatModel
    raised: AttackSpec | None = None
    """The suite's black-box stage run again with raised queries, when it was
    (:func:`raised_stage`); it is the last of :attr:`attacks`."""

    def with_stage(self, stage: AttackSpec) -> Plan:
        """This plan with the raised black-box ``stage`` run last."""
        return replace(self, attacks=(*self.attacks, stage), raised=stage)

    @property
    def identity(self) -> dict[str, Any]:
        """What the run is: the model's SHA-256, the data's identity (format, split, size,
        class names and content hash; never the display name alone), the threat model
        without its budget, the seed, and when set the reduced precision of the crafting
        passes and the EOT setting of a randomised model (each changes the attacks' paths
        and verdicts). Two runs with one identity give one result per (attack, budget,
        sample)."""
        data = self.victim.source.identity()
        identity: dict[str, Any] = {
            "model_sha256": self.victim.meta["sha256"],
            "data": {k: data[k] for k in ("kind", "split", "size", "classes", "sha256")},
            "threat": {
                "goal": self.threat.goal.value,
                "capability": self.threat.capability.name,
                "norm": self.threat.norm.value,
                "bounds": list(self.threat.bounds),
                "in_distribution": self.threat.in_distribution,
            },
            "seed": self.spec.seed,
        }
        amp = getattr(self.victim.model, "amp", None)
        if amp is not None:
            identity["amp"] = amp
        eot = getattr(self.victim.model, "eot", None)
        if eot is not None:
            identity["eot"] = {"samples": eot.samples, "draws": eot.draws}
        return identity

    @property
    def key(self) -> str:
        """The run's key in the store (the hash of :attr:`identity`)."""
        return run_key(self.identity)


def make_plan(spec: EvaluationSpec, victim: Victim) -> Plan:
    """Settle ``spec``'s attacks (the suite's, when it names one) and its threat on
    ``victim``."""
    attacks = spec.attacks
    if spec.suite is not None:
        attacks = _suite(spec, victim)
    settled, threat = settle(
        attacks, spec.threat, spec.largest, spec.capability, victim.model, victim.features
    )
    return Plan(spec=spec, victim=victim, attacks=settled, threat=threat)


def settle(
    attacks: tuple[AttackSpec, ...],
    threat: ThreatModel | None,
    largest: float | None,
    capability: Capability,
    model: Any,
    features: int,
) -> tuple[tuple[AttackSpec, ...], ThreatModel]:
    """The attacks with what the threat implies filled in, and the threat, each attack
    checked against it at the ``largest`` budget.

    With ``threat`` given, an attack that takes a norm and was not given one gets the
    threat's, and a targeted goal aims attacks without targets at random classes. Without
    it, the threat is stated from the first attack (:func:`stated_threat`) with
    ``capability``, or the model's when it grants less (an Oracle). An attack targeted by
    default (L-BFGS) aims at random classes.
    """
    settled: list[AttackSpec] = []
    stated = threat
    granted = getattr(model, "capability", capability)
    capability = min(capability, granted)  # an Oracle grants no more than its queries
    for attack in attacks:
        params, target = dict(attack.params), attack.target
        if threat is not None and attack.factory is None:
            if "norm" in accepted_parameters(attack_class(attack.name)):
                params.setdefault("norm", threat.norm.value)
            if target is None and threat.goal is Goal.TARGETED:
                target = "random"
        attack = replace(attack, params=params, target=target)
        built = attack.build(largest)
        if built.targeted and attack.target is None:
            attack = replace(attack, target="random")
        if stated is None:
            stated = stated_threat(built, attack.target, capability, model, features)
        built.check_threat(stated)
        settled.append(attack)
    assert stated is not None
    first = settled[0].build(largest)
    for attack in settled[1:]:
        other = attack.build(largest)
        mine = (bool(attack.target is not None), other.norm)
        if mine != (bool(settled[0].target is not None), first.norm):
            raise InputError(
                f"the attacks of one evaluation must state one threat model: "
                f"{settled[0].label} and {attack.label} differ in goal or norm; evaluate them "
                "into separate --out folders"
            )
    return tuple(settled), stated


def stated_threat(
    attack: Attack, target: TargetSpec, capability: Capability, model: Any, features: int
) -> ThreatModel:
    """The threat the user stated: goal from the targets, the capability asked for, the
    attack's norm and budget (an attack without one is bounded by the box's diameter), and
    the model's box."""
    bounds = model.envelope()
    eps = attack.eps
    if eps is None:
        eps = box_diameter(attack.norm, bounds, features)
    return ThreatModel(
        goal=Goal.TARGETED if target is not None else Goal.UNTARGETED,
        capability=capability,
        norm=attack.norm,
        eps=eps,
        bounds=bounds,
    )


def unbounded(attack: Attack, model: Any, features: int) -> bool:
    """Whether ``attack`` looks for minimal perturbations without a budget that binds: none,
    or one at least the diameter of the model's box in the attack's norm."""
    if not isinstance(attack, MinimizationAttack):
        return False
    if attack.eps is None:
        return True
    diameter = box_diameter(attack.norm, model.envelope(), features)
    return attack.eps >= diameter * (1 - 1e-9)


def failure_warnings(
    spec: AttackSpec, attack: Attack, model: Any, features: int, success_rate: float
) -> list[str]:
    """The warning that ``attack``, minimal and :func:`unbounded`, left correctly
    classified samples unbroken (``success_rate`` below 1): it is too weak as set."""
    if not unbounded(attack, model, features):
        return []
    label = f"{spec.name} --minimize" if spec.minimize else spec.name
    return unbounded_failure_warnings(label, success_rate)


def _suite(spec: EvaluationSpec, victim: Victim) -> tuple[AttackSpec, ...]:
    """The attacks of ``spec``'s suite for the threat it states, on the victim's inputs."""
    if spec.threat is not None and spec.threat.goal is not Goal.UNTARGETED:
        raise InputError(
            f"the {spec.suite} suite is untargeted; drop the targeted goal, or list the attacks"
        )
    norm = spec.norm or (spec.threat.norm.value if spec.threat is not None else Norm.LINF.value)
    granted = spec.threat.capability if spec.threat is not None else spec.capability
    assert spec.suite is not None
    data = spec.data.dataset or victim.meta.get("dataset")
    if spec.data.data_dir is not None:  # the substitute loads a data set by its name alone
        data = None
    return suite_attacks(
        spec.suite,
        norm,
        granted,
        victim.source.input_shape,
        spec.seed,
        data=data if isinstance(data, str) and data in DATASET_NAMES else None,
    )


def raised_stage(plan: Plan, evaluation: Evaluation) -> AttackSpec | None:
    """The suite's last black-box stage again, with :data:`~brittle.eval.suite.RAISE` times
    its queries, on the samples still standing: when the black-box check
    (:func:`~brittle.checks.probes.black_box_check`) finds samples that an attack of weaker
    capability broke and every attack of the strongest capability left standing (the sign
    that the stronger attacks are misled, and that more queries may break more). ``None``
    otherwise, for attacks listed by the user (their budgets are theirs), and once raised."""
    from brittle.checks.probes import black_box_check

    if plan.spec.suite is None or plan.raised is not None:
        return None
    if not black_box_check(evaluation, plan.attacks).warned:
        return None
    tiers = [a.build(evaluation.eps[0]).capability for a in plan.attacks]
    weaker = [a for a, t in zip(plan.attacks, tiers, strict=True) if t < max(tiers)]
    stage = next((a for a in reversed(weaker) if "max_queries" in a.params), None)
    if stage is None:
        return None
    params = {**stage.params, "max_queries": int(stage.params["max_queries"]) * RAISE}
    shown = [f"{k}={v}" for k, v in params.items() if k != "norm"]
    return replace(stage, params=params, label=":".join([stage.name, *shown]), survivors_only=True)
