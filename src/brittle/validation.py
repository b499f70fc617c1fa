"""Validation of arguments at the door: one home for the checks every public function makes
of the numbers and arrays it is given.

Each ``check_*`` returns the value (converted where it says so) or raises an
:class:`~brittle.errors.InputError` naming the argument, what it must be and what it got.
A ``bool`` is never a number here, though Python's ``bool`` subclasses ``int``: ``steps=True``
is a mistake, not one step.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

from brittle.errors import InputError


def is_integer(value: Any) -> bool:
    """Whether ``value`` is a Python or numpy integer (not a ``bool``)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number, Python or numpy (not a ``bool``)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def is_shape(value: Any) -> bool:
    """Whether ``value`` is the shape of one array: a non-empty tuple or list of integers >= 1."""
    return (
        isinstance(value, tuple | list)
        and len(value) > 0
        and all(is_integer(d) and d >= 1 for d in value)
    )


def check_integer(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` when it is an integer in ``[low, high]`` (each bound optional)."""
    if (
        not is_integer(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        raise InputError(f"{name} must be an integer{_range(low, high)}, got {value!r}")
    return int(value)


def check_positive_integer(value: Any, name: str) -> int:
    """``value`` as an ``int`` when it is an integer >= 1 (a count, a size, a number of steps)."""
    return check_integer(value, name, low=1)


def check_number(
    value: Any,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a ``float`` when it is a finite real number in the interval from ``low`` to
    ``high`` (closed ends unless ``low_open``/``high_open``)."""
    ok = is_real(value) and math.isfinite(value)
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = _interval(low, high, low_open, high_open)
        raise InputError(f"{name} must be a finite number{interval}, got {value!r}")
    return float(value)


def check_positive(value: Any, name: str) -> float:
    """``value`` as a ``float`` when it is a finite number > 0."""
    return check_number(value, name, 0.0, low_open=True)


def check_fraction(value: Any, name: str) -> float:
    """``value`` as a ``float`` when it lies in the open interval (0, 1) (a probability of
    error, a share)."""
    return check_number(value, name, 0.0, 1.0, low_open=True, high_open=True)


def check_seed(seed: Any, name: str = "the seed") -> int:
    """A seed: an integer in [0, 2**63 - 1] (what torch's and numpy's generators accept)."""
    if not is_integer(seed) or not 0 <= seed < 2**63:
        raise InputError(f"{name} must be an integer in [0, 2**63 - 1], got {seed!r}")
    return int(seed)


def as_tensor(value: Any, name: str) -> Tensor:
    """A numpy array or a tensor as a tensor (sharing memory); anything else is refused."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise InputError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if low == -math.inf and high == math.inf:
        return ""
    if high == math.inf:
        return f" {'>' if low_open else '>='} {low:g}"
    if low == -math.inf:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
