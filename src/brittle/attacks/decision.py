"""What the decision-based attacks (HopSkipJump, RayS) share: the one question they ask the
model, and the box as flat rows.

A decision-based attack sees the predicted label only (``Capability.ORACLE_LABELS``): its
only question is whether an input meets the goal, phi(x) = 1 if it does, else 0. Each asks it
of a batch of rows through ``run.access`` (one counted query per row), so the access layer
holds every sample to its ``max_queries``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import AttackRun


def adversarial(run: AttackRun, x: Tensor, rows: Tensor) -> Tensor:
    """phi: whether each input of ``x`` (flat ``(k, D)`` or shaped as inputs) meets the goal
    of its sample ``rows``, from the model's label alone (one query each)."""
    shaped = x.view(len(x), *run.x.shape[1:])
    return run.goal_met(run.outputs(shaped, rows), rows)


def flat_box(run: AttackRun) -> tuple[Tensor, Tensor]:
    """The box's lower and upper bounds as flat rows ``(D,)`` in the inputs' dtype and device
    (scalar bounds expanded, per-feature bounds flattened)."""
    low, high = run.access.bounds
    shape = run.x.shape[1:]

    def row(bound: object) -> Tensor:
        t = torch.as_tensor(bound, dtype=run.x.dtype, device=run.x.device)
        return t.expand(shape).reshape(-1)

    return row(low), row(high)


def clip_rows(x: Tensor, box: tuple[Tensor, Tensor]) -> Tensor:
    """Flat rows ``x`` ``(..., D)`` clipped to the box of :func:`flat_box`."""
    low, high = box
    return torch.maximum(torch.minimum(x, high), low)


def count(mask: Tensor) -> int:
    """How many entries of ``mask`` are true: the one host sync that sizes a model call."""
    return int(mask.sum())
