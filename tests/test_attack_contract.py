"""Every registered attack keeps the attack contract (brittle.testing.check_attack) on the
tiny model: budget and box, the model's verdict, counted queries and gradients, capability,
module state, per-sample randomness at batch sizes 1, 7 and 64, and a batch of 0."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from brittle import Capability, Classifier
from brittle.attacks import FGSM, JSMA, Minimize
from brittle.attacks.base import AttackRun, FixedBudgetAttack
from brittle.attacks.params import NormArg, budget, declared, norm_choice, param
from brittle.attacks.registry import attack_class, attack_names
from brittle.testing import check_attack, tiny_problem


def tiny_samples() -> tuple[Tensor, Tensor]:
    """Input/label pairs of the tiny model: what a SAMPLES adversary holds."""
    model, x, _ = tiny_problem()
    return x, model.predict(x)


QUICK: dict[str, dict[str, Any]] = {
    "fgsm": {"eps": 0.1},
    "bim": {"eps": 0.1, "steps": 3},
    "pgd": {"eps": 0.1, "steps": 3, "restarts": 2},
    "apgd": {"eps": 0.1, "steps": 4},
    "apgd-t": {"eps": 0.1, "steps": 4, "n_target_classes": 2},
    "mifgsm": {"eps": 0.1, "steps": 3},
    "lbfgs": {"binary_steps": 2, "max_iter": 4},
    "cw": {"steps": 5, "binary_steps": 2},
    "deepfool": {"steps": 4, "candidates": 3},
    "fab": {"steps": 4, "restarts": 2},
    "fab-t": {"steps": 4, "n_target_classes": 2, "eps": 0.3},
    "simba": {"eps": 0.3, "max_queries": 30},
    "square": {"eps": 0.1, "max_queries": 30},
    "jsma": {"eps": 0.2},
    "hopskipjump": {"max_queries": 60, "steps": 2, "init_evals": 8},
    "rays": {"max_queries": 40},
    # input/label pairs of the tiny model alone (SAMPLES): no query but the base's re-check
    "substitute": {"eps": 0.3, "seed_set": tiny_samples(), "labels": "given", "rounds": 0},
}
"""Constructor arguments that keep each registered attack quick on the tiny model (LBFGS keeps
its default, targeted, so the targeted path is checked too)."""


def test_every_registered_attack_has_quick_arguments() -> None:
    assert set(QUICK) == set(attack_names())


@pytest.mark.parametrize("name", attack_names())
def test_every_registered_attack_keeps_the_contract(name: str) -> None:
    check_attack(attack_class(name), **QUICK[name])


def test_the_bisection_keeps_the_contract() -> None:
    check_attack(Minimize, attack=FGSM(0.4), tolerance=0.05)


def test_the_contract_on_a_classifier_of_ones_own() -> None:
    clf, x, y = tiny_problem()
    check_attack(FGSM, classifier=clf, samples=(x[:10], y[:10]), eps=0.2)


@declared
class RandomCorners(FixedBudgetAttack):
    """The example of docs/attacks/writing.md: tries random corners of the Linf ball; keeps
    the first that meets the goal."""

    capability = Capability.ORACLE_LABELS  # it needs the model's decisions only
    eps: float = budget()
    tries: int = param(default=10, help="Corners tried per sample.", low=1)
    norm: NormArg = norm_choice("linf", ("linf",))

    def _run(self, run: AttackRun) -> Tensor:
        best, todo = run.x.clone(), torch.arange(len(run.x), device=run.x.device)
        d = run.x[0].numel()
        for k in range(self.tries):  # each sample draws from its own stream: (seed, id, k)
            signs = run.random(k, lambda g: torch.randint(0, 2, (d,), generator=g), todo)
            step = (2 * signs - 1).to(run.x.dtype).view_as(run.x[todo]) * run.eps_view(todo)
            candidate = run.access.clip(run.x[todo] + step)
            met = run.goal_met(run.outputs(candidate, todo), todo)
            best[todo[met]] = candidate[met]
            todo = todo[~met]
        return best


def test_the_readme_example_keeps_the_contract() -> None:
    check_attack(RandomCorners, eps=0.1, tries=3)
    assert [p.name for p in RandomCorners.params] == ["eps", "tries", "norm"]


# ------------------------------------------------------------------ attacks that break it
class OverBudget(FixedBudgetAttack):
    """Steps past its budget, and checks nothing itself: the base's projection must catch it,
    so the contract holds."""

    def _run(self, run: AttackRun) -> Tensor:
        return run.x + 10 * run.eps_view()


class Uncounted(FixedBudgetAttack):
    """Runs the model behind the access layer's back."""

    def _run(self, run: AttackRun) -> Tensor:
        assert run._model is not None
        run._model.predict_scores(run.x)
        return run.x


class Batchwise(FixedBudgetAttack):
    """Draws its noise from the global generator: a sample's result depends on its batch."""

    def _run(self, run: AttackRun) -> Tensor:
        return run.x + run.eps_view() * (torch.rand_like(run.x) - 0.5).sign()


class Tampering(FixedBudgetAttack):
    """Changes a weight of the model it attacks."""

    def _run(self, run: AttackRun) -> Tensor:
        assert isinstance(run._model, Classifier)
        with torch.no_grad():
            next(run._model.module.parameters()).add_(1e-3)
        return run.x


class Sneaky(FixedBudgetAttack):
    """Declares that it needs scores only, then asks for a gradient."""

    capability = Capability.ORACLE_SCORES

    def _run(self, run: AttackRun) -> Tensor:
        grad, _ = run.loss_gradient(run.x)
        return run.x + run.eps_view() * grad.sign()


class Gradient(FixedBudgetAttack):
    """Needs gradients; refused on oracles, so the capability property holds."""

    def _run(self, run: AttackRun) -> Tensor:
        grad, _ = run.loss_gradient(run.x)
        return run.x + run.eps_view() * grad.sign()


def test_the_base_keeps_an_attack_inside_its_budget() -> None:
    check_attack(OverBudget, eps=0.1)
    check_attack(Gradient, eps=0.1)


@pytest.mark.parametrize(
    ("cls", "broken"),
    [
        (Uncounted, r"Uncounted breaks the attack contract \(counted queries\): the model saw"),
        (Batchwise, r"\(per-sample randomness\): the same sample ids give other x_adv"),
        (Tampering, r"\(module state\): the model's parameters and buffers changed"),
        (Sneaky, r"Sneaky breaks the attack contract \(capability\): .*declares capability"),
    ],
)
def test_a_broken_property_is_named(cls: type[FixedBudgetAttack], broken: str) -> None:
    with pytest.raises(AssertionError, match=broken):
        check_attack(cls, eps=0.1)


def test_jsma_on_a_batch_of_0() -> None:
    """Issue 23: JSMA()(clf, x[:0], y[:0]) raised IndexError (the L0 projection of no rows)."""
    clf, x, y = tiny_problem()
    result = JSMA()(clf, x[:0], y[:0])
    assert len(result) == 0 and result.x_adv.shape == (0, *x.shape[1:])
    assert int(result.queries.sum()) == 0
