"""The threat model (Papernot et al. 2016, section 2): goals, capabilities, norms, budget, box."""

from __future__ import annotations

import itertools
from dataclasses import FrozenInstanceError, dataclass

import pytest

from brittle import Capability, Goal, Norm, ThreatModel
from brittle.attacks import FGSM, DeepFool
from brittle.errors import ThreatModelError


@dataclass
class FakeAttack:
    goals: frozenset[Goal]
    norms: frozenset[Norm]
    capability: Capability


def spec(
    goals: set[Goal] | None = None,
    norms: set[Norm] | None = None,
    capability: Capability = Capability.WHITE_BOX,
) -> FakeAttack:
    return FakeAttack(
        frozenset(goals or {Goal.UNTARGETED}), frozenset(norms or {Norm.LINF}), capability
    )


def test_capability_ordering_strongest_first() -> None:
    """Papernot's Figure 2, left to right: each capability is strictly stronger than the next."""
    order = [
        Capability.TRAINING_DATA_AND_ARCHITECTURE,
        Capability.WHITE_BOX,
        Capability.TRAINING_DATA,
        Capability.ORACLE_SCORES,
        Capability.ORACLE_LABELS,
        Capability.SAMPLES,
    ]
    assert sorted(Capability, reverse=True) == order
    for stronger, weaker in itertools.pairwise(order):
        assert stronger > weaker


@pytest.mark.parametrize("threat_cap", list(Capability))
@pytest.mark.parametrize("attack_cap", list(Capability))
def test_attack_permitted_iff_threat_is_at_least_as_strong(
    threat_cap: Capability, attack_cap: Capability
) -> None:
    threat = ThreatModel(capability=threat_cap)
    attack = spec(capability=attack_cap)
    assert threat.permits(attack) == (threat_cap >= attack_cap)
    if threat_cap < attack_cap:
        with pytest.raises(
            ThreatModelError,
            match=rf"needs capability {attack_cap.name}.*"
            rf"threat's {threat_cap.name}",
        ):
            threat.check(attack)
    else:
        threat.check(attack)


def test_goal_mismatch_named() -> None:
    threat = ThreatModel(goal=Goal.SOURCE_TARGET)
    attack = spec(goals={Goal.UNTARGETED, Goal.TARGETED})
    reason = threat.mismatch(attack)
    assert reason is not None
    assert "FakeAttack" in reason and "'source_target'" in reason
    assert "misclassification" in reason and "targeted" in reason
    with pytest.raises(ThreatModelError, match=r"FakeAttack supports goals .* not 'source_target'"):
        threat.check(attack)


def test_norm_mismatch_named() -> None:
    threat = ThreatModel(norm="l0")  # type: ignore[arg-type]  # strings accepted at runtime
    attack = spec(norms={Norm.L2, Norm.LINF})
    with pytest.raises(ThreatModelError, match=r"works in norms \{l2, linf\}, not 'l0'"):
        threat.check(attack)


def test_check_on_fgsm() -> None:
    fgsm = FGSM(0.1)
    for norm in ("linf", "l2", "l1"):
        ThreatModel(norm=norm, eps=0.3).check(fgsm)  # type: ignore[arg-type]
    ThreatModel(goal=Goal.TARGETED).check(FGSM(0.1, targeted=True))
    ThreatModel(capability=Capability.TRAINING_DATA_AND_ARCHITECTURE).check(fgsm)
    with pytest.raises(ThreatModelError, match=r"FGSM works in norms \{l1, l2, linf\}, not 'l0'"):
        ThreatModel(norm="l0").check(fgsm)  # type: ignore[arg-type]
    ThreatModel(goal=Goal.CONFIDENCE_REDUCTION).check(fgsm)  # judged by the criterion
    with pytest.raises(
        ThreatModelError, match=r"DeepFool supports goals .*not 'confidence_reduction'"
    ):
        ThreatModel(goal=Goal.CONFIDENCE_REDUCTION).check(DeepFool())
    for weaker in (Capability.TRAINING_DATA, Capability.ORACLE_SCORES, Capability.SAMPLES):
        threat = ThreatModel(capability=weaker)
        assert not threat.permits(fgsm)
        with pytest.raises(
            ThreatModelError, match=rf"FGSM needs capability WHITE_BOX.*{weaker.name}"
        ):
            threat.check(fgsm)


def test_attack_check_threat_budget() -> None:
    FGSM(0.3).check_threat(ThreatModel(eps=0.3))
    FGSM(0.1).check_threat(ThreatModel(eps=0.3))
    with pytest.raises(ThreatModelError, match=r"FGSM has eps=0.31, over the threat's budget 0.3"):
        FGSM(0.31).check_threat(ThreatModel(eps=0.3))
    with pytest.raises(ThreatModelError, match="not 'l0'"):
        FGSM(0.1).check_threat(ThreatModel(norm="l0"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("linf", Norm.LINF),
        ("Linf", Norm.LINF),
        ("LINF", Norm.LINF),
        ("inf", Norm.LINF),
        ("infinity", Norm.LINF),
        ("l_inf", Norm.LINF),
        (" linf ", Norm.LINF),
        ("l2", Norm.L2),
        ("L2", Norm.L2),
        ("2", Norm.L2),
        ("l1", Norm.L1),
        ("1", Norm.L1),
        ("l0", Norm.L0),
        ("0", Norm.L0),
        (Norm.L2, Norm.L2),
    ],
)
def test_norm_parse_aliases(text: str | Norm, norm: Norm) -> None:
    assert Norm.parse(text) is norm


@pytest.mark.parametrize("text", ["l3", "euclid", "", "linfinity"])
def test_norm_parse_unknown(text: str) -> None:
    with pytest.raises(ThreatModelError, match=r"unknown norm .*use one of l0, l1, l2, linf"):
        Norm.parse(text)


def test_threat_model_normalises_its_fields() -> None:
    threat = ThreatModel(goal="targeted", capability=5, norm="Inf")  # type: ignore[arg-type]
    assert threat.goal is Goal.TARGETED
    assert threat.capability is Capability.WHITE_BOX
    assert threat.norm is Norm.LINF
    with pytest.raises(FrozenInstanceError):
        threat.eps = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf"), -float("inf")])
def test_invalid_eps(eps: float) -> None:
    with pytest.raises(ThreatModelError, match="eps must be a finite number >= 0"):
        ThreatModel(eps=eps)


def test_zero_eps_allowed() -> None:
    assert ThreatModel(eps=0.0).eps == 0.0


@pytest.mark.parametrize("bounds", [(1.0, 0.0), (0.5, 0.5), (0.0, float("nan"))])
def test_invalid_bounds(bounds: tuple[float, float]) -> None:
    with pytest.raises(ThreatModelError, match="bounds must satisfy low < high"):
        ThreatModel(bounds=bounds)


def test_unknown_goal_or_capability_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="bogus"):
        ThreatModel(goal="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="7"):
        ThreatModel(capability=7)  # type: ignore[arg-type]


def test_describe_states_the_threat() -> None:
    text = ThreatModel(norm="l2", eps=0.5, bounds=(0.0, 1.0)).describe()  # type: ignore[arg-type]
    assert text == "misclassification, WHITE_BOX, l2 <= 0.5 in [0, 1]"
    text = ThreatModel(in_distribution=True).describe()
    assert text.endswith("(in-distribution)")
