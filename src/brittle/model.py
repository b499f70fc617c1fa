"""What every attacked model shares, white box or oracle: the input box, the classes, and the
validation of inputs and labels at the door.

:class:`~brittle.classifier.Classifier` (a PyTorch module: gradients) and
:class:`~brittle.oracle.Oracle` (a function that can only be queried) both derive from
:class:`Model`. The box may be unbounded (``(-inf, inf)``: a latent space) or given per
feature (two arrays of one input's shape).
"""

from __future__ import annotations

import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor

from brittle.checks.inputs import check_inputs, check_labels, envelope
from brittle.eot import EOT
from brittle.errors import BrittleError, InputError, ModelError
from brittle.perturbation import Bounds, clip
from brittle.threat import Capability
from brittle.validation import check_integer

BoundsSpec = tuple[
    float | Sequence[Any] | np.ndarray | Tensor, float | Sequence[Any] | np.ndarray | Tensor
]

_SHAPE_WORDS = re.compile(r"\b(shapes?|sizes?|dimensions?|channels|dims?)\b", re.IGNORECASE)
"""Words of the errors torch raises when inputs do not fit a layer ("mat1 and mat2 shapes
cannot be multiplied", "expected input[8, 3, 28, 28] to have 1 channels", "shape '[-1, 784]'
is invalid for input of size 2352", "The size of tensor a (3) must match ...")."""


def model_failure(err: Exception, x: Tensor, who: str = "the model") -> BrittleError:
    """The error to raise when the model itself raised ``err`` while running on ``x``.

    An error brittle raised on purpose is returned as it is. A ``RuntimeError`` or
    ``ValueError`` whose message is about shapes or sizes means the inputs do not fit the
    model: an :class:`InputError` that says to check the shape. Anything else (a ``KeyError``
    in a forward, a ``RuntimeError`` of the model's own, running out of memory) is a
    :class:`ModelError` naming the exception and showing the model's message, never reported
    as a shape problem. Raise it ``from err`` so the traceback stays one step away.
    """
    if isinstance(err, BrittleError):
        return err
    shape = tuple(x.shape[1:])
    lines = [line for line in str(err).splitlines() if line.strip()]
    message = lines[0] if lines else "(no message)"  # torch appends a C++ trace to some
    out_of_memory = isinstance(err, MemoryError | torch.OutOfMemoryError)
    if (
        isinstance(err, RuntimeError | ValueError)
        and not out_of_memory
        and _SHAPE_WORDS.search(message)
    ):
        return InputError(
            f"{who} failed on inputs of shape {shape}: {message}. Check the shape and channel "
            "count the model expects"
        )
    advice = (
        "it ran out of memory: lower --batch-size (batch_size=)"
        if out_of_memory
        else "the error is the model's own, not brittle's: fix the model, then run again"
    )
    return ModelError(
        f"{who} raised {type(err).__name__} on {x.shape[0]} input(s) of shape {shape}: "
        f"{message} ({advice})"
    )


def box_scale(bounds: Bounds) -> float:
    """The box's width (its mean over features when given per feature), or 1 if unbounded."""
    low, high = bounds
    width = float(torch.as_tensor(high - low, dtype=torch.float64).mean())
    return width if width < float("inf") else 1.0


