"""The epsilon sweep of logits along the fast gradient sign direction (Goodfellow et al. 2015,
Figure 4).

For an input ``x`` with label ``y``, the direction of the fast gradient sign method is taken
once, at ``x``:

    d = sign(grad_x J(theta, x, y)),   J the cross-entropy of the logits z,

and the logits are traced along the line

    z(eps) = z(x + eps * d),   eps in [-eps_max, eps_max]

(clipped to the model's box when asked: ``z(clip(x + eps * d))``). A linear model gives
exactly ``z(x) + eps * W d``, straight lines in eps; Goodfellow et al. saw the logits of a
maxout network to be piecewise linear too, and the wrong classes stable over a wide range of
eps: adversarial examples fill broad regions, not isolated pockets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.validation import as_tensor, check_integer, check_positive_integer


@dataclass(frozen=True)
class EpsilonSweep:
    """Logits along ``x + eps * sign(grad_x J)`` for each input (see the module's docstring).

    ``eps`` is ``(P,)``, ascending from ``-eps_max`` to ``eps_max`` (0 exactly when ``P`` is
    odd); ``logits`` is ``(N, P, K)``; ``predictions`` ``(N, P)`` their argmax; ``y`` ``(N,)``
    the true labels; ``clipped`` whether the inputs were clipped to the model's box.
    """

    eps: np.ndarray
    logits: np.ndarray
    predictions: np.ndarray
    y: np.ndarray
    clipped: bool

    @property
    def wrong(self) -> np.ndarray:
        """``(N, P)``: whether the prediction at each eps differs from the true label."""
        return np.asarray(self.predictions != self.y[:, None])


def epsilon_sweep(
    classifier: Classifier,
    x: Any,
    y: Any,
    eps_max: float,
    points: int = 101,
    clip: bool = False,
    batch_size: int = 1024,
) -> EpsilonSweep:
    """The logits of every class along the fast gradient sign line of each input of ``x``
    (a batch ``(N, C, H, W)``; one input as ``x[None]``), for ``points`` values of eps
    evenly spaced in ``[-eps_max, eps_max]``.

    The gradient is taken once per input, at ``x``, in eval mode, with respect to the input
    only (parameters accumulate no ``.grad``). ``clip=True`` clips every point to the
    classifier's box. The logits are computed in eval mode without gradients, in batches of
    about ``batch_size`` inputs.
    """
    if not isinstance(classifier, Classifier):
        raise InputError(
            f"the sweep needs a brittle.Classifier (gradients and logits), got "
            f"{type(classifier).__name__}"
        )
    grid = _grid(eps_max, points)
    check_positive_integer(batch_size, "batch_size")
    x = classifier.check_inputs(as_tensor(x, "x"))
    if not len(x):
        raise InputError("x holds no inputs: give a batch (N, C, H, W), one input as x[None]")
    classifier.check_outputs(x)
    y = classifier.check_labels(y, len(x))
    classifier.check_gradients(x)
    direction = sign_gradient(classifier, x, y)
    eps = torch.as_tensor(grid, dtype=x.dtype, device=x.device)
    chunks = [
        classifier.predict_logits(points_x.flatten(0, 1), batch_size).view(len(x), len(e), -1)
        for e, points_x in _lines(classifier, x, direction, eps, clip, batch_size)
    ]
    logits = torch.cat(chunks, dim=1)
    return EpsilonSweep(
        eps=grid,
        logits=logits.cpu().numpy(),
        predictions=logits.argmax(2).cpu().numpy(),
        y=y.cpu().numpy(),
        clipped=clip,
    )


def sign_gradient(classifier: Classifier, x: Tensor, y: Tensor) -> Tensor:
    """``sign(grad_x J(theta, x, y))`` per input, J the cross-entropy of the logits, in eval
    mode, differentiated with respect to the inputs only."""
    inputs = x.detach().clone().requires_grad_(True)
    with classifier.evaluation(), torch.enable_grad():
        loss = torch.nn.functional.cross_entropy(classifier.logits(inputs), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, inputs)
    return grad.sign()


def _grid(eps_max: float, points: int) -> np.ndarray:
    """``points`` values evenly spaced in ``[-eps_max, eps_max]``, symmetric, with 0 exactly
    when ``points`` is odd (``eps_max * (2i - (P - 1)) / (P - 1)``)."""
    check_integer(points, "points", low=2)
    try:
        top = float(eps_max)
    except (TypeError, ValueError):
        raise InputError(f"eps_max must be a number > 0, got {eps_max!r}") from None
    if not (math.isfinite(top) and top > 0):
        raise InputError(f"eps_max must be finite and > 0, got {eps_max!r}")
    steps = 2 * np.arange(points) - (points - 1)
    return top * steps / (points - 1)


def _lines(
    classifier: Classifier,
    x: Tensor,
    direction: Tensor,
    eps: Tensor,
    clip: bool,
    batch_size: int,
) -> Iterator[tuple[Tensor, Tensor]]:
    """The points ``x + eps * direction`` (clipped if asked), ``(N, P', C, H, W)`` for a few
    eps at a time, so that about ``batch_size`` inputs are in memory at once."""
    per_chunk = max(1, batch_size // len(x))
    for e in eps.split(per_chunk):
        shaped = e.view(1, -1, *([1] * (x.ndim - 1)))
        moved = x.unsqueeze(1) + shaped * direction.unsqueeze(1)
        yield e, classifier.clip(moved) if clip else moved
