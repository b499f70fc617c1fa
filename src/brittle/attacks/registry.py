"""Attacks by name, for the command line and for configuration files.

Each name maps to an import path, imported only when the attack is built, so that listing
the names costs nothing and an attack family that fails to import breaks only itself.
"""

from __future__ import annotations

import importlib
from typing import Any

from brittle.errors import InputError
from brittle.threat import Norm

from .base import Attack, FixedBudgetAttack, MinimizationAttack
from .params import Param

_PATHS: dict[str, str] = {
    "fgsm": "brittle.attacks.fgsm:FGSM",
    "bim": "brittle.attacks.iterative:BIM",
    "pgd": "brittle.attacks.iterative:PGD",
    "apgd": "brittle.attacks.apgd:APGD",
    "apgd-t": "brittle.attacks.apgd:APGDT",
    "mifgsm": "brittle.attacks.mifgsm:MIFGSM",
    "lbfgs": "brittle.attacks.lbfgs:LBFGS",
    "cw": "brittle.attacks.cw:CarliniWagnerL2",
    "deepfool": "brittle.attacks.deepfool:DeepFool",
    "fab": "brittle.attacks.fab:FAB",
    "fab-t": "brittle.attacks.fab:FABT",
    "simba": "brittle.attacks.simba:SimBA",
    "square": "brittle.attacks.square:Square",
    "jsma": "brittle.attacks.jsma:JSMA",
    "hopskipjump": "brittle.attacks.hopskipjump:HopSkipJump",
    "rays": "brittle.attacks.rays:RayS",
    "substitute": "brittle.attacks.substitute:Substitute",
}

DEFAULT_EPS = 0.25
"""The Linf budget a fixed-budget attack gets when none is given (Goodfellow 2015's MNIST
eps, for images in [0, 1]). Other norms have no budget that fits most data: they need eps."""


def attack_names() -> list[str]:
    """The names :func:`make_attack` accepts."""
    return list(_PATHS)


def attack_class(name: str) -> type[Attack]:
    """The attack class registered under ``name`` (case-insensitive)."""
    key = name.strip().lower()
    if key not in _PATHS:
        raise InputError(f"unknown attack {name!r}: use one of {', '.join(_PATHS)}")
    module_name, class_name = _PATHS[key].split(":")
    cls: type[Attack] = getattr(importlib.import_module(module_name), class_name)
    return cls


def accepted_parameters(cls: type[Attack]) -> list[str]:
    """The names of the parameters ``cls`` declares."""
    return [p.name for p in cls.params]


def minimize_parameters() -> tuple[Param, ...]:
    """The parameters of the bisection that ``minimize=True`` wraps an attack in."""
    from .minimize import Minimize

    return Minimize.params


def _build(name: str, cls: type[Attack], params: dict[str, Any]) -> Attack:
    accepted = accepted_parameters(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InputError(
            f"attack {name!r} does not take {', '.join(unknown)}; its parameters are "
            f"{', '.join(accepted) or 'none'}"
        )
    declared = {p.name: p.default for p in cls.params}
    unset = "eps" in accepted and params.get("eps") is None and declared.get("eps") is None
    if unset and issubclass(cls, FixedBudgetAttack):
        # an attack whose declaration has its own default budget (JSMA's Upsilon) keeps it
        only = next(iter(cls.norms)).value if len(cls.norms) == 1 else "linf"
        norm = Norm.parse(params.get("norm") or declared.get("norm") or only)
        if norm is not Norm.LINF:
            raise InputError(
                f"attack {name!r} in {norm.value} needs a budget: give eps (--eps); only Linf "
                f"has a default ({DEFAULT_EPS:g}, for inputs in [0, 1])"
            )
        params = {**params, "eps": DEFAULT_EPS}
    return cls(**params)


def make_attack(
    name: str, *, minimize: bool = False, seed: int | None = None, **params: Any
) -> Attack:
    """Build the attack ``name`` with the parameters that were set.

    A parameter whose value is ``None`` counts as not set and the attack's own default
    applies; a parameter that is set but that the attack does not declare is an
    :class:`InputError` naming it, and so is a value out of its declared range. A fixed-budget
    attack in Linf without ``eps`` gets :data:`DEFAULT_EPS`; in another norm it needs one. ``seed`` (a run's seed) goes to the
    attacks that draw random numbers and is ignored by the others. With ``minimize=True`` the
    fixed-budget attack is wrapped in :class:`~brittle.attacks.minimize.Minimize`, which
    bisects its budget for the smallest successful perturbation; ``low``, ``high``,
    ``tolerance`` and ``max_steps`` then go to the bisection.
    """
    cls = attack_class(name)
    given = {k: v for k, v in params.items() if v is not None}
    if seed is not None and "seed" in accepted_parameters(cls):
        given.setdefault("seed", seed)
    if not minimize:
        return _build(name, cls, given)
    if issubclass(cls, MinimizationAttack):
        raise InputError(
            f"attack {name!r} already finds minimal perturbations; drop minimize (--minimize)"
        )
    from .minimize import Minimize

    search = {p.name: given.pop(p.name) for p in Minimize.params if p.name in given}
    inner = _build(name, cls, given)
    assert isinstance(inner, FixedBudgetAttack)
    return Minimize(inner, **search)


def describe_attack(attack: Attack) -> dict[str, Any]:
    """The attack's name and declared parameters as JSON-ready values (for reports and keys)."""
    return {"name": attack.name, "params": attack.config()}
