"""The errors brittle raises on purpose: each says what is wrong and what to do.

All are ``ValueError`` subclasses (``CheckpointError``, ``DataError`` and ``StorageError``
too), so code that already catches ``ValueError`` keeps working.
"""

from __future__ import annotations


class BrittleError(ValueError):
    """Base class of every error brittle raises on purpose."""


class InputError(BrittleError):
    """Inputs, labels or targets given to an attack are not valid (shape, range, NaN, ...)."""


class ModelOutputError(BrittleError):
    """The model's outputs cannot be used as logits (probabilities, NaN, wrong width)."""


class ModelError(BrittleError):
    """The model itself raised an exception while it ran (its forward, or an oracle's
    ``predict``): the message names the exception and shows the model's own message."""


class GradientError(BrittleError):
    """The model gives no usable input gradient (None, NaN, not differentiable)."""


class ThreatModelError(BrittleError):
    """An attack was asked for a goal, norm or capability it does not support."""


class DataError(BrittleError):
    """A data set cannot be found or read (missing folder, corrupt IDX file, ...)."""


class CheckpointError(BrittleError):
    """A checkpoint cannot be loaded safely (pickled objects, missing metadata, ...)."""


class StorageError(BrittleError):
    """An output cannot be stored: disk full, read-only or missing folder, I/O error, a result
    store that is locked or damaged.

    Not bad input: the same command succeeds once the place is fixed. The message says what
    failed, what was kept (the previous file, the batches already committed) and what to do.
    """


STORAGE_EXIT = 3
"""Exit code of the command line on a :class:`StorageError`.

Distinct from 2 (bad input, any other :class:`BrittleError`), so a script can tell "fix the
command" from "fix the disk, then rerun the same command".
"""
