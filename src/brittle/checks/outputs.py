"""The checks of what a model returns, before any attack runs on it.

A classifier must return finite logits, one row per input, and a gradient with respect to its
input; an oracle's answers must be labels or scores of the declared shape.
:class:`~brittle.classifier.Classifier` and :class:`~brittle.oracle.Oracle` run the model and
call these on what came back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from brittle.errors import GradientError, ModelOutputError

PROBABILITY_TOLERANCE = 1e-3
"""How far from one a row's sum may be for the row to count as probabilities."""


def looks_like_probabilities(scores: Tensor) -> bool:
    """Whether every row is non-negative and sums to one (to :data:`PROBABILITY_TOLERANCE`)."""
    return bool(
        (scores >= 0).all()
        and torch.allclose(scores.sum(1), torch.ones_like(scores[:, 0]), atol=PROBABILITY_TOLERANCE)
    )


def check_logits(z: object, n: int, num_classes: int | None, outputs: str) -> int:
    """The number of classes, after refusing outputs ``z`` of ``n`` inputs that are not logits.

    Probabilities (rows non-negative and summing to one) are refused when ``outputs`` is
    ``"logits"``: their gradients saturate, so attacks on them look weaker than they are
    (Papernot 2016, section 3; Carlini & Wagner 2017).
    """
    if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[0] != n:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ModelOutputError(
            f"the model must return one row of logits per input, shape (N, classes); got {got} "
            f"for {n} inputs"
        )
    if not torch.isfinite(z).all():
        raise ModelOutputError("the model returned NaN or infinite outputs on valid inputs")
    if num_classes is None and z.shape[1] < 2:
        raise ModelOutputError(
            f"the model returns {z.shape[1]} output per input; a classifier needs at least 2 "
            "(return [0, z] for a binary logistic model)"
        )
    if num_classes is not None and z.shape[1] != num_classes:
        raise ModelOutputError(
            f"the model returns {z.shape[1]} outputs per input but num_classes={num_classes}"
        )
    if outputs == "logits" and looks_like_probabilities(z):
        raise ModelOutputError(
            "the model's outputs look like probabilities (non-negative rows summing to 1). "
            "Attacks need logits, the last layer before softmax: gradients through a "
            "saturated softmax vanish and make the model look more robust than it is. "
            "Remove the final softmax, or pass outputs='probabilities' to take their log."
        )
    return int(z.shape[1])


def check_differentiable(out: Tensor) -> None:
    """Refuse outputs with no autograd graph back to the input."""
    if not out.requires_grad:
        raise GradientError(
            "the model's outputs do not depend differentiably on its inputs (no autograd "
            "graph: a detach(), numpy or argmax inside forward?). Gradient attacks cannot run; "
            "use a black-box attack instead, or, for a non-differentiable preprocessing, "
            "declare it: preprocessing=<function>, preprocessing_backward='identity' (BPDA)."
        )


def check_input_gradient(grad: Tensor | None) -> None:
    """Refuse an input gradient that is missing or not finite."""
    if grad is None:
        raise GradientError(
            "the model's gradient with respect to its input is None: the output does not use "
            "the input through differentiable operations"
        )
    if not torch.isfinite(grad).all():
        raise GradientError(
            "the model's gradient with respect to its input contains NaN or infinite values "
            "(a sqrt or log of zero, or a division by zero, inside forward?)"
        )


def check_oracle_answer(out: Tensor, n: int, outputs: str, classes: int) -> Tensor:
    """An oracle's answer to ``n`` queries, checked: ``n`` integer labels in
    ``[0, classes)`` for a label oracle, scores of shape ``(n, classes)`` for a score oracle."""
    if outputs == "labels":
        if out.shape != (n,) or out.is_floating_point():
            raise ModelOutputError(
                f"a label oracle must return {n} integer labels, shape ({n},); got dtype "
                f"{out.dtype} shape {tuple(out.shape)}"
            )
        out = out.long()
        if n and (int(out.min()) < 0 or int(out.max()) >= classes):
            raise ModelOutputError(f"the oracle returned labels outside 0..{classes - 1}")
        return out
    if out.shape != (n, classes):
        raise ModelOutputError(
            f"a score oracle must return shape ({n}, {classes}); got {tuple(out.shape)}"
        )
    return out
