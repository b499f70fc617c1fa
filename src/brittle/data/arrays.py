"""Turn arrays from any source into what a :class:`~brittle.data.Dataset` holds.

Images become float32 ``(N, C, H, W)`` in ``[0, 1]``; labels become int64 ``(N,)``. Anything
that is not an image batch or not integer labels is refused with a :class:`DataError` that
names the source. The checks read a memory-mapped array a chunk at a time, and the conversion
to float32 can be done one fetched batch at a time (:func:`to_unit_float`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.errors import DataError

_CHANNELS = (1, 3)
_BYTE_MAX = 255
_SCAN_VALUES = 1 << 22
"""Values read at once when an array's range is checked."""


def to_nchw(images: np.ndarray, source: str) -> np.ndarray:
    """``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` (C in 1, 3) to ``(N, C, H, W)``."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[1] in _CHANNELS:
        return images
    if images.ndim == 4 and images.shape[3] in _CHANNELS:
        return images.transpose(0, 3, 1, 2)
    raise DataError(
        f"{source} has shape {images.shape}, which is not a batch of images: expected "
        "(N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 (grayscale) or 3 (RGB)"
    )


def _check_number_dtype(array: np.ndarray, source: str, what: str) -> None:
    if np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(
            f"{source} has dtype {array.dtype}; {what} must be real numbers, not complex "
            "(store the real values the data mean, e.g. np.abs(a) or a.real)"
        )
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{source} has dtype {array.dtype}; {what} must be numbers")


def _chunks(images: np.ndarray) -> Iterator[np.ndarray]:
    """``images`` a few million values at a time along the first axis (a memory-mapped
    array is read piece by piece, never whole)."""
    per_row = max(1, int(np.prod(images.shape[1:], dtype=np.int64)))
    rows = max(1, _SCAN_VALUES // per_row)
    for start in range(0, images.shape[0], rows):
        yield np.asarray(images[start : start + rows])


def pixel_divisor(images: np.ndarray, source: str) -> int:
    """What the images are divided by to lie in ``[0, 1]``: 255 for bytes, 1 for floats.

    Integer arrays, and floats above 1 that are whole numbers, are bytes 0..255 (divisor
    255); floats already in ``[0, 1]`` are kept (divisor 1). NaN, negative values and values
    above 1 that are not whole numbers up to 255 are refused. uint8 arrays need no look at
    their values; others are scanned a chunk at a time.
    """
    _check_number_dtype(images, source, "images")
    if images.dtype == np.uint8:
        return _BYTE_MAX
    integers = np.issubdtype(images.dtype, np.integer)
    low, high = np.inf, -np.inf
    for chunk in _chunks(images):
        if not integers and not np.isfinite(chunk).all():
            raise DataError(f"{source} contains NaN or infinite values; images must be finite")
        low, high = min(low, chunk.min()), max(high, chunk.max())
    if low < 0:
        raise DataError(
            f"{source} has values in [{low:g}, {high:g}]; images must be in [0, 1] or bytes "
            "0..255 (undo any mean/std normalisation before loading)"
        )
    if integers or high > 1:
        whole = integers or all(np.array_equal(c, np.round(c)) for c in _chunks(images))
        if high > _BYTE_MAX or not whole:
            raise DataError(
                f"{source} has values in [{low:g}, {high:g}] that are neither in [0, 1] nor "
                "whole numbers 0..255; rescale the images to [0, 1]"
            )
        return _BYTE_MAX
    return 1


def to_unit_float(batch: np.ndarray, divisor: int) -> Tensor:
    """A batch as float32 in ``[0, 1]``, divided by :func:`pixel_divisor`'s ``divisor``."""
    if divisor == 1:
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    return torch.from_numpy(np.divide(batch, divisor, dtype=np.float32))


def image_batch(images: np.ndarray, source: str) -> np.ndarray:
    """Images as a ``(N, C, H, W)`` view (nothing copied), at least one of them."""
    _check_number_dtype(images, source, "images")
    images = to_nchw(images, source)
    if images.shape[0] == 0:
        raise DataError(f"{source} holds no images")
    return images


def images_to_tensor(images: np.ndarray, source: str) -> Tensor:
    """Images as float32 ``(N, C, H, W)`` in ``[0, 1]`` (see :func:`pixel_divisor`)."""
    images = image_batch(images, source)
    return to_unit_float(images, pixel_divisor(images, source))


def check_labels(
    labels: np.ndarray, n: int, source: str, limits: Limits = DEFAULT_LIMITS
) -> np.ndarray:
    """Labels as int64 ``(n,)``: one non-negative whole number per image, each below
    ``limits.max_classes`` (checked before the conversion, so uint64 labels cannot wrap)."""
    if labels.ndim != 1:
        raise DataError(
            f"{source} has shape {labels.shape}; labels must be one class index per image, "
            "shape (N,) (convert one-hot labels with argmax(axis=1))"
        )
    if labels.shape[0] != n:
        raise DataError(f"{source} has {labels.shape[0]} labels for {n} images; they must match")
    if (
        labels.dtype == np.bool_
        or not np.issubdtype(labels.dtype, np.number)
        or np.issubdtype(labels.dtype, np.complexfloating)
    ):
        raise DataError(
            f"{source} has dtype {labels.dtype}; labels must be integer class indices 0..K-1"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        fractional = ~np.isfinite(labels) | (labels != np.round(labels))
        if fractional.any():
            raise DataError(
                f"{source} holds {labels.dtype} labels that are not integers "
                f"({int(fractional.sum())} of {n}, e.g. {labels[fractional][0]:g} at index "
                f"{int(np.argmax(fractional))}); labels are class indices 0..K-1: store them "
                "as integers (probabilities or one-hot rows: take argmax)"
            )
    negative = labels < 0
    if negative.any():
        raise DataError(
            f"{source} holds negative labels ({int(negative.sum())} of {n}, e.g. "
            f"{labels[negative][0]:g} at index {int(np.argmax(negative))}); labels are class "
            "indices 0..K-1: map them to 0..K-1 first (e.g. np.unique(y, return_inverse=True)[1]; "
            "-1 often marks unlabelled samples, which must be dropped)"
        )
    if n and labels.max() >= limits.max_classes:
        where = int(np.argmax(labels))
        top = int(labels[where])
        raise limits.exceeded(
            "max_classes",
            f"{source} holds label {top} (at index {where}), so at least {top + 1:,} classes",
        )
    return labels.astype(np.int64)


def labels_to_tensor(
    labels: np.ndarray, n: int, source: str, limits: Limits = DEFAULT_LIMITS
) -> Tensor:
    """:func:`check_labels` as a tensor."""
    return torch.from_numpy(check_labels(labels, n, source, limits))
