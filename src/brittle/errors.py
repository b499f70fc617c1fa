"""The errors brittle raises on bad input: each says what is wrong and what to do.

All are ``ValueError`` subclasses (``CheckpointError`` and ``DataError`` too), so code that
already catches ``ValueError`` keeps working.
"""

from __future__ import annotations


class BrittleError(ValueError):
    """Base class of every input error brittle raises on purpose."""


class InputError(BrittleError):
    """Inputs, labels or targets given to an attack are not valid (shape, range, NaN, ...)."""


class ModelOutputError(BrittleError):
    """The model's outputs cannot be used as logits (probabilities, NaN, wrong width)."""


class GradientError(BrittleError):
    """The model gives no usable input gradient (None, NaN, not differentiable)."""


class ThreatModelError(BrittleError):
    """An attack was asked for a goal, norm or capability it does not support."""


class DataError(BrittleError):
    """A data set cannot be found or read (missing folder, corrupt IDX file, ...)."""


class CheckpointError(BrittleError):
    """A checkpoint cannot be loaded safely (pickled objects, missing metadata, ...)."""
