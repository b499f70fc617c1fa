"""Every other class as a target: the layout of Papernot 2016's source-target matrices.

(Given, random and least-likely targets are :class:`brittle.criteria.TargetedMisclassification`.)
"""

from __future__ import annotations

import torch
from torch import Tensor


def all_other_targets(x: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Repeat each sample once per other class: ``(x, y, t)`` with ``N * (K - 1)`` rows.

    Row ``i * (K - 1) + j`` holds sample ``i`` with its ``j``-th other class as target, the
    layout of Papernot 2016's source-target matrices.
    """
    k = num_classes
    others = torch.arange(k, device=y.device).expand(len(y), k)
    mask = others != y[:, None]
    t = others[mask].view(len(y), k - 1).reshape(-1)
    return x.repeat_interleave(k - 1, dim=0), y.repeat_interleave(k - 1), t
