"""Certified radii of the base model by interval bound propagation (Gowal et al. 2018).

For an input ``x`` predicted as class ``y`` and a budget ``eps``, the inputs within ``eps``
of ``x`` (and inside the model's input box) are enclosed in a box, which is pushed through
the network layer by layer (:mod:`brittle.certify.layers`): an affine layer maps the box
of centre ``mu`` and radius ``r`` to the box of centre ``W mu + b`` and radius ``|W| r``
(Gowal et al. 2018, eq. 6), a monotone one maps ``[l, u]`` to ``[f(l), f(u)]`` (eq. 7).
The last linear layer is folded into the margin (the "elision" of Gowal et al., section 3):

    m_j(x') = z_y(x') - z_j(x') = (W_y - W_j) h(x') + (b_y - b_j),   j != y,

is bounded as one affine map of the last hidden layer ``h``, which is tighter than
``lower(z_y) - upper(z_j)``. If every ``m_j`` has a positive lower bound, no input within
``eps`` changes the prediction.

For an L2 ball the first affine map ``W x + b`` (after the preprocessing and any
flattening) is bounded exactly, ``W_i x +- eps ||W_i||_2`` row by row (the L2 ball's
interval), and intersected with the box the ball lies in; interval propagation goes on
from there. The certified radius is the largest ``eps`` whose margin bound is positive,
found by bisection (the bound only falls as ``eps`` grows: a larger box contains a
smaller one, and interval arithmetic keeps inclusion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.model import Model
from brittle.perturbation import Bounds, clip
from brittle.threat import Norm
from brittle.validation import as_tensor, check_positive, check_positive_integer

from .layers import Affine, Monotone, Network, Reshape, network_ops
from .result import Certificates

METHOD = "ibp"
"""The ``method`` of the certificates :func:`certify` returns."""
NORMS = (Norm.LINF, Norm.L2)
"""The norms bound propagation certifies."""
GROWTH_LIMIT = 64
"""How many times an unbounded input space's first radius (1) is doubled at most while the
bound still holds, before the bisection."""


def margin_bound(
    model: Model | Network,
    x: Tensor,
    label: Tensor,
    eps: float | Tensor,
    norm: str | Norm = "linf",
    bounds: Bounds | None = None,
) -> Tensor:
    """A lower bound, per sample, on ``min_{j != label} z_label(x') - z_j(x')`` over every
    ``x'`` within ``eps`` of ``x`` in ``norm`` (and inside ``bounds``, the model's input box
    by default): positive means no such ``x'`` changes the class from ``label``.

    ``eps``: one number or one per sample. ``model``: a Classifier or its
    :class:`~brittle.certify.layers.Network`.
    """
    network = model if isinstance(model, Network) else network_ops(model)
    if bounds is None:
        bounds = (-math.inf, math.inf) if isinstance(model, Network) else model.bounds
    norm = _norm(norm)
    radius = torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(len(x))
    return _margin_bound(network, x, label, radius, norm, bounds)


def certify(
    model: Model,
    x: Tensor,
    *,
    norm: str | Norm = "linf",
    y: Tensor | None = None,
    ids: Tensor | Sequence[int] | None = None,
    steps: int = 20,
    max_radius: float | None = None,
    batch_size: int = 256,
) -> Certificates:
    """The certified radius of each input of ``x`` for the model's own prediction, by
    bisection on ``eps`` with :func:`margin_bound`.

    ``label[i]`` is the model's clean prediction and ``radius[i]`` the largest ``eps``
    (within ``max_radius / 2**steps``, rounded down) at which the margin bound is positive:
    no input within it in ``norm``, inside the model's input box, is classified otherwise.
    The radius is 0 where even ``eps = 0`` is not certified (a tie) and, when the true
    labels ``y`` are given, where the prediction is wrong (the sample has no robustness to
    certify); the label stays the prediction. ``max_radius``: where the bisection starts;
    by default the diameter of the input box in ``norm`` (a radius that large covers the
    whole box), and for an unbounded box 1 doubled while the bound holds. A sample whose
    bound holds at ``max_radius`` gets ``max_radius``.

    The certificate is for the model as it is in eval mode (dropout off, batchnorm on its
    running statistics): the base model, not a smoothed one.
    """
    network = network_ops(model)
    norm = _norm(norm)
    check_positive_integer(steps, "steps")
    check_positive_integer(batch_size, "batch_size")
    if max_radius is not None:
        check_positive(max_radius, "max_radius")
    x = model.check_inputs(as_tensor(x, "x")).to(model.device, model.dtype)
    ids_t = torch.arange(len(x)) if ids is None else torch.as_tensor(ids, dtype=torch.long)
    if len(ids_t) != len(x):
        raise InputError(f"x has {len(x)} samples but ids has {len(ids_t)}; they must match")
    if y is not None:
        y = as_tensor(y, "y").to(model.device).long()
        if len(y) != len(x):
            raise InputError(f"x has {len(x)} samples but y has {len(y)} labels; they must match")
    start = max_radius if max_radius is not None else _diameter(model, norm)
    labels, radii = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            label = model.predict_scores(xb).argmax(1)
            radius = _bisect(network, xb, label, norm, model.bounds, start, steps)
            if y is not None:
                radius = torch.where(label == y[i : i + batch_size], radius, 0.0)
            labels.append(label)
            radii.append(radius)
    if not len(x):
        empty = torch.zeros(0, device=model.device)
        return Certificates(empty.long(), empty, norm, METHOD, ids_t)
    return Certificates(torch.cat(labels), torch.cat(radii), norm, METHOD, ids_t)


def _norm(norm: str | Norm) -> Norm:
    parsed = Norm.parse(norm)
    if parsed not in NORMS:
        raise InputError(
            f"bound propagation certifies the linf and l2 norms, not {parsed}; use --norm linf "
            "or l2"
        )
    return parsed


def _diameter(model: Model, norm: Norm) -> float | None:
    """The diameter of the model's input box in ``norm``; ``None`` when it is unbounded."""
    if not model.bounded:
        return None
    low, high = model.bounds
    shape = model.input_shape or ()
    width = torch.as_tensor(high) - torch.as_tensor(low)
    width = width.expand(shape) if shape else width
    return float(width.abs().max() if norm == Norm.LINF else width.square().sum().sqrt())


