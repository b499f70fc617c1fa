"""Declared parameters: every bad value of every parameter of every registered attack is an
InputError that names it, the defaults build, and ``config()`` is exactly the declaration."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from brittle.attacks import FGSM, CarliniWagnerL2, DeepFool, Minimize
from brittle.attacks.base import Attack, FixedBudgetAttack
from brittle.attacks.params import Param
from brittle.attacks.registry import attack_class, make_attack
from brittle.errors import InputError, ThreatModelError
from brittle.threat import Norm
from foundation import names


def required(cls: type[Attack]) -> dict[str, Any]:
    """What an attack needs to be built: a budget for a fixed-budget attack, and the data a
    substitute trains on."""
    needed: dict[str, Any] = {"eps": 0.1} if issubclass(cls, FixedBudgetAttack) else {}
    if "data" in {p.name for p in cls.params}:
        needed["data"] = "digits"
    return needed


def bad_values(p: Param) -> list[Any]:
    """Values the declaration ``p`` refuses: wrong types, out of range, NaN, infinities."""
    if p.kind is bool:
        out: list[Any] = [1, 0, 1.0, "true", np.float64(1.0)]
    elif p.kind is str:
        out = [1, 2.5, True, "no-such-" + p.name]
    else:
        out = ["1", b"1", True, False, [1], math.nan, math.inf, -math.inf]
        if p.kind is int and p.default is not None:
            out += [2.5, 3.0, np.float64(2.0)]
        if p.low is not None:
            out += [p.low - 1, p.low - 1e-3]
            if p.low_open:
                out.append(p.low)
        if p.high is not None:
            out.append(p.high + 1)
    if not p.optional:
        out.append(None)
    return out


PARAMS = [
    (name, p, value)
    for name in names()
    for p in attack_class(name).params
    for value in bad_values(p)
]


@pytest.mark.parametrize(
    ("name", "param", "value"),
    PARAMS,
    ids=[f"{name}-{p.name}-{value!r}" for name, p, value in PARAMS],
)
def test_a_bad_value_is_refused_naming_the_parameter(name: str, param: Param, value: Any) -> None:
    cls = attack_class(name)
    with pytest.raises(InputError) as err:
        cls(**{**required(cls), param.name: value})
    assert param.name in str(err.value) and cls.__name__ in str(err.value)


@pytest.mark.parametrize("cls", [CarliniWagnerL2, DeepFool])
def test_steps_must_be_integers(cls: type[CarliniWagnerL2 | DeepFool]) -> None:
    with pytest.raises(InputError, match=f"{cls.__name__}: steps must be an integer >= 1, got 2.5"):
        cls(steps=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", names())
def test_the_defaults_build_and_config_is_the_declaration(name: str) -> None:
    cls = attack_class(name)
    attack = cls(**required(cls))
    config = attack.config()
    assert list(config) == [p.name for p in cls.params]
    for p in cls.params:
        expected = required(cls).get(p.name, p.default)
        assert config[p.name] == expected, p.name
    assert json.loads(json.dumps(config)) == config
    # the config rebuilds the same attack
    assert cls(**config).config() == config
    text = repr(attack)
    assert text.startswith(f"{cls.__name__}(")
    for key, value in config.items():
        assert f"{key}={value!r}" in text


@pytest.mark.parametrize("name", names())
def test_accepted_values_are_converted_to_their_declared_kind(name: str) -> None:
    cls = attack_class(name)
    declared = {p.name: p for p in cls.params}
    values: dict[str, Any] = {}
    for p in cls.params:  # the defaults as numpy numbers (what an array's max() gives)
        if p.kind is int and p.default is not None:
            values[p.name] = np.int64(p.default)
        elif p.kind is float and p.default is not None:
            values[p.name] = np.float32(p.default)
    config = cls(**{**required(cls), **values}).config()
    for key, value in values.items():
        assert type(config[key]) is declared[key].kind
        assert config[key] == pytest.approx(float(value))
    json.dumps(config)


def test_norms_are_parsed_refused_or_out_of_the_threat() -> None:
    assert FGSM(0.1, norm="Inf").norm is Norm.LINF
    assert FGSM(0.1, norm=Norm.L2).config()["norm"] == "l2"
    for bad in (2, 2.5, None, "l3"):
        with pytest.raises(InputError, match="FGSM: norm must be one of linf, l2, l1"):
            FGSM(0.1, norm=bad)  # type: ignore[arg-type]
    with pytest.raises(ThreatModelError, match=r"FGSM works in norms \{l1, l2, linf\}, not 'l0'"):
        FGSM(0.1, norm="l0")


def test_the_registry_refuses_bad_values_too() -> None:
    with pytest.raises(InputError, match="steps"):
        make_attack("pgd", eps=0.1, steps=2.5)
    with pytest.raises(InputError, match="restarts"):
        make_attack("pgd", eps=0.1, restarts=0)
    with pytest.raises(InputError, match="max_queries"):
        make_attack("simba", eps=1.0, max_queries=math.inf)


@pytest.mark.parametrize(
    ("key", "value"),
    [("low", -1.0), ("tolerance", 0.0), ("max_steps", 2.5), ("high", math.nan), ("low", "0")],
)
def test_the_bisection_checks_its_parameters(key: str, value: Any) -> None:
    with pytest.raises(InputError, match=key):
        Minimize(FGSM(0.3), **{key: value})


def test_the_bisection_config_holds_the_wrapped_attack() -> None:
    attack = Minimize(FGSM(0.3, norm="l2"), tolerance=0.01)
    config = attack.config()
    assert config["attack"] == "FGSM" and config["attack_params"] == FGSM(0.3, "l2").config()
    assert {p.name for p in Minimize.params} <= set(config)
    json.dumps(config)
