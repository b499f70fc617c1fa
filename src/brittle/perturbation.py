"""Perturbation norms and projections onto a budget and the input box.

L0 is measured as the *fraction* of features changed (JSMA's "distortion"). An L0 budget
given as a fraction ``u`` of ``d`` features allows ``floor(u * d + 1e-9)`` features:
:func:`max_features` is the one place where that rounding is done.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from brittle.threat import Norm

Bound = float | Tensor
Bounds = tuple[Bound, Bound]
"""An input box: two numbers (possibly infinite), or two tensors of one input's shape."""

_L0_ROUNDING_SLACK = 1e-9


def broadcast_view(values: Tensor, like: Tensor) -> Tensor:
    """Per-sample ``values`` of shape ``(N,)`` as ``(N, 1, ..., 1)``, to broadcast over ``like``."""
    return values.view(-1, *([1] * (like.ndim - 1)))


def clip(x: Tensor, bounds: Bounds) -> Tensor:
    """``x`` clipped to the box ``bounds`` (scalar or per feature)."""
    low, high = bounds
    if isinstance(low, Tensor) or isinstance(high, Tensor):
        low_t = torch.as_tensor(low, dtype=x.dtype, device=x.device)
        high_t = torch.as_tensor(high, dtype=x.dtype, device=x.device)
        return torch.maximum(torch.minimum(x, high_t), low_t)
    return x.clamp(low, high)


def box_diameter(norm: Norm, bounds: tuple[float, float], features: int) -> float:
    """The largest perturbation the box allows in ``norm``: the budget of an unbounded attack."""
    width = bounds[1] - bounds[0]
    sizes = {
        Norm.LINF: width,
        Norm.L2: width * features**0.5,
        Norm.L1: width * features,
        Norm.L0: 1.0,  # every feature
    }
    return sizes[norm]


def max_features(fraction: float, num_features: int) -> int:
    """Number of features a budget of ``fraction`` of ``num_features`` allows (rounded down)."""
    return math.floor(fraction * num_features + _L0_ROUNDING_SLACK)


def norms(delta: Tensor) -> dict[str, Tensor]:
    """Per-sample ``l0`` (fraction of features changed), ``l1``, ``l2`` and ``linf`` of ``delta``."""
    flat = delta.flatten(1)
    return {
        "l0": (flat != 0).float().mean(1),
        "l1": flat.abs().sum(1),
        "l2": flat.norm(p=2, dim=1),
        "linf": flat.abs().amax(1) if flat.shape[1] else flat.new_zeros(flat.shape[0]),
    }


def norm_of(delta: Tensor, norm: Norm) -> Tensor:
    """Per-sample size of ``delta`` in ``norm`` (L0 as a fraction of features)."""
    return norms(delta)[norm.value]


def _project_l1(delta: Tensor, eps: Tensor) -> Tensor:
    """Euclidean projection of each row onto the L1 ball of radius ``eps`` (Duchi et al. 2008).

    Soft-thresholds |delta| by the theta that makes the L1 norm equal eps; each coordinate only
    moves towards zero, so a perturbation inside a box around ``x`` stays inside it.
    """
    flat = delta.flatten(1)
    absd = flat.abs()
    inside = absd.sum(1) <= eps  # rows already inside are kept below (no host sync here)
    mu, _ = absd.sort(dim=1, descending=True)
    cumsum = mu.cumsum(1)
    ranks = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=flat.dtype)
    cond = mu - (cumsum - eps[:, None]) / ranks > 0
    rho = cond.float().cumsum(1).argmax(1)  # last index where cond holds
    theta = (cumsum.gather(1, rho[:, None]).squeeze(1) - eps) / (rho + 1).to(flat.dtype)
    projected = flat.sign() * (absd - theta[:, None]).clamp_min(0)
    out = torch.where(inside[:, None], flat, projected)
    return out.view_as(delta)


def _project_l0(delta: Tensor, fraction: float) -> Tensor:
    """Keep the ``max_features(fraction, d)`` largest |delta| entries of each row, zero the rest."""
    flat = delta.flatten(1)
    k = max_features(fraction, flat.shape[1])
    if k >= flat.shape[1]:
        return delta
    if k == 0:
        return torch.zeros_like(delta)
    keep = flat.abs().topk(k, dim=1).indices
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, keep, True)
    return (flat * mask).view_as(delta)


def project(
    x: Tensor,
    x_adv: Tensor,
    norm: Norm,
    eps: float | Tensor | None,
    bounds: Bounds,
) -> Tensor:
    """Project ``x_adv`` onto {x + delta : ||delta||_norm <= eps} intersected with the box.

    ``eps=None`` means no budget (box only). ``eps`` may be per sample. The box is applied
    first; the ball projections that follow only shrink each coordinate of the perturbation
    towards zero, so the result stays in the box (a last clamp removes float rounding, which
    can only shrink the perturbation further). Samples already inside the box and the budget
    come back bit for bit: a minimal attack's point just past the boundary is not moved by
    rounding.
    """
    boxed = clip(x_adv, bounds)
    if eps is None:
        return boxed
    if norm is Norm.LINF:
        e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
        e = broadcast_view(e, x) if e.ndim else e
        return clip(torch.minimum(torch.maximum(boxed, x - e), x + e), bounds)
    delta = boxed - x
    if norm is Norm.L0:
        fractions = torch.as_tensor(eps, dtype=torch.float64).flatten().tolist()
        if len(set(fractions)) > 1:
            shrunk = torch.cat([_project_l0(delta[i : i + 1], f) for i, f in enumerate(fractions)])
        else:
            shrunk = _project_l0(delta, float(fractions[0])) if fractions else delta
    else:
        e = torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(x.shape[0])
        if norm is Norm.L2:
            size = delta.flatten(1).norm(dim=1)
            factor = torch.where(size > e, e / size.clamp_min(1e-12), torch.ones_like(size))
            shrunk = delta * broadcast_view(factor, x)
        else:
            shrunk = _project_l1(delta, e)
    inside = broadcast_view(within_budget(delta, norm, eps), x)
    return torch.where(inside, boxed, clip(x + shrunk, bounds))


def within_budget(delta: Tensor, norm: Norm, eps: float | Tensor, rtol: float = 1e-5) -> Tensor:
    """Per-sample check ``||delta|| <= eps`` up to float rounding (used to verify results)."""
    if norm is Norm.L0:
        # compare counts of changed features, not float fractions
        flat = delta.flatten(1)
        e = torch.as_tensor(eps, dtype=torch.float64, device=delta.device)
        allowed = torch.floor(e * flat.shape[1] + _L0_ROUNDING_SLACK)
        return (flat != 0).sum(1) <= allowed
    size = norm_of(delta, norm)
    e = torch.as_tensor(eps, dtype=size.dtype, device=size.device)
    return size <= e * (1 + rtol) + 1e-6
