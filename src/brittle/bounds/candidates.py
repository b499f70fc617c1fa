"""Candidates of a robustness search: the closest verified adversarial point per sample
(:class:`Closest`), the attacks' results refined by bisection, random rays for the samples
no attack flipped, and the work cut into chunks of samples."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from brittle.attacks.base import Attack
from brittle.classifier import Classifier
from brittle.perturbation import broadcast_view
from brittle.randomness import per_sample

from .bisection import ray_search, refine_segment

Measure = Callable[[Tensor], Tensor]
"""Maps candidate points ``(N, ...)`` to the distance the estimate reports ``(N,)``."""

BATCH_SIZE = 256
"""Samples searched at once (the attacks' Jacobians grow with it)."""
_RAY_SEED = 0
"""The seed of the fallback rays' directions, drawn per sample id."""


def l2_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per row, ||a - b||_2."""
    return (a - b).flatten(1).norm(dim=1)


@dataclass
class Closest:
    """Per sample the closest verified adversarial point so far, and its distance."""

    points: Tensor
    distance: Tensor

    @classmethod
    def none(cls, clean: Tensor) -> Closest:
        """No candidate yet: the clean points, at distance inf."""
        inf = torch.full((len(clean),), math.inf, dtype=clean.dtype, device=clean.device)
        return cls(clean.clone(), inf)

    def offer(
        self, points: Tensor, distance: Tensor, ok: Tensor, rows: Tensor | None = None
    ) -> None:
        """Keep the candidates (of the rows ``rows``) that are ``ok`` and closer."""
        idx = torch.arange(len(self.distance), device=points.device) if rows is None else rows
        better = ok & (distance < self.distance[idx])
        self.points[idx] = torch.where(broadcast_view(better, points), points, self.points[idx])
        self.distance[idx] = torch.where(better, distance, self.distance[idx])


def offer_refined(
    best: Closest,
    model: Classifier,
    clean: Tensor,
    end: Tensor,
    found: Tensor,
    y: Tensor,
    measure: Measure,
    tolerance: float,
    max_steps: int,
) -> None:
    """Offer ``end`` and its bisection along the segment from ``clean``, each verified."""
    refined = refine_segment(model, clean, end, found, y, tolerance, max_steps)
    for points in (end, refined):
        verified = found & (model.predict(points) != y)
        best.offer(points, measure(points), verified)


@dataclass(frozen=True)
class Rays:
    """The fallback of a search for the samples its attacks did not flip: ``count`` random
    Gaussian directions per sample (drawn per sample id), each a :func:`ray_search` from
    t = ``start`` with ``doublings`` doublings."""

    count: int
    start: float
    doublings: int


def closest_change(
    model: Classifier,
    x: Tensor,
    ids: Tensor,
    attacks: Sequence[Attack],
    refinement: tuple[float, int],
    extra: Tensor | None = None,
    rays: Rays | None = None,
) -> tuple[Tensor, Tensor]:
    """Each attack on every sample (through the attack base), each result refined by
    bisection; then ``extra`` candidates; then ``rays`` on the samples still not flipped.
    Per sample the smallest verified L2 change. Returns (distances, points)."""
    y = model.predict(x)
    best = Closest.none(x)

    def measure(points: Tensor) -> Tensor:
        return l2_distance(points, x)

    for attack in attacks:
        result = attack(model, x, y, ids=ids)
        offer_refined(best, model, x, result.x_adv, result.success, y, measure, *refinement)
    if extra is not None:
        found = torch.ones_like(y, dtype=torch.bool)
        offer_refined(best, model, x, extra, found, y, measure, *refinement)
    if rays is not None:
        _offer_rays(best, model, x, y, ids, rays, refinement[0])
    return best.distance, best.points


def _offer_rays(
    best: Closest,
    model: Classifier,
    x: Tensor,
    y: Tensor,
    ids: Tensor,
    rays: Rays,
    tolerance: float,
) -> None:
    """:class:`Rays` on the rows of ``best`` without a candidate, each verified."""
    shape = x.shape[1:]

    def draw(g: torch.Generator) -> Tensor:
        return torch.randn(shape, generator=g)

    for k in range(rays.count):
        todo = torch.isinf(best.distance).nonzero().squeeze(1)
        if not len(todo):
            break
        u = per_sample(_RAY_SEED, ids[todo], ("rays", k), draw, x.device).to(x)
        start = torch.full((len(todo),), rays.start, dtype=x.dtype, device=x.device)
        points = ray_search(model, x[todo], y[todo], u, start, rays.doublings, tolerance)
        verified = model.predict(points) != y[todo]
        best.offer(points, l2_distance(points, x[todo]), verified, todo)


def by_chunks(
    n: int, batch_size: int, work: Callable[[slice], tuple[Tensor, ...]]
) -> tuple[Tensor, ...]:
    """``work`` on consecutive slices of at most ``batch_size`` samples; each of its outputs
    concatenated over the slices."""
    parts = [work(slice(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    return tuple(torch.cat(list(outputs)) for outputs in zip(*parts, strict=True))
