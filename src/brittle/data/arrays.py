"""Turn arrays from any source into what a :class:`~brittle.data.Dataset` holds.

Images become float32 ``(N, C, H, W)`` in ``[0, 1]``; labels become int64 ``(N,)``. Anything
that is not an image batch or not integer labels is refused with a :class:`DataError` that
names the source.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from brittle.errors import DataError

_CHANNELS = (1, 3)
_BYTE_MAX = 255


def _to_nchw(images: np.ndarray, source: str) -> np.ndarray:
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


def images_to_tensor(images: np.ndarray, source: str) -> Tensor:
    """Images as float32 ``(N, C, H, W)`` in ``[0, 1]``.

    Integer arrays, and floats above 1 that are whole numbers, are bytes 0..255 and are
    divided by 255; floats already in ``[0, 1]`` are kept. NaN, negative values and floats
    above 1 that are not whole numbers up to 255 are refused.
    """
    if images.dtype == np.bool_ or not np.issubdtype(images.dtype, np.number):
        raise DataError(f"{source} has dtype {images.dtype}; images must be numbers")
    images = _to_nchw(images, source)
    if images.shape[0] == 0:
        raise DataError(f"{source} holds no images")
    if not np.isfinite(images).all():
        raise DataError(f"{source} contains NaN or infinite values; images must be finite")
    low, high = images.min(), images.max()
    if low < 0:
        raise DataError(
            f"{source} has values in [{low:g}, {high:g}]; images must be in [0, 1] or bytes "
            "0..255 (undo any mean/std normalisation before loading)"
        )
    integers = np.issubdtype(images.dtype, np.integer)
    if integers or high > 1:
        if high > _BYTE_MAX or not (integers or np.array_equal(images, np.round(images))):
            raise DataError(
                f"{source} has values in [{low:g}, {high:g}] that are neither in [0, 1] nor "
                "whole numbers 0..255; rescale the images to [0, 1]"
            )
        return torch.from_numpy(np.divide(images, _BYTE_MAX, dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))


def labels_to_tensor(labels: np.ndarray, n: int, source: str) -> Tensor:
    """Labels as int64 ``(n,)``: one non-negative whole number per image."""
    if labels.ndim != 1:
        raise DataError(
            f"{source} has shape {labels.shape}; labels must be one class index per image, "
            "shape (N,) (convert one-hot labels with argmax(axis=1))"
        )
    if labels.shape[0] != n:
        raise DataError(f"{source} has {labels.shape[0]} labels for {n} images; they must match")
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.number):
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
    return torch.from_numpy(labels.astype(np.int64))
