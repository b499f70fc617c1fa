"""Perturbation budgets as the user writes them: ``0.3``, ``8/255``, ``1e-2``.

A :class:`Budget` is a float (everything that computes with it sees a number) that keeps
the text it was written as, so that a report prints ``8/255`` and not ``0.0313725``. This
module is the one door budgets pass: :func:`parse_budget` and :func:`parse_budgets` are the
only places a budget is checked (finite and >= 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from brittle.errors import InputError


class BudgetError(InputError):
    """A budget that cannot be read; ``reason`` says why without naming the option (the
    command line puts its flag before it)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} {reason}")
        self.reason = reason


class Budget(float):
    """A budget ``eps`` (a float) with the ``text`` it was given as."""

    text: str

    def __new__(cls, value: float, text: str | None = None) -> Budget:
        self = super().__new__(cls, value)
        self.text = text if text is not None else f"{float(value):g}"
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Budget, (float(self), self.text))


def parse_budget(value: Any, what: str = "eps") -> Budget:
    """One budget from a number or a text (a decimal, or a fraction ``P/Q`` such as
    ``8/255``), checked finite and >= 0; a :class:`Budget` passes through unchanged."""
    if isinstance(value, Budget):
        return value
    if isinstance(value, bool):
        raise BudgetError(what, f"must be a number >= 0 (e.g. 0.3 or 8/255), got {value!r}")
    if isinstance(value, int | float):
        number, text = float(value), f"{float(value):g}"
    else:
        text = str(value).strip()
        number = _number(text, what)
    if not math.isfinite(number) or number < 0:
        raise BudgetError(what, f"must be a finite number >= 0 (e.g. 0.3 or 8/255), got {text!r}")
    return Budget(number, text)


def parse_budgets(values: str | Iterable[Any], what: str = "eps") -> tuple[Budget, ...]:
    """Several budgets, from a comma-separated text (``0.1,0.2`` or ``2/255,8/255``) or a
    sequence; sorted, without repeats (the first text of equal values is kept)."""
    items = values.split(",") if isinstance(values, str) else list(values)
    parsed = [parse_budget(v, what) for v in items if not (isinstance(v, str) and not v.strip())]
    if not parsed:
        raise BudgetError(what, "must hold at least one budget (e.g. 0.1,0.2,0.3 or 8/255)")
    unique: dict[float, Budget] = {}
    for budget in parsed:
        unique.setdefault(float(budget), budget)
    return tuple(unique[v] for v in sorted(unique))


def _number(text: str, what: str) -> float:
    try:
        if "/" in text:
            numerator, denominator = text.split("/")
            return float(numerator) / float(denominator)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise BudgetError(
            what, f"must be a number or a fraction such as 0.3 or 8/255, got {text!r}"
        ) from None
