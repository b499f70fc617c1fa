"""A model that can only be queried: a remote service, a model in another framework.

``Oracle(predict, num_classes, input_shape, bounds, outputs="labels"|"scores")`` wraps any
callable from a batch of inputs (a tensor ``(N, *input_shape)``) to labels ``(N,)`` or scores
``(N, K)`` (tensor, numpy array or nested lists). It grants the capability of Papernot et al.
2016's oracle: only attacks that need an oracle or less accept it, and every call an attack
makes to it is counted as queries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from brittle.checks.outputs import check_oracle_answer, looks_like_probabilities
from brittle.devices import check_device
from brittle.errors import InputError, ModelOutputError
from brittle.model import BoundsSpec, Model, model_failure
from brittle.threat import Capability

Predict = Callable[[Tensor], Any]


class Oracle(Model):
    """A classifier seen only through its answers to queries.

    ``outputs="labels"``: ``predict`` returns one class per input (a decision-based oracle,
    capability ``ORACLE_LABELS``); ``"scores"``: one row of K scores per input, logits or
    probabilities (``ORACLE_SCORES``). ``predict`` is called with batches on ``device``
    (default CPU; the CPU or a CUDA GPU this machine has) in ``dtype``; it must not keep or
    change them. An exception ``predict`` raises is reported as a
    :class:`~brittle.errors.ModelError` with its message.
    """

    def __init__(
        self,
        predict: Predict,
        num_classes: int,
        input_shape: Sequence[int],
        bounds: BoundsSpec = (0.0, 1.0),
        outputs: Literal["labels", "scores"] = "labels",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not callable(predict):
            raise InputError(f"predict must be callable, got {type(predict).__name__}")
        if outputs not in ("labels", "scores"):
            raise InputError(f"outputs must be 'labels' or 'scores', got {outputs!r}")
        if num_classes is None or input_shape is None:
            raise InputError("an Oracle needs num_classes and input_shape: it cannot be probed")
        super().__init__(bounds, num_classes, input_shape, check_device(device), dtype)
        self.predict = predict
        self.outputs = outputs
        self.capability = (
            Capability.ORACLE_SCORES if outputs == "scores" else Capability.ORACLE_LABELS
        )
        self.has_scores = outputs == "scores"

    @property
    def classes(self) -> int:
        assert self.num_classes is not None
        return self.num_classes

    def query(self, x: Tensor) -> Tensor:
        """The oracle's answer for ``x``: labels ``(N,)`` or scores ``(N, K)``, checked."""
        try:
            with torch.no_grad():
                raw = self.predict(x)
        except Exception as err:
            raise model_failure(err, x, "the oracle") from err
        try:
            out = torch.as_tensor(np.asarray(raw) if not isinstance(raw, Tensor) else raw)
        except (TypeError, ValueError) as err:
            raise ModelOutputError(f"the oracle returned {type(raw).__name__}: {err}") from None
        out = out.to(self.device)
        out = check_oracle_answer(out, x.shape[0], self.outputs, self.classes)
        if self.outputs == "labels":
            return out
        return out.to(self.dtype)

    def predict_scores(self, x: Tensor) -> Tensor:
        """Scores, or labels as one-hot rows (their argmax is the label)."""
        out = self.query(x)
        if self.outputs == "labels":
            return torch.nn.functional.one_hot(out, self.classes).to(self.dtype)
        return out

    def probabilities(self, scores: Tensor) -> Tensor:
        """Scores that are already probabilities (non-negative rows summing to 1) as they are,
        other scores through a softmax; NaN for a label oracle, which gives none."""
        if self.outputs == "labels":
            return torch.full_like(scores, float("nan"))
        if looks_like_probabilities(scores):
            return scores
        return scores.softmax(1)

    def log_probabilities(self, scores: Tensor) -> Tensor:
        """The log of :meth:`probabilities` (the log-softmax of scores that are not)."""
        probs = self.probabilities(scores)
        if probs is scores:
            return scores.clamp_min(torch.finfo(scores.dtype).tiny).log()
        return scores.log_softmax(1)

    def check_outputs(self, x: Tensor) -> None:
        """Nothing to probe: every answer is checked as it arrives (:meth:`query`), and a probe
        would spend the oracle's queries outside the count."""

    def __repr__(self) -> str:
        return (
            f"Oracle({getattr(self.predict, '__name__', type(self.predict).__name__)}, "
            f"outputs={self.outputs}, num_classes={self.num_classes}, "
            f"input_shape={self.input_shape})"
        )
