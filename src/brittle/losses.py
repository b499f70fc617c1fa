"""Per-sample losses an attack ascends, from logits ``z`` and the class ``l`` each is about.

Each maps ``(logits (N, K), labels (N,))`` to ``(N,)``; larger means further from class
``l``. A targeted attack ascends their negation with ``l`` the target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from brittle.errors import InputError

Loss = Callable[[Tensor, Tensor], Tensor]
LossName = Literal["ce", "margin", "dlr"]


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """J(theta, x, l) = -log softmax(z)_l (Goodfellow 2015's J)."""
    return F.cross_entropy(logits, labels, reduction="none")


def margin(logits: Tensor, labels: Tensor) -> Tensor:
    """max_{j != l} z_j - z_l: positive exactly when the label is not l (Carlini & Wagner 2017)."""
    real = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return other - real


def dlr(logits: Tensor, labels: Tensor) -> Tensor:
    """-(z_l - max_{j != l} z_j) / (z_pi1 - z_pi3 + 1e-12), the difference of logits ratio of
    Croce & Hein 2020 (invariant to shifts and scales of the logits; needs K >= 3)."""
    if logits.shape[1] < 3:
        raise InputError("the DLR loss needs at least 3 classes")
    ordered = logits.sort(dim=1, descending=True).values
    return margin(logits, labels) / (ordered[:, 0] - ordered[:, 2] + 1e-12)


LOSSES: dict[str, Loss] = {"ce": cross_entropy, "margin": margin, "dlr": dlr}


def resolve_loss(loss: LossName | Loss) -> Loss:
    """A loss by name (``"ce"``, ``"margin"``, ``"dlr"``) or a callable as given."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)} or a callable")
    return LOSSES[loss]
