"""One declaration per attack parameter: its type, range, default and help text.

The declaration is used three times, so the three always agree: the attack's constructor
validates every value against it (a bad value is an :class:`~brittle.errors.InputError` that
names the parameter), the command line builds its options from it, and the run key of an
evaluation is made from the declared parameters' values (never from the object's attributes).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import Enum
from typing import Any

from brittle.errors import InputError


@dataclass(frozen=True)
class Param:
    """A parameter of an attack's constructor.

    ``kind`` is ``int``, ``float``, ``bool`` or ``str``. Numbers must lie in ``[low, high]``
    (``low_open``: strictly above ``low``) and be finite; strings must be one of ``choices``.
    ``optional`` allows ``None``. ``cli`` is the flag's name on the command line (``None``:
    the parameter is not offered there).
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    cli: str | None = ""

    @property
    def flag(self) -> str | None:
        """The command-line flag, e.g. ``--step-size`` (``None`` when not offered)."""
        if self.cli is None:
            return None
        return "--" + (self.cli or self.name.replace("_", "-"))

    def describe_range(self) -> str:
        """The accepted values in words, for messages and help texts."""
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        parts = []
        if self.low is not None:
            parts.append(f"> {self.low:g}" if self.low_open else f">= {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        what = {int: "an integer", float: "a number", str: "a string"}[self.kind]
        text = what + (" " + " and ".join(parts) if parts else "")
        return text + (" (or None)" if self.optional else "")

    def check(self, value: Any, owner: str) -> Any:
        """``value`` converted to the declared kind, or an :class:`InputError` naming it."""
        if value is None:
            if self.optional:
                return None
            raise InputError(f"{owner}: {self.name} must be {self.describe_range()}, got None")
        if isinstance(value, Enum):
            value = value.value
        bad = InputError(f"{owner}: {self.name} must be {self.describe_range()}, got {value!r}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value.lower() not in self.choices):
                raise bad
            return value.lower()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad
        if self.kind is int and not isinstance(value, numbers.Integral):
            raise bad
        number = float(value)
        if not math.isfinite(number):
            raise bad
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            raise bad
        if self.high is not None and number > self.high:
            raise bad
        return int(number) if self.kind is int else number


def check_params(declared: tuple[Param, ...], values: dict[str, Any], owner: str) -> dict[str, Any]:
    """Every declared parameter's value from ``values``, checked and converted."""
    names = {p.name for p in declared}
    unknown = sorted(set(values) - names)
    if unknown:
        raise AssertionError(f"{owner} sets undeclared parameters {unknown}")
    return {p.name: p.check(values.get(p.name, p.default), owner) for p in declared}


# ------------------------------------------------------------------ shared declarations
def eps_param(optional: bool) -> Param:
    """The budget: required by fixed-budget attacks, an optional cap for minimal ones."""
    return Param(
        "eps",
        float,
        None,
        "Budget in the attack's norm"
        + (" (optional: caps the smallest perturbation found)." if optional else "."),
        low=0.0,
        optional=optional,
    )


STEPS = Param("steps", int, 10, "Iterations.", low=1)
STEP_SIZE = Param(
    "step_size",
    float,
    None,
    "Step size alpha in absolute units (default: relative to eps).",
    low=0.0,
    low_open=True,
    optional=True,
)
TARGETED = Param("targeted", bool, False, "Aim at target classes.", cli=None)
SEED = Param("seed", int, 0, "Seed of the per-sample random draws.", cli=None)
NORMS = ("linf", "l2", "l1", "l0")


def norm_param(default: str, choices: tuple[str, ...]) -> Param:
    """The perturbation norm, among the attack's own."""
    return Param("norm", str, default, "Perturbation norm.", choices=choices)
