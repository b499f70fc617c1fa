"""Choosing target classes for targeted attacks: given, random, least likely, or all others."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from brittle.errors import InputError

TargetSpec = Tensor | np.ndarray | Literal["random", "least_likely"] | None


def random_targets(y: Tensor, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random class different from each label."""
    offset = torch.randint(1, num_classes, y.shape, generator=generator, device="cpu").to(y.device)
    return (y + offset) % num_classes


def least_likely_targets(clean_logits: Tensor) -> Tensor:
    """The class the model finds least likely on the clean input (Kurakin et al. 2017)."""
    return clean_logits.argmin(dim=1)


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


def resolve_targets(
    target: TargetSpec,
    y: Tensor,
    num_classes: int,
    clean_logits: Tensor | None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Turn a target specification into a tensor of classes, one per sample, checked.

    A given tensor must have one class per input, in range, and differ from the label.
    """
    if isinstance(target, str):
        if target == "random":
            return random_targets(y, num_classes, generator)
        if target == "least_likely":
            if clean_logits is None:
                raise InputError("least_likely targets need the clean logits")
            return least_likely_targets(clean_logits)
        raise InputError(f"unknown target {target!r}: give a tensor, 'random' or 'least_likely'")
    if isinstance(target, np.ndarray):
        target = torch.from_numpy(target)
    if not isinstance(target, Tensor):
        raise InputError(
            f"target must be a tensor of classes, 'random' or 'least_likely'; got {type(target).__name__}"
        )
    if target.is_floating_point() or target.ndim != 1 or target.shape[0] != y.shape[0]:
        raise InputError(
            f"target must be integer classes of shape ({y.shape[0]},), got dtype {target.dtype} "
            f"shape {tuple(target.shape)}"
        )
    target = target.to(y.device, torch.long)
    if len(target) and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise InputError(
            f"target has classes in [{int(target.min())}, {int(target.max())}] but the model has "
            f"{num_classes} classes"
        )
    same = target == y
    if bool(same.any()):
        first = int(same.nonzero()[0, 0])
        raise InputError(
            f"target equals the true label for {int(same.sum())} sample(s) (first: index {first}); "
            "a targeted attack must aim at another class"
        )
    return target
