"""Goals as criteria: each criterion's verdict is its test on the model's outputs at the
returned inputs, attacks refuse goals they do not declare, and the short forms still work."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier, Oracle, ThreatModel
from brittle.attacks import FGSM, PGD, CarliniWagnerL2, DeepFool, SimBA
from brittle.attacks.base import Attack, AttackRun, FixedBudgetAttack
from brittle.attacks.registry import attack_class
from brittle.criteria import (
    ConfidenceReduction,
    Criterion,
    Misclassification,
    SourceTarget,
    TargetedMisclassification,
    criterion_for,
    random_targets,
)
from brittle.errors import InputError, ThreatModelError
from brittle.threat import Capability, Goal
from foundation import names, small
from helpers import softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> tuple[Classifier, Tensor, Tensor]:
    clf, x, y = softmax_on_digits()
    return clf, x[:60], y[:60]


def logits_at(clf: Classifier, x: Tensor) -> Tensor:
    with torch.no_grad():
        out: Tensor = clf.module(x)
    return out


def best_other(z: Tensor, classes: Tensor) -> Tensor:
    return z.scatter(1, classes[:, None], float("-inf")).amax(1)


class LabelSearch(FixedBudgetAttack):
    """A test attack that sees labels only: a few random sign perturbations per sample, the
    first that meets the goal kept."""

    capability = Capability.ORACLE_LABELS
    goals = frozenset(Goal)

    def _run(self, run: AttackRun) -> Tensor:
        x_adv = run.x.clone()
        todo = torch.arange(len(run.x))
        for trial in range(4):
            noise = run.random(("noise", trial), lambda g: torch.rand(64, generator=g), todo)
            step = (noise.view_as(run.x[todo]) * 2 - 1).sign() * run.eps_view(todo)
            candidate = run.access.clip(run.x[todo] + step)
            met = run.goal_met(run.outputs(candidate, todo), todo)
            x_adv[todo[met]] = candidate[met]
            todo = todo[~met]
        return x_adv


ATTACKS: dict[str, Callable[[], Attack]] = {
    "fgsm": lambda: FGSM(0.15),
    "pgd": lambda: PGD(0.15, steps=10),
    "cw": lambda: CarliniWagnerL2(steps=20, binary_steps=3, confidence=2.0),
    "simba": lambda: SimBA(1.5, max_queries=80),
}


# ----------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize("kappa", [0.0, 2.0])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_misclassification_is_the_margin_test(
    digits: tuple[Classifier, Tensor, Tensor], name: str, kappa: float
) -> None:
    clf, x, y = digits
    result = ATTACKS[name]()(clf, x, y, criterion=Misclassification(kappa))
    z = logits_at(clf, result.x_adv)
    expected = best_other(z, y) - z.gather(1, y[:, None]).squeeze(1) > kappa
    assert torch.equal(result.success, expected)
    assert bool(expected.any()) and result.criterion == f"Misclassification(kappa={kappa:g})"
    if kappa == 0:
        assert torch.equal(expected, z.argmax(1) != y)


@pytest.mark.parametrize("kappa", [0.0, 2.0])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_targeted_misclassification_is_the_margin_test(
    digits: tuple[Classifier, Tensor, Tensor], name: str, kappa: float
) -> None:
    clf, x, y = digits
    t = (y + 3) % 10
    criterion = TargetedMisclassification(t, kappa)
    result = ATTACKS[name]()(clf, x, y, criterion=criterion)
    assert result.target is not None and torch.equal(result.target, t)
    z = logits_at(clf, result.x_adv)
    expected = z.gather(1, t[:, None]).squeeze(1) - best_other(z, t) > kappa
    assert torch.equal(result.success, expected)
    assert result.criterion == f"TargetedMisclassification(targets=given, kappa={kappa:g})"


@pytest.mark.parametrize("threshold", [0.3, 0.9])
@pytest.mark.parametrize("name", ["fgsm", "pgd", "simba"])
def test_confidence_reduction_is_the_probability_test(
    digits: tuple[Classifier, Tensor, Tensor], name: str, threshold: float
) -> None:
    clf, x, y = digits
    result = ATTACKS[name]()(clf, x, y, criterion=ConfidenceReduction(threshold))
    p = logits_at(clf, result.x_adv).softmax(1).gather(1, y[:, None]).squeeze(1)
    assert torch.equal(result.success, p < threshold)
    assert result.criterion == f"ConfidenceReduction(threshold={threshold:g})"
    assert bool(result.success.any())


def test_confidence_reduction_on_an_oracle_of_probabilities(
    digits: tuple[Classifier, Tensor, Tensor],
) -> None:
    clf, x, y = digits
    model = Oracle(lambda v: clf.module(v).softmax(1), 10, (1, 8, 8), outputs="scores")
    result = SimBA(1.0, max_queries=60)(model, x, y, criterion=ConfidenceReduction(0.6))
    p = logits_at(clf, result.x_adv).softmax(1).gather(1, y[:, None]).squeeze(1)
    assert torch.equal(result.success, p < 0.6)
    assert bool(result.success.any()) and not bool(result.success.all())


def test_source_target_aims_every_input_at_its_target(
    digits: tuple[Classifier, Tensor, Tensor],
) -> None:
    clf, x, y = softmax_on_digits()
    threes = y == 3
    result = PGD(0.2, steps=10)(clf, x[threes], y[threes], criterion=SourceTarget(3, 8))
    assert result.target is not None and result.target.tolist() == [8] * int(threes.sum())
    assert torch.equal(result.success, logits_at(clf, result.x_adv).argmax(1) == 8)
    assert bool(result.success.any())
    assert result.criterion == "SourceTarget(source=3, target=8, kappa=0)"


def test_source_target_refuses_inputs_of_another_class(
    digits: tuple[Classifier, Tensor, Tensor],
) -> None:
    clf, x, y = digits
    others = int((y != 3).sum())
    with pytest.raises(InputError, match=f"{others} of the {len(y)} inputs are not of class 3"):
        PGD(0.2, steps=2)(clf, x, y, criterion=SourceTarget(3, 8))


@pytest.mark.parametrize(("source", "target"), [(3, 10), (10, 3), (3, 25)])
def test_source_target_refuses_a_class_the_model_does_not_have(
    digits: tuple[Classifier, Tensor, Tensor], source: int, target: int
) -> None:
    clf, x, y = digits
    with pytest.raises(InputError, match="names a class the model does not have"):
        PGD(0.2, steps=2)(clf, x[y == 3], y[y == 3], criterion=SourceTarget(source, target))


@pytest.mark.parametrize(
    ("source", "target"), [(-1, 3), (3, -2), (3, 3), (True, 2), (2.0, 3), ("3", 8)]
)
def test_source_target_refuses_bad_classes(source: object, target: object) -> None:
    with pytest.raises(InputError, match="SourceTarget"):
        SourceTarget(source, target)  # type: ignore[arg-type]


@pytest.mark.parametrize("kappa", [-1.0, math.nan, math.inf, True, "1"])
def test_margins_are_checked(kappa: object) -> None:
    with pytest.raises(InputError, match="kappa"):
        Misclassification(kappa)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="kappa"):
        TargetedMisclassification("random", kappa)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [0.0, 1.5, -0.2, math.nan, True])
def test_thresholds_are_checked(threshold: object) -> None:
    with pytest.raises(InputError, match="threshold"):
        ConfidenceReduction(threshold)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- goals
@pytest.mark.parametrize("goal", list(Goal))
def test_threat_model_goals_map_to_criteria(goal: Goal) -> None:
    threat = ThreatModel(goal=goal)
    expected: dict[Goal, type[Criterion]] = {
        Goal.UNTARGETED: Misclassification,
        Goal.TARGETED: TargetedMisclassification,
        Goal.SOURCE_TARGET: SourceTarget,
        Goal.CONFIDENCE_REDUCTION: ConfidenceReduction,
    }
    extra: dict[str, int] = {"source": 1, "target": 7} if goal is Goal.SOURCE_TARGET else {}
    criterion = criterion_for(threat.goal, **extra)
    assert type(criterion) is expected[goal] and criterion.goal is goal
    assert criterion_for(goal.value, **extra).goal is goal
    if goal is not Goal.CONFIDENCE_REDUCTION:
        assert criterion_for(goal, kappa=1.5, **extra).kappa == 1.5


def test_criterion_for_checks_what_a_goal_needs() -> None:
    assert criterion_for("confidence_reduction", threshold=0.2) == ConfidenceReduction(0.2)
    target = criterion_for("targeted", target="least_likely")
    assert isinstance(target, TargetedMisclassification) and target.least_likely
    with pytest.raises(InputError, match="targeted goal takes a tensor"):
        criterion_for("targeted", target=3)
    with pytest.raises(InputError, match="needs a source class and a target class"):
        criterion_for("source_target", target=3)
    with pytest.raises(ValueError):
        criterion_for("fooling")


@pytest.mark.parametrize("name", names())
def test_attacks_refuse_the_goals_they_do_not_declare(
    digits: tuple[Classifier, Tensor, Tensor], name: str
) -> None:
    clf, x, y = digits
    cls = attack_class(name)
    criteria: dict[Goal, Criterion] = {
        Goal.UNTARGETED: Misclassification(),
        Goal.TARGETED: TargetedMisclassification((y[:4] + 1) % 10),
        Goal.SOURCE_TARGET: SourceTarget(int(y[0]), (int(y[0]) + 1) % 10),
        Goal.CONFIDENCE_REDUCTION: ConfidenceReduction(),
    }
    for goal in (g for g in Goal if g not in cls.goals):
        with pytest.raises(ThreatModelError, match=f"not '{goal.value}'"):
            small(name)(clf, x[:4], y[:4], criterion=criteria[goal])


def test_deepfool_refuses_targets(digits: tuple[Classifier, Tensor, Tensor]) -> None:
    clf, x, y = digits
    with pytest.raises(ThreatModelError, match=r"DeepFool supports goals \{misclassification\}"):
        DeepFool(steps=2)(clf, x[:4], y[:4], criterion=TargetedMisclassification("random"))
    with pytest.raises(ThreatModelError, match="not 'targeted'"):
        DeepFool(steps=2)(clf, x[:4], y[:4], target="random")


class Predict:
    """A label oracle's predict function that records whether it was called."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.calls = 0

    def __call__(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.module(x).argmax(1)


@pytest.mark.parametrize(
    "criterion",
    [
        Misclassification(1.0),
        ConfidenceReduction(0.5),
        TargetedMisclassification("least_likely"),
        TargetedMisclassification("random", kappa=0.5),
    ],
    ids=["kappa", "confidence", "least-likely", "targeted-kappa"],
)
def test_a_label_only_oracle_is_refused_a_criterion_that_needs_scores(
    digits: tuple[Classifier, Tensor, Tensor], criterion: Criterion
) -> None:
    clf, x, y = digits
    predict = Predict(clf.module)
    model = Oracle(predict, 10, (1, 8, 8), outputs="labels")
    with pytest.raises(InputError, match="needs scores, but the model returns labels only"):
        LabelSearch(eps=0.3)(model, x, y, criterion=criterion)
    assert predict.calls == 0
    # a score oracle of the same model can be judged
    scores = Oracle(lambda v: clf.module(v), 10, (1, 8, 8), outputs="scores")
    SimBA(1.0, max_queries=5)(scores, x, y, criterion=criterion)


def test_a_label_only_attack_is_refused_a_criterion_that_needs_scores(
    digits: tuple[Classifier, Tensor, Tensor],
) -> None:
    clf, x, y = digits
    for criterion in (Misclassification(1.0), ConfidenceReduction(0.5)):
        with pytest.raises(ThreatModelError, match="needs scores, but LabelSearch sees labels"):
            LabelSearch(eps=0.3)(clf, x, y, criterion=criterion)


def test_labels_alone_judge_misclassification(digits: tuple[Classifier, Tensor, Tensor]) -> None:
    clf, x, y = digits
    predict = Predict(clf.module)
    model = Oracle(predict, 10, (1, 8, 8), outputs="labels")
    result = LabelSearch(eps=0.4)(model, x, y)
    pred = logits_at(clf, result.x_adv).argmax(1)
    assert torch.equal(result.success, pred != y) and torch.equal(result.pred_adv, pred)
    assert bool(result.success.any())
    targeted = LabelSearch(eps=0.4, targeted=True)(model, x, y, target=(y + 1) % 10)
    assert torch.equal(targeted.success, logits_at(clf, targeted.x_adv).argmax(1) == (y + 1) % 10)


# ----------------------------------------------------------------------------- short forms
def test_random_targets_short_form(digits: tuple[Classifier, Tensor, Tensor]) -> None:
    clf, x, y = digits
    ids = torch.arange(100, 100 + len(x))
    result = FGSM(0.2, targeted=True)(clf, x, y, target="random", ids=ids)
    assert result.target is not None
    assert torch.equal(result.target, random_targets(y, 10, ids, 0))
    assert bool((result.target != y).all())
    assert torch.equal(result.success, result.pred_adv == result.target)
    assert result.criterion == "TargetedMisclassification(targets=random, kappa=0)"


def test_least_likely_targets_short_form(digits: tuple[Classifier, Tensor, Tensor]) -> None:
    clf, x, y = digits
    result = PGD(0.2, steps=5, targeted=True)(clf, x, y, target="least_likely")
    assert result.target is not None
    assert torch.equal(result.target, clf.predict_logits(x).argmin(1))
    assert torch.equal(result.success, result.pred_adv == result.target)


@pytest.mark.parametrize("kind", ["tensor", "numpy"])
def test_given_targets_short_form(digits: tuple[Classifier, Tensor, Tensor], kind: str) -> None:
    clf, x, y = digits
    t = (y + 4) % 10
    given: Tensor | np.ndarray = t if kind == "tensor" else t.numpy()
    result = FGSM(0.2, targeted=True)(clf, x, y, target=given)
    assert result.target is not None and torch.equal(result.target, t)
    assert torch.equal(result.success, result.pred_adv == t)
    criterion = FGSM(0.2)(clf, x, y, criterion=TargetedMisclassification(given))
    assert torch.equal(criterion.x_adv, result.x_adv)


def test_short_forms_are_checked(digits: tuple[Classifier, Tensor, Tensor]) -> None:
    clf, x, y = digits
    assert FGSM(0.1)(clf, x, y, target="random").criterion.startswith("TargetedMis")
    with pytest.raises(InputError, match="no target was given"):
        FGSM(0.1, targeted=True)(clf, x, y)
    with pytest.raises(InputError, match="either target or criterion"):
        FGSM(0.1, targeted=True)(clf, x, y, target="random", criterion=Misclassification())
    with pytest.raises(InputError, match="give a targeted criterion"):
        FGSM(0.1, targeted=True)(clf, x, y, criterion=Misclassification())
    with pytest.raises(InputError, match=r"must be a brittle\.criteria\.Criterion"):
        FGSM(0.1)(clf, x, y, criterion="misclassification")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown target 'most_likely'"):
        FGSM(0.1, targeted=True)(clf, x, y, target="most_likely")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="target equals the true label"):
        FGSM(0.1, targeted=True)(clf, x, y, target=y)
    with pytest.raises(InputError, match="the model has 10 classes"):
        FGSM(0.1, targeted=True)(clf, x, y, target=torch.full_like(y, 10))


def test_least_likely_targets_are_never_the_label() -> None:
    """A misclassified input whose label has the lowest clean score is aimed at the next
    least likely class, never at its label (that would reward a correct answer)."""
    lin = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(3))
    x = torch.tensor([[0.1, 0.5, 0.9], [0.9, 0.5, 0.1]])
    y = torch.tensor([0, 1])  # sample 0: its label has the lowest score
    res = FGSM(0.01, targeted=True)(Classifier(lin), x, y, "least_likely")
    assert res.target is not None and res.target.tolist() == [1, 2]
