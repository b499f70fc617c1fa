"""First-layer weights as images (Goodfellow et al. 2015, Figure 3).

Each row of a first layer's weight matrix ``W`` (shape ``(outputs, C * H * W)``) is a
filter over the input image: the unit's pre-activation is ``w^T x + b``, so reshaped to
``(C, H, W)`` the row shows which pixels push the unit up (positive) or down (negative).
Goodfellow et al. found the filters of an adversarially trained maxout network more
localised and more interpretable than those of a naively trained one.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.validation import check_integer, is_integer
from brittle.zoo.architectures import LogisticRegression, Maxout, MaxoutNetwork, SoftmaxRegression

SUPPORTED = ("softmax", "logistic", "maxout")
"""The zoo architectures whose first layer :func:`first_layer_filters` shows."""


def first_layer_filters(
    module: nn.Module | Classifier, *, max_units: int | None = None, channel: int | None = None
) -> np.ndarray:
    """The first layer's filters as images, ``(rows, cols, H, W)``.

    - ``softmax`` (:class:`~brittle.zoo.architectures.SoftmaxRegression`): one row of ``K`` class
      templates, row ``k`` of ``linear.weight`` ``(K, D)``;
    - ``logistic``: one row of one filter, ``w`` of ``z = w^T x + b``;
    - ``maxout`` (:class:`~brittle.zoo.architectures.MaxoutNetwork`): one row per unit of the first
      maxout layer, each with its ``pieces`` filters (Figure 3: "each row shows the filters
      for a single maxout unit"): ``linear.weight`` ``(units * pieces, D)`` viewed as
      ``(units, pieces, D)``; the first ``max_units`` units only, when given.

    ``D = C * H * W`` with ``(C, H, W) = module.input_shape``. A single-channel input needs no
    ``channel``; for several channels give the one to show. A :class:`~brittle.Classifier`
    stands for its module. Other architectures are refused (:class:`InputError`).
    """
    net = module.module if isinstance(module, Classifier) else module
    if max_units is not None and (not is_integer(max_units) or max_units < 1):
        raise InputError(f"max_units must be an integer >= 1 (or None for all), got {max_units!r}")
    filters = _filters(net)[:max_units]
    return filters[:, :, _channel(channel, filters.shape[2])]


def _filters(net: nn.Module) -> np.ndarray:
    """The first layer's filters as ``(rows, cols, C, H, W)``."""
    if isinstance(net, SoftmaxRegression | LogisticRegression):
        rows = _numpy(net.linear.weight)[None]
    elif isinstance(net, MaxoutNetwork):
        layer = net.net[2]
        assert isinstance(layer, Maxout)
        rows = _numpy(layer.linear.weight).reshape(layer.units, layer.pieces, -1)
    else:
        raise InputError(
            f"first-layer filters are shown for the zoo's {', '.join(SUPPORTED)} models, not "
            f"{type(net).__name__}; build one with brittle.zoo.build_model"
        )
    return rows.reshape(*rows.shape[:2], *net.input_shape)


def _channel(channel: int | None, channels: int) -> int:
    """The channel to show: the only one, or ``channel`` among ``channels``."""
    if channel is None:
        if channels > 1:
            raise InputError(
                f"the inputs have {channels} channels and a filter image shows one: pass "
                f"channel=0 to {channels - 1}"
            )
        return 0
    return check_integer(channel, "channel", 0, channels - 1)


def _numpy(weight: Tensor) -> np.ndarray:
    return np.array(weight.detach().cpu().numpy(), dtype=np.float64)
