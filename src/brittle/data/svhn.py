"""SVHN's cropped digits: ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB v5 files).

Each holds ``X``, the images as ``(32, 32, 3, N)`` bytes, and ``y``, the labels as ``(N, 1)``
in 1..10, where 10 stands for the digit 0. The files are read with ``scipy.io.loadmat``
(which runs no code), after ``scipy.io.whosmat`` has shown that the arrays they declare fit
the :class:`~brittle.data.limits.Limits`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from brittle.data.array_source import ArraySource
from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.data.mnist import ENV_VAR, candidate_folders
from brittle.errors import DataError

DIGITS = [str(digit) for digit in range(10)]
_ZERO_LABEL = 10
_MATLAB_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4}
_MATLAB_BYTES |= {"single": 4}
"""Bytes per value of MATLAB's classes (8 for any other)."""


def find_svhn_file(split: str, data_dir: str | Path | None) -> Path:
    """``<split>_32x32.mat`` in ``data_dir``, ``data_dir/svhn`` or ``$BRITTLE_DATA/svhn``."""
    name = f"{split}_32x32.mat"
    folders = candidate_folders("svhn", data_dir)
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    where = f"looked in {', '.join(map(str, folders))}" if folders else f"{ENV_VAR} is not set"
    raise DataError(
        f"no SVHN file {name} found ({where}): pass the folder holding train_32x32.mat and "
        f"test_32x32.mat as data_dir (--data-dir), or set {ENV_VAR} to the folder that holds "
        "svhn/"
    )


def _check_declared(path: Path, limits: Limits) -> None:
    """What the file's headers declare, before anything is loaded."""
    from scipy.io import whosmat

    try:
        declared = {name: (shape, kind) for name, shape, kind in whosmat(path)}
    except Exception as err:  # scipy raises many types on foreign files
        raise DataError(
            f"{path} cannot be read as a MATLAB v5 file ({type(err).__name__}: {err}); SVHN's "
            "train_32x32.mat and test_32x32.mat are"
        ) from err
    for name in ("X", "y"):
        if name not in declared:
            raise DataError(
                f"{path} holds {sorted(declared)}, not SVHN's arrays 'X' and 'y'; pass SVHN's "
                "cropped-digit file (format 2)"
            )
        shape, kind = declared[name]
        count = math.prod(shape)
        what = f"{path}['{name}'] declares shape {shape}"
        limits.check("max_elements", count, f"{what}, {count:,} values")
        limits.check("max_bytes", count * _MATLAB_BYTES.get(kind, 8), f"{what} of {kind}")


def open_svhn(
    split: str, data_dir: str | Path | None, limits: Limits = DEFAULT_LIMITS
) -> ArraySource:
    """The ``split`` of SVHN (see the module docstring); labels 10 become 0."""
    from scipy.io import loadmat

    path = find_svhn_file(split, data_dir)
    _check_declared(path, limits)
    try:
        arrays = loadmat(path, variable_names=["X", "y"])
    except Exception as err:  # scipy raises many types on damaged files
        raise DataError(f"{path} cannot be loaded ({type(err).__name__}: {err})") from err
    images, labels = arrays["X"], np.asarray(arrays["y"])
    if images.ndim != 4 or images.shape[2] != 3:
        raise DataError(f"{path}['X'] has shape {images.shape}; SVHN's images are (32, 32, 3, N)")
    if labels.shape not in ((images.shape[3], 1), (images.shape[3],)):
        raise DataError(
            f"{path}['y'] has shape {labels.shape} for {images.shape[3]} images; SVHN's labels "
            "are (N, 1)"
        )
    labels = labels.reshape(-1)
    valid = np.isin(labels, np.arange(1, _ZERO_LABEL + 1))
    if not valid.all():
        where = int(np.argmin(valid))
        raise DataError(
            f"{path}['y'] holds label {labels[where]} at index {where}; SVHN's labels are "
            "1..10 (10 for the digit 0)"
        )
    return ArraySource.checked(
        images.transpose(3, 2, 0, 1),
        labels.astype(np.int64) % _ZERO_LABEL,
        source=f"{path}['X']",
        label_source=f"{path}['y']",
        files=[path],
        kind="svhn",
        name="svhn",
        split=split,
        location=str(path),
        classes=DIGITS,
        limits=limits,
    )
