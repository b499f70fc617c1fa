"""Declared attacks: each parameter is written once, as a typed field, and the constructor,
the ``Param`` list, ``config()`` and thus every run key come from it.

The described specs below were recorded from the attacks as they were before their parameters
became fields (commit 1c47b81, when each constructor, its ``Param`` list and its ``_configure``
call were written out by hand). A result store keys an attack by a hash of this description,
so it must never change for an existing attack: a store written before would no longer
resume.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import InitVar
from typing import Any, ClassVar

import pytest
from torch import Tensor

from brittle.attacks.base import AttackRun, FixedBudgetAttack
from brittle.attacks.params import (
    STEPS,
    NormArg,
    argument,
    budget,
    declared,
    norm_choice,
    param,
)
from brittle.attacks.registry import attack_class, attack_names, describe_attack, make_attack
from brittle.errors import InputError
from brittle.threat import Norm

DESCRIBED: dict[str, dict[str, Any]] = {
    "fgsm": {"name": "FGSM", "params": {"eps": 0.25, "norm": "linf", "targeted": False}},
    "bim": {
        "name": "BIM",
        "params": {"eps": 0.25, "steps": 10, "step_size": None, "norm": "linf", "targeted": False},
    },
    "pgd": {
        "name": "PGD",
        "params": {
            "eps": 0.25,
            "steps": 40,
            "step_size": None,
            "norm": "linf",
            "random_start": True,
            "restarts": 1,
            "loss": "ce",
            "early_stop": True,
            "targeted": False,
            "seed": 0,
        },
    },
    "apgd": {
        "name": "APGD",
        "params": {
            "eps": 0.25,
            "steps": 100,
            "norm": "linf",
            "restarts": 1,
            "loss": "ce",
            "rho": 0.75,
            "targeted": False,
            "seed": 0,
        },
    },
    "apgd-t": {
        "name": "APGDT",
        "params": {
            "eps": 0.25,
            "steps": 100,
            "norm": "linf",
            "restarts": 1,
            "n_target_classes": 9,
            "rho": 0.75,
            "seed": 0,
        },
    },
    "mifgsm": {
        "name": "MIFGSM",
        "params": {"eps": 0.25, "steps": 10, "step_size": None, "decay": 1.0, "targeted": False},
    },
    "lbfgs": {
        "name": "LBFGS",
        "params": {
            "targeted": True,
            "binary_steps": 10,
            "initial_const": 0.01,
            "max_iter": 100,
            "eps": None,
        },
    },
    "cw": {
        "name": "CarliniWagnerL2",
        "params": {
            "steps": 100,
            "binary_steps": 9,
            "confidence": 0.0,
            "lr": 0.1,
            "initial_const": 0.01,
            "targeted": False,
            "abort_early": True,
            "warm_start": True,
            "eps": None,
        },
    },
    "deepfool": {
        "name": "DeepFool",
        "params": {"norm": "l2", "steps": 50, "overshoot": 0.02, "candidates": 10, "eps": None},
    },
    "fab": {
        "name": "FAB",
        "params": {
            "norm": "linf",
            "steps": 100,
            "restarts": 1,
            "alpha_max": 0.1,
            "eta": 1.05,
            "beta": 0.9,
            "final_search": 3,
            "targeted": False,
            "seed": 0,
            "eps": None,
        },
    },
    "fab-t": {
        "name": "FABT",
        "params": {
            "norm": "linf",
            "steps": 100,
            "restarts": 1,
            "n_target_classes": 9,
            "alpha_max": 0.1,
            "eta": 1.05,
            "beta": 0.9,
            "final_search": 3,
            "seed": 0,
            "eps": None,
        },
    },
    "simba": {
        "name": "SimBA",
        "params": {
            "eps": 1.0,
            "norm": "l2",
            "basis": "pixel",
            "step_size": None,
            "max_queries": 10000,
            "targeted": False,
            "seed": 0,
        },
    },
    "square": {
        "name": "Square",
        "params": {
            "eps": 0.25,
            "norm": "linf",
            "max_queries": 5000,
            "p_init": 0.8,
            "targeted": False,
            "seed": 0,
        },
    },
    "jsma": {
        "name": "JSMA",
        "params": {
            "eps": 0.145,
            "theta": 1.0,
            "pairs": True,
            "use_logits": True,
            "score": "paper",
            "max_candidates": None,
            "targeted": False,
        },
    },
    "hopskipjump": {
        "name": "HopSkipJump",
        "params": {
            "norm": "l2",
            "eps": None,
            "max_queries": 10000,
            "steps": 64,
            "init_evals": 100,
            "max_evals": 10000,
            "gamma": 1.0,
            "init_trials": 100,
            "targeted": False,
            "seed": 0,
        },
    },
    "rays": {
        "name": "RayS",
        "params": {
            "norm": "linf",
            "eps": None,
            "max_queries": 10000,
            "tolerance": None,
            "targeted": False,
            "seed": 0,
        },
    },
    "substitute": {
        "name": "Substitute",
        "params": {
            "eps": 0.25,
            "norm": "linf",
            "data": "digits",
            "split": "train",
            "seed_size": None,
            "labels": "oracle",
            "architecture": "mlp",
            "rounds": 6,
            "lam": 0.1,
            "tau": 3,
            "kappa": None,
            "sigma": 3,
            "epochs": 10,
            "lr": 0.001,
            "crafter": "fgsm",
            "targeted": False,
            "seed": 0,
        },
    },
}

"""``describe_attack(make_attack(name))`` of every registered attack (SimBA: with eps=1; the
substitute: with the data it trains on, which it needs)."""
NEEDS: dict[str, dict[str, Any]] = {"simba": {"eps": 1.0}, "substitute": {"data": "digits"}}
"""What an attack cannot be built without, given to every ``make_attack`` below."""

KEYS: dict[str, tuple[str, str, str | None]] = {
    "fgsm": ("cef1c9ae8182b5ff", "4fa439df604fe03e", "2a5e02a0a8a2a2b9"),
    "bim": ("057457487fd5882e", "d3ca45f0900cc4e6", "1adb00d9533bdd84"),
    "pgd": ("2b5b0c0c1a602f88", "5edd1dacf6bd9a10", "4f75ebb07ab386c7"),
    "apgd": ("ccd5b625bfd8a3d8", "25eff2a8d7366298", "82368c04cea803aa"),
    "apgd-t": ("cecc9bb1c62e2f71", "f007a42b1a7a7949", "8238998012b56be0"),
    "mifgsm": ("83481cd07bd2850e", "43bc2ed1da5442ad", "2aa599011e8d42e9"),
    "lbfgs": ("f0d997f2c8ea8352", "1d26f93c34e4505b", None),
    "cw": ("c1c4dce6ea9aa2d0", "4e4a70ee3b0df086", None),
    "deepfool": ("784afffe86ac3ac1", "eb0b3c634dd45611", None),
    "fab": ("49b5d00657413306", "03bc4c1bfcb9346f", None),
    "fab-t": ("a41777a7dceb01ff", "741e390030c5ccec", None),
    "simba": ("c97e289605a26c7a", "d9e0e1c9eda66e16", "20feca5419745ee1"),
    "square": ("bb6d54f3cb285ea0", "e3e14e9286c6fdc9", "6e731b31a1e288e2"),
    "jsma": ("5ec2b4a0bd83412a", "0d081023d4968222", "c44902d8d1e49b7d"),
    "hopskipjump": ("7d8360acecf91378", "1202535421895925", None),
    "rays": ("2b66cbd05d4fa956", "1f0807f873dd142a", None),
    "substitute": ("6ff57469f7a84149", "b475c291f2921b0b", "e9a73d43151666e7"),
}
"""Per attack, the sha256 prefix (as the store's run key) of the canonical JSON of its
description: with its defaults; with eps=0.2 (JSMA 0.1) and seed=5; wrapped in Minimize at
eps=0.3 with tolerance=0.01 (``None``: a minimal attack, which Minimize does not wrap)."""


def key(spec: dict[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_every_registered_attack_is_pinned() -> None:
    assert set(DESCRIBED) == set(KEYS) == set(attack_names())


@pytest.mark.parametrize("name", attack_names())
def test_the_described_spec_is_the_one_recorded_before(name: str) -> None:
    spec = describe_attack(make_attack(name, **NEEDS.get(name, {})))
    assert spec == DESCRIBED[name]
    assert list(spec["params"]) == list(DESCRIBED[name]["params"])  # the order too
    default, seeded, wrapped = KEYS[name]
    assert key(spec) == default
    extra = {k: v for k, v in NEEDS.get(name, {}).items() if k != "eps"}
    eps = 0.1 if name == "jsma" else 0.2
    assert key(describe_attack(make_attack(name, seed=5, eps=eps, **extra))) == seeded
    if wrapped is not None:
        spec = describe_attack(make_attack(name, minimize=True, eps=0.3, tolerance=0.01, **extra))
        assert key(spec) == wrapped


@pytest.mark.parametrize("name", attack_names())
def test_the_constructor_takes_the_declared_parameters_in_order(name: str) -> None:
    cls = attack_class(name)
    signature = inspect.signature(cls)
    positional = [
        p.name for p in signature.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    assert positional == [p.name for p in cls.params]
    for p in cls.params:
        argument_ = signature.parameters[p.name]
        if argument_.default is not inspect.Parameter.empty:
            assert argument_.default == p.default, p.name
        else:
            assert p.name == "eps" and issubclass(cls, FixedBudgetAttack)


def test_a_declared_attack_of_ones_own() -> None:
    """An attack of one's own: parameters declared once, as fields."""

    @declared
    class Nudge(FixedBudgetAttack):
        """Moves every feature by eps towards the larger loss, ``repeats`` times."""

        eps: float = budget()
        repeats: int = param(default=1, help="Times the step is taken.", low=1)
        norm: NormArg = norm_choice("linf", ("linf",))
        mode: str = param(default="sign", help="Step kind.", choices=("sign", "raw"))
        scale: float | None = param(default=None, help="Optional scale.", low=0.0)
        limit: ClassVar[int] = 3

        def _run(self, run: AttackRun) -> Tensor:
            return run.x

    attack = Nudge(0.1, 2, mode="RAW")
    assert attack.config() == {
        "eps": 0.1,
        "repeats": 2,
        "norm": "linf",
        "mode": "raw",
        "scale": None,
    }
    assert attack.norm is Norm.LINF and Nudge.limit == 3
    assert [p.name for p in Nudge.params] == ["eps", "repeats", "norm", "mode", "scale"]
    kinds = {p.name: (p.kind, p.optional, p.choices) for p in Nudge.params}
    assert kinds["repeats"] == (int, False, None)
    assert kinds["norm"] == (str, False, ("linf",))
    assert kinds["scale"] == (float, True, None)
    with pytest.raises(InputError, match="Nudge: repeats must be an integer >= 1, got 0"):
        Nudge(0.1, repeats=0)
    with pytest.raises(TypeError, match="missing a required argument: 'eps'"):
        Nudge()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'steps'"):
        Nudge(0.1, steps=3)  # type: ignore[call-arg]


def test_init_only_arguments_and_checks_across_parameters() -> None:
    @declared
    class Scaled(FixedBudgetAttack):
        eps: float = budget()
        steps: int = STEPS
        percent: InitVar[float | None] = argument(default=None, kw_only=True)

        def _configure(self, *, percent: float | None = None, **values: Any) -> None:
            if percent is not None:
                values["eps"] = percent / 100
            super()._configure(**values)
            if self.steps > 5 and self.eps > 0.5:
                raise InputError("Scaled: at most 5 steps above eps 0.5")

        def _run(self, run: AttackRun) -> Tensor:
            return run.x

    assert Scaled(0.3, percent=20).eps == 0.2
    assert [p.name for p in Scaled.params] == ["eps", "steps"]
    assert "percent" not in Scaled(0.1).config()
    with pytest.raises(TypeError, match="positional"):
        Scaled(0.1, 2, 30)  # type: ignore[misc]
    with pytest.raises(InputError, match="at most 5 steps"):
        Scaled(0.6, steps=6)


def test_a_declared_field_of_a_declared_base_comes_first() -> None:
    @declared
    class Base(FixedBudgetAttack):
        eps: float = budget()
        steps: int = STEPS

        def _run(self, run: AttackRun) -> Tensor:
            return run.x

    @declared
    class Child(Base):
        steps: int = param(default=3, help="Fewer iterations.", low=1)
        extra: bool = param(default=False, help="Something more.")

    assert [p.name for p in Child.params] == ["eps", "steps", "extra"]
    assert Child(0.1).steps == 3 and Base(0.1).steps == 10


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"eps": (float, budget()), "steps": (int, 10)}, "steps: declare the parameter"),
        ({"eps": (float, budget()), "when": (list, param(default=None, help="."))}, "when: a "),
        ({"steps": (int, param(default=0, help=".", low=1))}, "steps: its default is out"),
        ({"steps": (int, param(default=1, help=".")), "eps": (float, budget())}, "default"),
        (
            {"loss": (str, param(default="a", help=".", choices=("a",))), "other": (int, None)},
            "other: declare",
        ),
    ],
)
def test_a_mistaken_declaration_is_refused_when_the_class_is_made(
    body: dict[str, tuple[Any, Any]], message: str
) -> None:
    namespace: dict[str, Any] = {"__annotations__": {k: t for k, (t, _) in body.items()}}
    namespace.update({k: v for k, (_, v) in body.items() if v is not None})
    cls = type("Broken", (FixedBudgetAttack,), namespace)
    with pytest.raises(TypeError, match=message):
        declared(cls)


def test_a_declared_attack_writes_no_constructor_of_its_own() -> None:
    class Written(FixedBudgetAttack):
        eps: float = budget()

        def __init__(self, eps: float) -> None:
            self._configure(eps=eps)

    with pytest.raises(TypeError, match="gets its constructor from its fields"):
        declared(Written)
