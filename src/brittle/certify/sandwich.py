"""The sandwich: per sample, the certified radius below the true robustness below the
smallest perturbation an attack found.

For a sample ``x`` of label ``y`` the true robustness is ``r(x) = inf {||d|| : f(x + d) !=
y}`` (0 when ``f(x) != y``). A certificate gives ``c(x) <= r(x)``; every adversarial example
found gives ``r(x) <= ||x_adv - x||``, so the smallest one found, ``a(x)``, bounds it from
above: ``c(x) <= r(x) <= a(x)``. Over the samples,

    P[c >= eps and certified class = y]  <=  P[r >= eps]  <=  P[a > eps],

and Fawzi et al. (2018, Theorem 1) bound ``P[r >= eps]`` for *any* classifier from above on
a generator's data. A certified radius above the attacked one on any sample contradicts the
inequality: a bug in the certifier or in the attack's verdict, which :func:`sandwich_check`
reports loudly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from brittle.attacks.result import AttackResult
from brittle.checks.outcome import PASSED, WARNING, SanityCheck
from brittle.threat import Norm

from .result import Certificates

RTOL = 1e-4
"""The relative slack of :func:`sandwich_check` (the store keeps distances in float32)."""
ATOL = 1e-6
"""The absolute slack of :func:`sandwich_check`."""
CURVE_POINTS = 101
"""How many budgets, evenly spaced from 0 to the largest, the curves are given at."""
CHECK = "certified_within_attacked"
"""The name of :func:`sandwich_check` among the report's sanity checks."""


@dataclass(frozen=True)
class Sandwich:
    """Per sample (ids in ``ids``): ``certified`` robustness (the certified radius where the
    certified class is the label, ``agrees``, else 0) and ``attacked`` robustness (the
    smallest perturbation in ``norm`` of an adversarial example found, 0 where the model
    already errs, ``inf`` where no attack succeeded); ``correct``: the model classified the
    clean sample right. ``method``: the certifier."""

    ids: Tensor
    certified: Tensor
    agrees: Tensor
    attacked: Tensor
    correct: Tensor
    norm: Norm
    method: str

    def shares(self, eps: Sequence[float]) -> tuple[list[float], list[float]]:
        """The share of samples with robustness at least each ``eps``: certified (the
        lower curve: the certified class is the label with radius ``>= eps``, Cohen et
        al.'s certified accuracy) and attacked (the upper curve: correctly classified, no
        adversarial example found within ``eps``, ``attacked > eps``)."""
        e = torch.as_tensor(list(eps), dtype=torch.float64)[None, :]
        n = max(len(self.ids), 1)
        certified = self.agrees[:, None] & (self.certified[:, None] >= e)
        attacked = self.correct[:, None] & (self.attacked[:, None] > e)
        return (certified.sum(0) / n).tolist(), (attacked.sum(0) / n).tolist()

    def violations(self) -> Tensor:
        """The positions of samples whose certified robustness exceeds the attacked one."""
        return (self.certified > self.attacked * (1 + RTOL) + ATOL).nonzero().flatten()


def certified_robustness(
    certificates: Certificates, ids: Tensor, y: Tensor
) -> tuple[Tensor, Tensor]:
    """Each sample's certified robustness for its label ``y`` (in the order of ``ids``) and
    whether its certified class is ``y``: the radius where it is, else 0 (an abstention or
    another class certifies no robustness)."""
    where = {int(i): k for k, i in enumerate(certificates.ids.tolist())}
    order = torch.tensor([where[int(i)] for i in ids.tolist()], dtype=torch.long)
    label, radius = certificates.label.cpu()[order], certificates.radius.cpu()[order]
    agrees = label == y.cpu()
    return torch.where(agrees, radius.double(), 0.0), agrees


