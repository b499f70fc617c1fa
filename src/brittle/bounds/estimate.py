"""The record of a robustness estimate (:class:`RobustnessEstimate`) and what it says of the
attacks that made it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from brittle.attacks.base import Attack

Quantity = Literal["r_Z", "r_in", "r_unc"]


def json_float(value: float) -> float | None:
    """A float for strict JSON: ``None`` for inf or NaN."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True, eq=False)
class RobustnessEstimate:
    """Per-sample robustness values of one kind, and how they were found.

    ``values`` ``(N,)``: each sample's smallest verified change (``inf`` where no search
    changed the label). ``adversarial``: each sample's point at that change: latent codes for
    r_Z and r_in (g(adversarial) is the image for r_in), images for r_unc; the clean point
    where none was found. ``scale``: the mean L2 norm the values are normalised by, over all
    N samples searched: mean ||z|| for r_Z, mean ||x|| (x = g(z)) for r_in and r_unc.
    """

    quantity: Quantity
    values: Tensor
    adversarial: Tensor
    scale: float
    normalised_by: str
    method: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> Tensor:
        """Which samples some search flipped (a finite value)."""
        return torch.isfinite(self.values)

    @property
    def success_rate(self) -> float:
        """The share of samples with a verified change."""
        return float(self.success.float().mean())

    @property
    def failures(self) -> int:
        """How many samples no search flipped (their value is inf)."""
        return int((~self.success).sum())

    @property
    def median(self) -> float:
        """The median over all samples, failures counted as inf (the lower middle value)."""
        return float(self.values.median())

    @property
    def normalised(self) -> Tensor:
        """Per-sample values divided by :attr:`scale`."""
        return self.values / self.scale

    @property
    def normalised_median(self) -> float:
        """:attr:`median` / :attr:`scale`."""
        return self.median / self.scale

    def as_json(self) -> dict[str, Any]:
        """The summary, JSON-ready (no per-sample tensors; inf as ``None``)."""
        return {
            "quantity": self.quantity,
            "n": len(self.values),
            "found": len(self.values) - self.failures,
            "success_rate": self.success_rate,
            "median": json_float(self.median),
            "normalised_median": json_float(self.normalised_median),
            "scale": self.scale,
            "normalised_by": self.normalised_by,
            "method": self.method,
            "config": self.config,
        }


def describe_attacks(attacks: Sequence[Attack]) -> list[dict[str, Any]]:
    return [{"name": a.name, "params": a.config()} for a in attacks]


def attack_names(attacks: Sequence[Attack]) -> str:
    return " and ".join(a.name for a in attacks)
