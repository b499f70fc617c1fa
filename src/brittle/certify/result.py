"""What a certifier returns: per sample, the certified class and the radius it holds within."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from brittle.threat import Norm

ABSTAIN = -1
"""The label of a sample the certifier abstains on (no class is certified)."""


@dataclass(frozen=True)
class Certificates:
    """Per-sample certificates, one row per input.

    ``label[i]`` is the class certified for input ``i`` (:data:`ABSTAIN` when none is), and
    ``radius[i]`` the radius in ``norm`` within which every input gets ``label[i]``: a lower
    bound on the input's true robustness for the classifier that ``method`` certifies (the
    smoothed classifier for randomised smoothing, the base model for bound propagation). An
    abstention has radius 0. ``ids`` are the samples' ids, which seeded their random draws.
    """

    label: Tensor
    radius: Tensor
    norm: Norm
    method: str
    ids: Tensor

    def __post_init__(self) -> None:
        rows = {int(t.shape[0]) for t in (self.label, self.radius, self.ids)}
        if len(rows) != 1:
            raise ValueError(f"certificates need one row per input; got row counts {rows}")
        if bool((self.radius < 0).any()) or bool(torch.isnan(self.radius).any()):
            raise ValueError("a certified radius is never negative or NaN")
        abstained = self.label == ABSTAIN
        if bool((self.radius[abstained] != 0).any()):
            raise ValueError("an abstention certifies nothing: its radius must be 0")

    def __len__(self) -> int:
        return int(self.label.shape[0])


def certified_accuracy(certificates: Certificates, y: Tensor, radii: Sequence[float]) -> Tensor:
    """The share of samples whose certified class is the true one with radius at least r, for
    each r in ``radii`` (Cohen et al. 2019, section 4): an abstention counts as wrong at every
    radius, including 0."""
    y = y.to(certificates.label.device)
    correct = certificates.label == y
    r = torch.as_tensor(list(radii), dtype=certificates.radius.dtype, device=y.device)
    held = certificates.radius.unsqueeze(1) >= r.unsqueeze(0)
    return (correct.unsqueeze(1) & held).float().mean(dim=0)
