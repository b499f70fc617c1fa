"""Jacobian-based dataset augmentation (Papernot et al. 2017, "Practical Black-Box Attacks
against Machine Learning", section 4.2 and section 6).

Each round rho grows the substitute's training set by one new point per chosen old point,
moved along the sign of the substitute's Jacobian row of the label the oracle gave it:

    S_{rho+1} = {x + lambda_rho * sgn(J_F(x)[O(x)]) : x in S_rho} U S_rho

with the periodic step size lambda_rho = lambda * (-1)^floor(rho / tau) (the sign flips every
``tau`` rounds, so that new points do not all walk away from the data), and the reservoir
variant: after ``sigma`` full rounds, only ``kappa`` points of S_rho, drawn uniformly without
replacement (what reservoir sampling draws), make new points.

The new points are computed once and appended once (no copy of the old set is overwritten in
place, the source of CleverHans' duplicated samples), and a new point equal to a point
already in the set (a zero gradient, or a step the box clips away) is not added: it would
cost a query and teach the substitute nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from brittle.perturbation import Bounds, clip
from brittle.randomness import sample_generator

RESERVOIR_STREAM = "substitute-reservoir"
"""The random stream of the reservoir draw of each round (a generator per (seed, round))."""


def step_size(lam: float, rho: int, tau: int | None) -> float:
    """lambda_rho = lambda * (-1)^floor(rho / tau): the step of round ``rho`` (0-based).

    ``tau=None`` keeps the sign of ``lam`` in every round (the paper's first experiments).
    """
    if tau is None:
        return lam
    return -lam if (rho // tau) % 2 else lam


def new_point_count(size: int, rho: int, kappa: int | None, sigma: int) -> int:
    """How many old points make new ones in round ``rho`` from a set of ``size`` points: all
    of them in the first ``sigma`` rounds (or always, without ``kappa``), then ``kappa`` (at
    most ``size``)."""
    if kappa is None or rho < sigma:
        return size
    return min(kappa, size)


def reservoir(size: int, count: int, seed: int, rho: int) -> Tensor:
    """``count`` of ``size`` indices drawn uniformly without replacement (every subset of that
    size equally likely, as reservoir sampling draws), sorted; the same for the same
    ``(seed, rho)``."""
    if count >= size:
        return torch.arange(size)
    generator = sample_generator(seed, rho, RESERVOIR_STREAM)
    return torch.randperm(size, generator=generator)[:count].sort().values


def label_gradient_signs(
    module: nn.Module, x: Tensor, labels: Tensor, batch_size: int = 1024
) -> Tensor:
    """sgn(J_F(x)[O(x)]) for every row: the sign of the gradient of the substitute's logit
    of each row's label with respect to that row.

    Each row's logits depend on that row only (the module is in eval mode), so the gradient
    of the sum of the chosen logits gives every row's Jacobian row in one backward pass per
    chunk of ``batch_size`` rows, whatever the number of classes.
    """
    signs = torch.empty_like(x)
    with torch.enable_grad():
        for start in range(0, len(x), batch_size):
            part = slice(start, start + batch_size)
            xb = x[part].detach().requires_grad_(True)
            chosen = module(xb).gather(1, labels[part].to(xb.device)[:, None]).sum()
            (grad,) = torch.autograd.grad(chosen, xb)
            signs[part] = grad.sign()
    return signs


def jacobian_augmentation(
    module: nn.Module,
    x: Tensor,
    labels: Tensor,
    step: float,
    bounds: Bounds,
    batch_size: int = 1024,
) -> Tensor:
    """The candidate new points x + step * sgn(J_F(x)[O(x)]), clipped to ``bounds`` (one
    per row of ``x``, in order)."""
    return clip(x + step * label_gradient_signs(module, x, labels, batch_size), bounds)


def unseen(candidates: Tensor, existing: Tensor) -> Tensor:
    """Which rows of ``candidates`` to add: those equal to no row of ``existing`` and to no
    earlier candidate (a boolean mask). Exact equality, row by row."""
    if not len(candidates):
        return torch.zeros(0, dtype=torch.bool, device=candidates.device)
    rows = torch.cat([existing.flatten(1), candidates.flatten(1)])
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    position = torch.arange(len(rows), device=rows.device)
    first = torch.full((int(inverse.max()) + 1,), len(rows), device=rows.device)
    first = first.scatter_reduce(0, inverse, position, reduce="amin")
    keep: Tensor = first[inverse] == position
    return keep[len(existing) :]
