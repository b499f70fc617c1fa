"""Defences by name: one registration each declares the options it uses and its builder; the
checks, the objective and the command line's options all come from it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from torch import nn

from brittle.cli.options import add_defense, training_request
from brittle.defenses import (
    AttackTraining,
    DefenseOptions,
    EnsembleTraining,
    FGSMTraining,
    NoiseTraining,
    PGDTraining,
    TemperatureCrossEntropy,
    build_objective,
    registry,
)
from brittle.defenses.registry import (
    ALPHA,
    EPS,
    STEPS,
    Defense,
    Uses,
    defense_names,
    defense_options,
    option_help,
    register,
)
from brittle.errors import InputError


def test_the_built_in_defences_in_their_order() -> None:
    assert defense_names() == [
        "fgsm",
        "pgd",
        "ensemble",
        "distill",
        "noise-sign",
        "noise-uniform",
        "jsma",
        "gaussian",
        "ibp",
    ]
    assert [o.flag for o in defense_options()] == [
        "--eps",
        "--alpha",
        "--steps",
        "--step-size",
        "--static",
        "--temperature",
        "--teacher",
        "--sigma",
    ]


@pytest.mark.parametrize(
    ("options", "kind", "expected"),
    [
        (DefenseOptions("fgsm"), FGSMTraining, {"eps": 0.25, "alpha": 0.5}),
        (
            DefenseOptions("pgd"),
            PGDTraining,
            {"eps": 0.3, "alpha": 0.0, "steps": 7, "step_size": 2.5 * 0.3 / 7},
        ),
        (
            DefenseOptions("pgd", eps=0.1, alpha=0.2, steps=3, step_size=0.05),
            PGDTraining,
            {"eps": 0.1, "alpha": 0.2, "steps": 3, "step_size": 0.05},
        ),
        (DefenseOptions("noise-sign"), NoiseTraining, {"eps": 0.25, "alpha": 0.5}),
        (DefenseOptions("noise-uniform", eps=0.1), NoiseTraining, {"eps": 0.1, "alpha": 0.5}),
        (DefenseOptions("distill", temperature=20.0), TemperatureCrossEntropy, {"temperature": 20}),
        (DefenseOptions("jsma"), AttackTraining, {"alpha": 0.5}),
    ],
)
def test_the_registered_defaults_and_the_given_values_reach_the_objective(
    options: DefenseOptions, kind: type, expected: dict[str, float]
) -> None:
    objective = build_objective(options)
    assert isinstance(objective, kind)
    assert {k: getattr(objective, k) for k in expected} == pytest.approx(expected)
    if isinstance(objective, AttackTraining):  # its budget is its attack's: JSMA's Upsilon
        assert objective.attack.eps == 0.145 and objective.name == "jsma"
    if isinstance(objective, NoiseTraining):
        assert objective.kind == options.name.removeprefix("noise-")


def test_the_ensemble_gets_its_static_models() -> None:
    static = [nn.Sequential(nn.Flatten(), nn.Linear(4, 2))]
    objective = build_objective(DefenseOptions("ensemble", static=("a.pt",)), static)
    assert isinstance(objective, EnsembleTraining) and objective.eps == 0.25
    with pytest.raises(InputError, match="--defense ensemble needs --static with the pre"):
        build_objective(DefenseOptions("ensemble", static=[]))


def test_the_help_of_each_option_says_who_uses_it_with_which_default() -> None:
    helps = {o.name: option_help(o) for o in defense_options()}
    assert (
        helps["eps"]
        == "Budget of the training perturbation (default: 0.25; pgd 0.3, jsma 0.145, ibp 0.1)."
    )
    assert helps["alpha"] == (
        "Weight of the clean loss, in [0, 1] (default: 0.5; pgd 0, gaussian 0)."
    )
    assert helps["steps"] == "PGD steps (pgd; default: 7)."
    assert helps["step_size"] == "PGD step (pgd; default: 2.5 * eps / steps)."
    assert helps["temperature"] == "Softmax temperature (distill; the paper: 100)."
    assert helps["static"] == (
        "Pre-trained models that craft part of each batch's examples (ensemble)."
    )


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(Defense("fgsm", (), lambda values, static, bounds: FGSMTraining(0.1)))


@pytest.fixture
def own_defense(monkeypatch: pytest.MonkeyPatch) -> None:
    """A defence of one's own, registered for one test: FGSM at half the given step count's
    budget, taking --eps, --alpha and --steps."""
    monkeypatch.setattr(registry, "_DEFENSES", dict(registry._DEFENSES))

    def build(
        values: Mapping[str, Any], static: Sequence[nn.Module], bounds: tuple[float, float]
    ) -> FGSMTraining:
        return FGSMTraining(values["eps"] / values["steps"], values["alpha"], bounds)

    register(Defense("halved", (Uses(EPS, 0.2), Uses(ALPHA, 0.5), Uses(STEPS, 2)), build))


@pytest.mark.usefixtures("own_defense")
def test_one_registration_makes_a_new_defence_everywhere() -> None:
    objective = build_objective(DefenseOptions("halved", steps=4))
    assert isinstance(objective, FGSMTraining) and objective.eps == pytest.approx(0.05)
    with pytest.raises(InputError, match="--temperature does not apply to --defense halved"):
        build_objective(DefenseOptions("halved", temperature=3.0))
    with pytest.raises(InputError, match="--steps must be an integer >= 1"):
        build_objective(DefenseOptions("halved", steps=0))
    assert option_help(STEPS) == "PGD steps (default: 7; halved 2)."
    parser = argparse.ArgumentParser()
    add_defense(parser)
    for name in ("out", "arch", "dataset", "data_dir", "epochs", "batch_size", "lr"):
        parser.add_argument(f"--{name}")
    for name in ("optimizer", "weight_decay", "l1", "n_train"):
        parser.add_argument(f"--{name}")
    args = parser.parse_args(["--defense", "halved", "--steps", "5"])
    request = training_request(args)
    assert request["defense"] == DefenseOptions("halved", steps=5)


def test_an_unknown_defence_lists_the_registered_ones() -> None:
    with pytest.raises(InputError, match="unknown defence 'shield': use one of fgsm, pgd"):
        build_objective(DefenseOptions("shield"))
