"""The sanity checks that query the model: each passes on an honest model and attack, and
warns, with its numbers, on a model or attack built to fail it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks.fgsm import FGSM
from brittle.attacks.iterative import PGD
from brittle.checks.probes import (
    NOISE_DRAWS,
    Probe,
    black_box_check,
    gradient_check,
    noise_check,
    probe_checks,
    randomness_check,
    single_step_check,
    unbounded_check,
)
from brittle.eval import ResultStore, evaluate
from brittle.eval.runner import Evaluation, single_plan
from brittle.eval.spec import AttackSpec
from brittle.eval.suite import suite_attacks
from brittle.threat import Capability, Goal, Norm

pytestmark = pytest.mark.usefixtures("one_thread")

N = 40


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4))


class Noisy(nn.Module):
    """Adds fresh noise to the logits at every call: a randomised model."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out + 0.5 * torch.randn_like(out)


class Quantised(nn.Module):
    """Rounds its inputs to 4 levels first: the input gradient is exactly zero."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(torch.round(x * 3) / 3)
        return out


def _data(module: nn.Module) -> tuple[Classifier, Tensor, Tensor]:
    x = torch.rand(N, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    classifier = Classifier(module)
    return classifier, x, classifier.predict(x)


def _evaluate(
    data: tuple[Classifier, Tensor, Tensor], plans: list[AttackSpec], eps: list[float], path: Path
) -> Evaluation:
    classifier, x, y = data
    with ResultStore(path) as store:
        return evaluate(
            classifier, plans, (x, y), eps, batch_size=16, store=store, run_key="r", progress=False
        )


def _probe(data: tuple[Classifier, Tensor, Tensor], plans: list[AttackSpec]) -> Probe:
    classifier, x, y = data
    return Probe(classifier, x, y, torch.arange(len(x)), plans, Goal.UNTARGETED, Norm.LINF, 0, 16)


def test_an_honest_evaluation_passes_every_check(tmp_path: Path) -> None:
    data = _data(_net())
    plans = [single_plan(lambda e: PGD(e, steps=20), 0.1)]
    evaluation = _evaluate(data, plans, [0.05, 0.2], tmp_path / "s.sqlite")
    classifier, x, y = data
    checks = probe_checks(
        classifier, evaluation, plans, x, y, torch.arange(N), goal=Goal.UNTARGETED
    )
    status = {c.name: c.status for c in checks}
    assert status == {
        "single_step": "passed",
        "unbounded": "passed",
        "noise": "passed",
        "gradients": "passed",
        "deterministic": "passed",
        "black_box": "not run",  # no gradient-free attack in the evaluation
    }
    noise = next(c for c in checks if c.name == "noise")
    assert noise.numbers["draws"] == NOISE_DRAWS and noise.numbers["n"] == N


def test_a_crippled_iterative_attack_loses_to_fgsm_and_to_noise(tmp_path: Path) -> None:
    data = _data(_net())
    # one step of 1e-6 from the clean input: it never moves, as a masked gradient would make it
    crippled = [single_plan(lambda e: PGD(e, steps=1, step_size=1e-6, random_start=False), 0.1)]
    evaluation = _evaluate(data, crippled, [0.3, 0.6], tmp_path / "s.sqlite")
    probe = _probe(data, crippled)
    single = single_step_check(probe, evaluation)
    assert single.warned and single.numbers["robust_fgsm"][-1] < single.numbers["robust"][-1]
    noise = noise_check(probe, evaluation)
    assert noise.warned and noise.numbers["robust_noise"] < noise.numbers["robust"]
    assert noise.numbers["broken_by_noise_only"] > 0
    unbounded = unbounded_check(probe)
    assert unbounded.warned and unbounded.numbers["succeeded"] < unbounded.numbers["correct"]


def test_at_the_box_diameter_later_attacks_finish_what_fgsm_leaves(tmp_path: Path) -> None:
    data = _data(_net())
    plans = [single_plan(FGSM, 0.1), single_plan(lambda e: PGD(e, steps=20), 0.1)]
    alone = unbounded_check(_probe(data, plans[:1]))
    both = unbounded_check(_probe(data, plans))
    assert both.status == "passed" and both.numbers["succeeded"] == both.numbers["correct"]
    first = both.numbers["succeeded_first_by"]
    assert first[plans[0].label] == alone.numbers["succeeded"]
    assert sum(first.values()) == both.numbers["correct"]


def test_a_randomised_model_is_flagged() -> None:
    classifier, x, y = _data(Noisy(_net()))
    check = randomness_check(_probe((classifier, x, y), []))
    assert check.warned and check.numbers["outputs_changed"] == N
    assert "EOT" in check.message


def test_a_masked_gradient_is_flagged_by_the_gradient_and_black_box_checks(tmp_path: Path) -> None:
    data = _data(Quantised(_net()))
    plans = suite_attacks("standard", "linf", Capability.WHITE_BOX)
    evaluation = _evaluate(data, plans, [0.3], tmp_path / "s.sqlite")
    gradients = gradient_check(_probe(data, plans))
    assert gradients.warned and gradients.numbers["vanished"] == gradients.numbers["correct"]
    black = black_box_check(evaluation, plans)
    assert black.warned and black.numbers["broken_by_weaker_only"][0] > 0
    assert black.numbers["weaker"] == [plans[-1].label]  # the score-based stage
    assert black.numbers["capability"] == "white_box"


def test_non_finite_gradients_are_flagged() -> None:
    class Sqrt(nn.Module):
        def forward(self, x: Tensor) -> Tensor:  # d sqrt(x) / dx is inf at x = 0
            return torch.stack([x.flatten(1).sqrt().sum(1), -x.flatten(1).sqrt().sum(1)], 1)

    classifier = Classifier(Sqrt())
    x = torch.zeros(4, 1, 2, 2)
    check = gradient_check(_probe((classifier, x, classifier.predict(x)), []))
    assert check.warned and "NaN or inf" in check.message
