"""Attacks by name: lazy lookup, parameter filtering, clear errors, Minimize wrapping."""

from __future__ import annotations

import json

import pytest

from brittle.attacks.base import Attack, MinimizationAttack
from brittle.attacks.fgsm import FGSM
from brittle.attacks.registry import (
    DEFAULT_EPS,
    attack_class,
    attack_names,
    describe_attack,
    make_attack,
)
from brittle.errors import InputError


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(InputError) as err:
        make_attack("fsgm")
    for name in attack_names():
        assert name in str(err.value)


def test_unset_parameters_take_the_attack_defaults() -> None:
    attack = make_attack("FGSM", eps=None, steps=None, norm=None)
    assert isinstance(attack, FGSM)
    assert attack.eps == DEFAULT_EPS and attack.norm.value == "linf"
    assert make_attack("fgsm", eps=0.1, norm="l2").norm.value == "l2"


def test_a_parameter_the_attack_does_not_take_is_named() -> None:
    with pytest.raises(InputError, match="does not take steps"):
        make_attack("fgsm", eps=0.1, steps=10)


def test_seed_goes_only_to_attacks_that_take_it() -> None:
    assert make_attack("fgsm", eps=0.1, seed=3).eps == 0.1
    assert make_attack("pgd", eps=0.1, seed=3).seed == 3


def test_every_registered_name_resolves_to_an_attack_class() -> None:
    for name in attack_names():
        cls = attack_class(name)
        assert issubclass(cls, Attack)


def test_minimize_wraps_a_fixed_budget_attack() -> None:
    attack = make_attack("fgsm", eps=0.3, minimize=True, tolerance=0.01)
    assert isinstance(attack, MinimizationAttack) and attack.eps == 0.3
    with pytest.raises(InputError, match="already finds minimal"):
        make_attack("deepfool", minimize=True)


def test_description_is_json_ready() -> None:
    info = describe_attack(make_attack("pgd", eps=0.2, steps=5, minimize=True))
    text = json.dumps(info)
    assert info["name"] == "Minimize" and "PGD" in text and '"steps": 5' in text


def test_an_attack_with_a_declared_default_budget_keeps_it() -> None:
    """JSMA declares Upsilon = 14.5% (Papernot 2016): the Linf default must not replace it."""
    assert make_attack("jsma").eps == 0.145
    assert make_attack("fgsm").eps == DEFAULT_EPS
