"""The checks at the door of every attacked model: a batch of inputs and its labels.

:meth:`Model.check_inputs <brittle.model.Model.check_inputs>` and
:meth:`~brittle.model.Model.check_labels` call these with the model's box, shape and classes;
each refuses with an :class:`~brittle.errors.InputError` that says what is wrong and what to do.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.perturbation import Bounds, clip
from brittle.validation import as_tensor

BOUNDS_TOLERANCE = 1e-6
"""How far outside the box an input may lie (rounding of a scaled image) before it is refused;
inputs within it are clipped."""
IMPLAUSIBLE_CLASSES = 100
"""From this many outputs, a model whose labels use under a quarter of them is suspect."""


def envelope(bounds: Bounds) -> tuple[float, float]:
    """The smallest and largest value any feature of the box may take."""
    low, high = bounds
    if isinstance(low, Tensor) and isinstance(high, Tensor):
        return float(low.min()), float(high.max())
    return float(low), float(high)


def check_inputs(
    x: Any,
    *,
    bounds: Bounds,
    input_shape: tuple[int, ...] | None,
    device: torch.device,
    dtype: torch.dtype,
    owner: str,
    name: str = "x",
) -> Tensor:
    """A batch of inputs, detached, on ``device`` in ``dtype`` and clipped to the box.

    Refuses anything but a floating-point batch of one input's shape ``input_shape`` (when
    known), with finite values inside ``bounds`` (to :data:`BOUNDS_TOLERANCE`). ``owner`` names
    the model's class in the advice.
    """
    x = as_tensor(x, name).detach()
    if not x.is_floating_point():
        box_low, box_high = envelope(bounds)
        raise InputError(
            f"{name} must be floating point in [{box_low:g}, {box_high:g}], got dtype {x.dtype}; "
            "convert images with x.float() / 255"
        )
    if x.ndim < 2:
        raise InputError(f"{name} must be a batch (N, ...), got shape {tuple(x.shape)}")
    if input_shape is not None and tuple(x.shape[1:]) != input_shape:
        raise InputError(
            f"{name} has per-sample shape {tuple(x.shape[1:])} but the model expects "
            f"{input_shape} (N, C, H, W: check the channel count and image size)"
        )
    x = x.to(device, dtype)
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise InputError(f"{name} contains NaN or infinite values in {bad} sample(s)")
    if not x.numel():
        return x
    low, high = bounds
    outside = (x < low - BOUNDS_TOLERANCE) | (x > high + BOUNDS_TOLERANCE)
    if bool(outside.any()):
        lo, hi = float(x.min()), float(x.max())
        box_low, box_high = envelope(bounds)
        where = " per feature" if isinstance(low, Tensor) else ""
        hint = " (did you forget to divide by 255?)" if hi > 1.5 and box_high == 1.0 else ""
        raise InputError(
            f"{name} has values in [{lo:g}, {hi:g}], outside the bounds{where} "
            f"[{box_low:g}, {box_high:g}]{hint}; scale the inputs or pass bounds= to the {owner}"
        )
    return clip(x, bounds)


def check_labels(
    y: Any, n: int, *, num_classes: int | None, device: torch.device, name: str = "y"
) -> Tensor:
    """Integer labels of length ``n`` in ``[0, num_classes)``, as a long tensor on ``device``.

    Warns when a model with :data:`IMPLAUSIBLE_CLASSES` outputs or more sees labels that use
    under a quarter of them: a feature extractor given as a classifier.
    """
    y = as_tensor(y, name)
    if y.is_floating_point() or y.dtype == torch.bool:
        raise InputError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != n:
        raise InputError(
            f"{name} must have shape ({n},), one label per input; got {tuple(y.shape)}"
        )
    y = y.to(device, torch.long)
    k = num_classes
    if k is None or not n:
        return y
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= k:
        raise InputError(
            f"{name} has values in [{low}, {high}] but the model has {k} classes (valid: 0 to "
            f"{k - 1})"
        )
    if k >= IMPLAUSIBLE_CLASSES and k > 4 * (high + 1):
        warnings.warn(
            f"the model has {k} outputs per input but the labels go up to {high}: is it a "
            "classifier (its last layer one logit per class), or a feature extractor such as "
            "nn.Flatten? (If it has that many classes, ignore this.)",
            UserWarning,
            stacklevel=4,
        )
    return y