def _bisect(
    network: Network,
    x: Tensor,
    label: Tensor,
    norm: Norm,
    bounds: Bounds,
    start: float | None,
    steps: int,
) -> Tensor:
    """The largest radius per sample (to ``hi / 2**steps``) whose margin bound is positive."""

    def holds(eps: Tensor) -> Tensor:
        return _margin_bound(network, x, label, eps, norm, bounds) > 0

    n = len(x)
    if start is None:  # unbounded: double 1 while the bound holds
        hi = torch.ones(n, dtype=x.dtype, device=x.device)
        for _ in range(GROWTH_LIMIT):
            grow = holds(hi)
            if not bool(grow.any()):
                break
            hi = torch.where(grow, 2 * hi, hi)
    else:
        hi = torch.full((n,), start, dtype=x.dtype, device=x.device)
    top = holds(hi)
    lo = torch.zeros_like(hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = holds(mid)
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    radius = torch.where(top, hi, lo)
    return torch.where(holds(torch.zeros_like(lo)), radius, 0.0)


def _margin_bound(
    network: Network,
    x: Tensor,
    label: Tensor,
    eps: Tensor,
    norm: Norm,
    bounds: Bounds,
) -> Tensor:
    """:func:`margin_bound` with ``eps`` one per sample and the network read."""
    return class_margins(network, x, label, eps, norm, bounds).amin(1)


def class_margins(
    network: Network,
    x: Tensor,
    label: Tensor,
    eps: Tensor,
    norm: Norm,
    bounds: Bounds,
) -> Tensor:
    """Lower bounds ``(N, K - 1)`` on ``z_label - z_j`` for every ``j != label`` (in class
    order), over the inputs within ``eps`` (one per sample) of ``x``; differentiable in the
    network's weights (IBP training's specification, Gowal et al. 2018, eq. 8)."""
    e = eps.view(-1, *([1] * (x.ndim - 1)))
    lower = network.normalise(clip(x - e, bounds))
    upper = network.normalise(clip(x + e, bounds))
    ops = list(network.ops)
    margin = _margin_op(network, label)
    if margin is not None:
        ops.append(margin)
    first = _first_affine(ops) if norm == Norm.L2 else None
    if first is not None:
        ball = _l2_interval(network, ops, first, x, eps)
    for i, op in enumerate(ops):
        if isinstance(op, Affine):
            mid, rad = (upper + lower) / 2, (upper - lower) / 2
            centre, spread = op.forward(mid), op.magnitude(rad)
            lower, upper = centre - spread, centre + spread
        else:
            lower, upper = op.forward(lower), op.forward(upper)
        if i == first:
            lower, upper = torch.maximum(lower, ball[0]), torch.minimum(upper, ball[1])
    if margin is not None:
        return lower
    # no last linear layer to fold: z_y - z_j >= lower(z_y) - upper(z_j)
    others = _others(label, upper.shape[1])
    return lower.gather(1, label[:, None]) - upper.gather(1, others)


def _others(label: Tensor, k: int) -> Tensor:
    """Per sample, the classes other than ``label``, in order: ``(N, K - 1)``."""
    classes = torch.arange(k, device=label.device).expand(len(label), k)
    return classes[classes != label[:, None]].view(len(label), k - 1)


def _margin_op(network: Network, label: Tensor) -> Affine | None:
    """The last linear layer folded into the margins ``z_y - z_j``, ``j != y``, per sample:
    the rows ``W_y - W_j`` and offsets ``b_y - b_j`` (Gowal et al. 2018, section 3)."""
    w, b = network.last_weight, network.last_bias
    if w is None or b is None:
        return None
    others = _others(label, len(w))
    rows = w[label][:, None, :] - w[others]  # (N, K-1, H)
    offsets = b[label][:, None] - b[others]
    return Affine(
        "margin",
        lambda h: torch.einsum("nkh,nh->nk", rows, h) + offsets,
        lambda r: torch.einsum("nkh,nh->nk", rows.abs(), r),
        lambda v: (rows.square() * v[:, None, :]).sum(-1),
    )


def _first_affine(ops: Sequence[Affine | Monotone | Reshape]) -> int | None:
    """The index of the first affine operation when only reshapes come before it."""
    for i, op in enumerate(ops):
        if isinstance(op, Affine):
            return i
        if not isinstance(op, Reshape):
            return None
    return None


def _l2_interval(
    network: Network,
    ops: Sequence[Affine | Monotone | Reshape],
    first: int,
    x: Tensor,
    eps: Tensor,
) -> tuple[Tensor, Tensor]:
    """The exact interval of the first affine map over the L2 ball of radius ``eps`` around
    each input: ``z_i +- eps ||row_i||_2``, the row norms taken in input space (through the
    preprocessing's ``1 / std``)."""
    centre = network.normalise(x)
    inverse = torch.ones_like(x[:1])
    if network.std is not None:
        inverse = inverse / network.std.square()
    for op in ops[:first]:
        centre, inverse = op.forward(centre), op.forward(inverse)
    affine = ops[first]
    assert isinstance(affine, Affine)
    z = affine.forward(centre)
    spread = eps.view(-1, *([1] * (z.ndim - 1))) * affine.squared(inverse).clamp_min(0).sqrt()
    return z - spread, z + spread