def _scalar(value: Any) -> float | None:
    """``value`` as a float when it is one number: a Python or numpy number (``x.min()`` of a
    float32 array is a ``np.float32``, not a ``float``) or a 0-d array or tensor."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray | Tensor) and value.ndim == 0:
        return float(value)
    return None


def parse_bounds(
    bounds: BoundsSpec,
    input_shape: tuple[int, ...] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Bounds, tuple[int, ...] | None]:
    """``(low, high)`` as two floats, or as two tensors of one input's shape (per feature).

    Returns the bounds and the input shape (taken from per-feature bounds when not given).
    Infinite bounds are allowed (an unbounded box); ``low < high`` must hold everywhere.
    """
    try:
        low_spec, high_spec = bounds
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a pair (low, high), got {bounds!r}") from None
    low, high = _scalar(low_spec), _scalar(high_spec)
    if low is not None and high is not None:
        if not low < high:
            raise InputError(f"bounds must satisfy low < high, got {bounds}")
        return (low, high), input_shape
    try:
        low_t = torch.as_tensor(np.asarray(low_spec, dtype=np.float64), dtype=dtype)
        high_t = torch.as_tensor(np.asarray(high_spec, dtype=np.float64), dtype=dtype)
    except (TypeError, ValueError) as err:
        raise InputError(f"bounds must be numbers or arrays of numbers: {err}") from None
    try:
        # without an input shape, the one both bounds broadcast to (not the max() of their
        # shapes, which is lexicographic: low (1, 8, 8) with high (8,) would give (8,))
        shape = (
            tuple(input_shape)
            if input_shape
            else tuple(torch.broadcast_shapes(low_t.shape, high_t.shape))
        )
        low_t, high_t = low_t.expand(shape).clone(), high_t.expand(shape).clone()
    except RuntimeError:
        wanted = f" {tuple(input_shape)}" if input_shape else ""
        raise InputError(
            f"per-feature bounds must have one input's shape{wanted}; got {tuple(low_t.shape)} "
            f"and {tuple(high_t.shape)}"
        ) from None
    if bool(low_t.isnan().any() | high_t.isnan().any()) or not bool((low_t < high_t).all()):
        raise InputError("per-feature bounds must satisfy low < high for every feature (no NaN)")
    return (low_t.to(device), high_t.to(device)), shape


class Model(ABC):
    """A classifier as an attack sees it: a box of valid inputs, K classes, and outputs.

    Subclasses say what access they grant (``capability``) and how to evaluate the model
    without counting (:meth:`predict_scores`, used by the attack base for the clean
    prediction and the re-check of every returned input).
    """

    capability: Capability
    has_scores: bool = True
    eot: EOT | None = None
    """How a randomised model is attacked and judged (:class:`~brittle.eot.EOT`): ``None``
    for a deterministic one. Set it, or let :func:`~brittle.eot.use_eot_if_randomised` do."""

    def __init__(
        self,
        bounds: BoundsSpec,
        num_classes: int | None,
        input_shape: Sequence[int] | None,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.num_classes = (
            None if num_classes is None else check_integer(num_classes, "num_classes", 2)
        )
        self.device = device
        self.dtype = dtype
        shape = tuple(int(s) for s in input_shape) if input_shape else None
        self.bounds, self.input_shape = parse_bounds(bounds, shape, device, dtype)

    # ------------------------------------------------------------------ the box
    @property
    def per_feature(self) -> bool:
        """Whether the box is given per feature (bounds are tensors)."""
        return isinstance(self.bounds[0], Tensor)

    @property
    def bounded(self) -> bool:
        """Whether every feature has finite bounds."""
        low, high = self.bounds
        if isinstance(low, Tensor) and isinstance(high, Tensor):
            return bool(low.isfinite().all() & high.isfinite().all())
        return bool(np.isfinite(low) and np.isfinite(high))

    def clip(self, x: Tensor) -> Tensor:
        """``x`` clipped to the box."""
        return clip(x, self.bounds)

    def envelope(self) -> tuple[float, float]:
        """The smallest and largest value any feature may take (the box for a report)."""
        return envelope(self.bounds)

    # ------------------------------------------------------------------ evaluation
    @abstractmethod
    def predict_scores(self, x: Tensor) -> Tensor:
        """Scores ``(N, K)`` without gradient (labels as one-hot rows for a label-only oracle)."""

    def current_scores(self, x: Tensor) -> Tensor:
        """Scores without gradient in the model's current state (the state an attack runs
        it in: nothing is switched, unlike :meth:`predict_scores` for a classifier)."""
        return self.predict_scores(x)

    def probabilities(self, scores: Tensor) -> Tensor:
        """Class probabilities from scores (the softmax of logits)."""
        return scores.softmax(1)

    def log_probabilities(self, scores: Tensor) -> Tensor:
        """Log class probabilities from scores (the log-softmax of logits)."""
        return scores.log_softmax(1)

    @abstractmethod
    def check_outputs(self, x: Tensor) -> None:
        """Run the model on a few inputs and refuse outputs it cannot be attacked with."""

    @contextmanager
    def evaluation(self) -> Iterator[Model]:
        """The state the model is attacked in (nothing to change for a plain function)."""
        yield self

    # ------------------------------------------------------------------ validation
    def check_inputs(self, x: Any, name: str = "x") -> Tensor:
        """Validate a batch of inputs and return it on :attr:`device` in :attr:`dtype`,
        detached and clipped to the box (:func:`brittle.checks.inputs.check_inputs`)."""
        return check_inputs(
            x,
            bounds=self.bounds,
            input_shape=self.input_shape,
            device=self.device,
            dtype=self.dtype,
            owner=type(self).__name__,
            name=name,
        )

    def check_labels(self, y: Any, n: int, name: str = "y") -> Tensor:
        """Validate integer labels of length ``n`` in ``[0, num_classes)``
        (:func:`brittle.checks.inputs.check_labels`)."""
        return check_labels(y, n, num_classes=self.num_classes, device=self.device, name=name)