def attacked_robustness(
    results: Sequence[AttackResult], ids: Tensor, norm: Norm
) -> tuple[Tensor, Tensor]:
    """Each sample's smallest perturbation in ``norm`` over the successful adversarial
    examples of ``results`` (rows of any attack, budget and target, matched by sample id;
    0 where the clean input is already misclassified, ``inf`` where nothing succeeded), and
    whether the model classified the clean sample right."""
    position = {int(i): k for k, i in enumerate(ids.tolist())}
    best = torch.full((len(ids),), math.inf, dtype=torch.float64)
    correct = torch.zeros(len(ids), dtype=torch.bool)
    column = {Norm.L2: "l2", Norm.LINF: "linf", Norm.L1: "l1"}.get(norm)
    if column is None:
        raise ValueError(f"the sandwich compares linf, l2 or l1 distances, not {norm}")
    for result in results:
        rows = torch.tensor([position.get(int(i), -1) for i in result.ids.tolist()])
        keep = rows >= 0
        distance = getattr(result, column).double()
        right = result.pred_clean == result.y
        found = torch.where(right, torch.where(result.success, distance, math.inf), 0.0)
        best.scatter_reduce_(0, rows[keep], found[keep], reduce="amin")
        correct[rows[keep]] = right[keep]
    return best, correct


def sandwich_check(sandwich: Sandwich) -> SanityCheck:
    """Every certified radius lies at or below the smallest perturbation found (up to
    :data:`RTOL` and :data:`ATOL`); a sample above it is a bug, said loudly with its id."""
    title = "No certified radius exceeds the smallest perturbation an attack found"
    bad = sandwich.violations()
    numbers: dict[str, Any] = {"method": sandwich.method, "violations": len(bad)}
    if not len(bad):
        return SanityCheck(CHECK, title, PASSED, "certified <= attacked on every sample", numbers)
    first = int(bad[0])
    sample = int(sandwich.ids[first])
    c, a = float(sandwich.certified[first]), float(sandwich.attacked[first])
    numbers.update({"sample_id": sample, "certified": c, "attacked": a})
    chance = (
        " (a smoothing certificate holds with probability 1 - alpha per sample, so a rare "
        "violation may also be that chance; many are a bug)"
        if sandwich.method.startswith("smoothing")
        else ""
    )
    return SanityCheck(
        CHECK,
        title,
        WARNING,
        f"BUG: {len(bad)} sample(s) have a certified radius above an adversarial example "
        f"found: sample {sample} is certified to {sandwich.norm} radius {c:.6g} by "
        f"{sandwich.method}, but an attack changed its class at distance {a:.6g}. No "
        "certificate can exceed a perturbation that works: the certifier or the attack's "
        f"verdict is wrong{chance}. Do not trust these certificates; please report it.",
        numbers,
    )


def sandwich_record(
    sandwich: Sandwich, largest: float, fawzi: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The sandwich as the report keeps it: the curves at :data:`CURVE_POINTS` budgets from
    0 to ``largest``, the Fawzi bound's rows (``eps``, ``share``) when given, and per sample
    the ids, both robustness values and the two flags (``null`` for infinity in the JSON)."""
    grid = torch.linspace(0, max(largest, 0.0), CURVE_POINTS).tolist()
    certified, attacked = sandwich.shares(grid)
    return {
        "norm": sandwich.norm.value,
        "method": sandwich.method,
        "eps": grid,
        "certified": certified,
        "attacked": attacked,
        "fawzi": list(fawzi or []),
        "samples": {
            "ids": sandwich.ids.tolist(),
            "certified": sandwich.certified.tolist(),
            "attacked": [None if math.isinf(a) else a for a in sandwich.attacked.tolist()],
            "agrees": sandwich.agrees.tolist(),
            "correct": sandwich.correct.tolist(),
        },
        "note": (
            "certified: share of samples whose certified class is the label with a radius "
            "at least eps (a lower bound on the true share); attacked: share of correctly "
            "classified samples with no adversarial example found within eps (an upper "
            "bound); fawzi: the most any classifier can reach on the generator's data"
        ),
    }
