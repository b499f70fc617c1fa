"""brittle.validation: the one home of the checks on numbers given as arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from brittle.errors import InputError
from brittle.validation import (
    as_tensor,
    check_fraction,
    check_integer,
    check_number,
    check_positive,
    check_positive_integer,
    check_seed,
    is_integer,
    is_real,
    is_shape,
)


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_a_bool_is_never_a_number(value: object) -> None:
    assert not is_integer(value) and not is_real(value)
    with pytest.raises(InputError, match="steps must be an integer >= 1"):
        check_positive_integer(value, "steps")
    with pytest.raises(InputError, match="must be a finite number"):
        check_number(value, "eps")


def test_integers_python_or_numpy_come_back_as_int() -> None:
    for value in (3, np.int64(3), np.int32(3)):
        out = check_integer(value, "n", 1, 5)
        assert out == 3 and type(out) is int
    for bad in (0, 6, 2.0, "3", None):
        with pytest.raises(InputError, match=r"n must be an integer in \[1, 5\], got"):
            check_integer(bad, "n", 1, 5)
    assert check_integer(-7, "offset") == -7


def test_numbers_closed_and_open_ends() -> None:
    assert check_number(0, "alpha", 0, 1) == 0.0
    assert check_number(np.float32(0.5), "alpha", 0, 1) == 0.5
    with pytest.raises(InputError, match=r"alpha must be a finite number in \(0, 1\), got 0"):
        check_fraction(0, "alpha")
    with pytest.raises(InputError, match=r"sigma must be a finite number > 0"):
        check_positive(0.0, "sigma")
    for bad in (math.nan, math.inf, -math.inf, "1", None):
        with pytest.raises(InputError, match="lr must be a finite number"):
            check_number(bad, "lr")


def test_seeds_are_what_the_generators_accept() -> None:
    assert check_seed(0) == 0 and check_seed(2**63 - 1) == 2**63 - 1
    for bad in (-1, 2**63, 1.0, True):
        with pytest.raises(
            InputError, match=r"the seed must be an integer in \[0, 2\*\*63 - 1\], got"
        ):
            check_seed(bad)
    torch.Generator().manual_seed(check_seed(2**63 - 1))  # the largest one is accepted


def test_as_tensor_shares_a_numpy_array_and_refuses_lists() -> None:
    array = np.zeros(3, dtype=np.float32)
    tensor = as_tensor(array, "x")
    tensor[0] = 1
    assert array[0] == 1
    with pytest.raises(InputError, match=r"x must be a torch\.Tensor or numpy array, got list"):
        as_tensor([0.0], "x")


def test_a_shape_is_a_non_empty_sequence_of_sizes() -> None:
    assert is_shape((3, 32, 32)) and is_shape([1]) and is_shape((np.int64(2), 5))
    for bad in ((), [], (3, 0), (3, -1), (3, 2.0), (True, 2), "32", 32, None):
        assert not is_shape(bad)
