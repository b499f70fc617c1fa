"""A classifier as the chain of operations that bound propagation steps through.

Interval bound propagation (Gowal et al. 2018) needs, for each layer, how a box of inputs
maps to a box of outputs. Three kinds of layer cover the zoo's networks:

- :class:`Affine` (``Linear``, ``Conv2d``, ``BatchNorm`` on its running statistics):
  ``z = W h + b``; a box of centre ``mu`` and radius ``r`` maps to the box of centre
  ``W mu + b`` and radius ``|W| r`` (Gowal et al. 2018, eq. 6);
- :class:`Monotone` (``ReLU``, ``LeakyReLU`` with a non-negative slope, ``Sigmoid``,
  ``Tanh``, max and average pooling): non-decreasing in every input, so ``[l, u]`` maps to
  ``[f(l), f(u)]`` (eq. 7);
- :class:`Reshape` (``Flatten``, ``Unflatten``, ``Identity``, ``Dropout`` in eval mode):
  moves values without changing them.

:func:`network_ops` reads them off a :class:`~brittle.classifier.Classifier`: its
preprocessing, then the layers of an ``nn.Sequential`` (nested ones included) or of the
zoo's softmax and logistic regressions, MLP and LeNet. Any other layer is refused with its
name, before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.model import Model

Map = Callable[[Tensor], Tensor]

SUPPORTED = (
    "Linear, Conv2d, BatchNorm1d/2d (running statistics), ReLU, LeakyReLU (slope >= 0), "
    "Sigmoid, Tanh, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, Flatten, "
    "Unflatten, Identity, Dropout"
)
"""The layers bound propagation steps through (named in the error for any other)."""


@dataclass(frozen=True)
class Affine:
    """``h -> W h + b``: ``forward`` with the bias, ``magnitude`` applies ``|W|`` and
    ``squared`` applies ``W * W`` (elementwise square), both without the bias."""

    name: str
    forward: Map
    magnitude: Map
    squared: Map


@dataclass(frozen=True)
class Monotone:
    """A map non-decreasing in every input: ``[l, u] -> [f(l), f(u)]``."""

    name: str
    forward: Map


@dataclass(frozen=True)
class Reshape:
    """A map that moves values without changing them (flatten, identity)."""

    name: str
    forward: Map


Op = Affine | Monotone | Reshape


@dataclass(frozen=True)
class Network:
    """A classifier as bound propagation sees it: the per-channel ``(mean, std)`` it
    normalises its inputs with (``None`` for none), its operations in order, and its last
    ``Linear`` layer apart (``weight``, ``bias``), folded into the margin when present."""

    mean: Tensor | None
    std: Tensor | None
    ops: tuple[Op, ...]
    last_weight: Tensor | None
    last_bias: Tensor | None

    def logits(self, x: Tensor) -> Tensor:
        """The classifier's logits, through the operations (what the bounds enclose)."""
        h = self.normalise(x)
        for op in self.ops:
            h = op.forward(h)
        if self.last_weight is not None and self.last_bias is not None:
            h = F.linear(h, self.last_weight, self.last_bias)
        return h

    def normalise(self, x: Tensor) -> Tensor:
        """``(x - mean) / std``, the classifier's preprocessing (``x`` when it has none)."""
        if self.mean is None or self.std is None:
            return x
        return (x - self.mean) / self.std


def network_ops(model: Model) -> Network:
    """The operations of ``model`` for bound propagation; an :class:`InputError` naming the
    first layer it cannot step through (or saying why the model cannot be bounded)."""
    if not isinstance(model, Classifier):
        raise InputError(
            f"bound propagation needs the network's weights: a white-box Classifier, not a "
            f"{type(model).__name__}; certify a black-box model with randomised smoothing"
        )
    if model.transform is not None:
        raise InputError(
            "the model's preprocessing is a function, which bound propagation cannot step "
            "through (its bounds are unknown); certify the network behind it, or certify the "
            "model with randomised smoothing"
        )
    layers = _layers(model.module, "")
    if model.outputs == "probabilities":
        if not layers or not isinstance(layers[-1][1], nn.Softmax):
            raise InputError(
                "the model returns probabilities without a final nn.Softmax layer; bound "
                "propagation needs the logits: give the network without its last softmax"
            )
        layers = layers[:-1]  # log softmax(z)_y - log softmax(z)_j = z_y - z_j: same margin
    ops = [_op(name, layer) for name, layer in layers]
    last_weight = last_bias = None
    if layers and isinstance(layers[-1][1], nn.Linear):
        linear = layers[-1][1]
        last_weight = linear.weight
        last_bias = (
            linear.bias if linear.bias is not None else last_weight.new_zeros(len(last_weight))
        )
        ops.pop()
    mean = std = None
    if model.preprocessing is not None:
        mean, std = model._mean, model._std
    return Network(mean, std, tuple(ops), last_weight, last_bias)


def _layers(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """``module`` as a flat list of named leaf layers, in order."""
    from brittle.zoo.architectures import (
        MLP,
        LeNet,
        LogisticRegression,
        MaxoutNetwork,
        SoftmaxRegression,
    )

    name = prefix or type(module).__name__
    if isinstance(module, nn.Sequential):
        found: list[tuple[str, nn.Module]] = []
        for child, layer in module.named_children():
            found += _layers(layer, f"{prefix}.{child}" if prefix else child)
        return found
    if isinstance(module, LogisticRegression):
        # logits [0, z]: the linear layer with a zero row above its own
        w, b = module.linear.weight, module.linear.bias
        two = nn.Linear(w.shape[1], 2).to(w.device, w.dtype)
        with torch.no_grad():
            two.weight.copy_(torch.cat([torch.zeros_like(w), w]))
            two.bias.copy_(torch.cat([torch.zeros_like(b), b]))
        return [("flatten", nn.Flatten()), ("linear", two)]
    if isinstance(module, SoftmaxRegression):
        return [("flatten", nn.Flatten()), ("linear", module.linear)]
    if isinstance(module, LeNet | MLP | MaxoutNetwork):  # forward is self.net(x)
        return _layers(module.net, "net")
    return [(name, module)]


def _op(name: str, layer: nn.Module) -> Op:
    """One layer as an operation; an :class:`InputError` naming a layer it cannot bound."""
    label = f"{name} ({type(layer).__name__})"
    if isinstance(layer, nn.Linear):
        w = layer.weight
        b = layer.bias if layer.bias is not None else None
        return Affine(
            label,
            lambda h: F.linear(h, w, b),
            lambda r: F.linear(r, w.abs()),
            lambda v: F.linear(v, w.square()),
        )
    if isinstance(layer, nn.Conv2d):
        conv, kernel = layer, layer.weight
        offset = layer.bias if layer.bias is not None else None
        return Affine(
            label,
            lambda h: conv._conv_forward(h, kernel, offset),
            lambda r: conv._conv_forward(r, kernel.abs(), None),
            lambda v: conv._conv_forward(v, kernel.square(), None),
        )
    if isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
        return _batchnorm(label, layer)
    if isinstance(layer, nn.LeakyReLU) and layer.negative_slope < 0:
        raise InputError(
            f"bound propagation cannot step through layer {label}: a negative slope makes it "
            "decreasing; supported layers: " + SUPPORTED
        )
    monotone = (
        nn.ReLU,
        nn.LeakyReLU,
        nn.Sigmoid,
        nn.Tanh,
        nn.AvgPool2d,
        nn.AdaptiveAvgPool2d,
    )
    if isinstance(layer, monotone):
        return Monotone(label, layer)
    if isinstance(layer, nn.MaxPool2d | nn.AdaptiveMaxPool2d):
        if layer.return_indices:
            raise InputError(
                f"bound propagation cannot step through layer {label}: it returns indices"
            )
        return Monotone(label, layer)
    if isinstance(layer, nn.Flatten | nn.Unflatten | nn.Identity):
        return Reshape(label, layer)
    if isinstance(layer, nn.Dropout):
        return Reshape(label, lambda h: h)
    raise InputError(
        f"bound propagation cannot step through layer {label}. It bounds nn.Sequential models "
        f"(and the zoo's softmax, logistic, mlp and lenet) made of: {SUPPORTED}. Rewrite the "
        "model as such a Sequential, or certify it with randomised smoothing"
    )


def _batchnorm(label: str, layer: nn.BatchNorm1d | nn.BatchNorm2d) -> Affine:
    """Batchnorm on its running statistics: ``s (h - mean) + beta`` per channel, with
    ``s = gamma / sqrt(var + eps)``."""
    if layer.running_mean is None or layer.running_var is None:
        raise InputError(
            f"bound propagation cannot step through layer {label}: it keeps no running "
            "statistics (track_running_stats=False), so its output depends on the batch"
        )
    mean, var = layer.running_mean, layer.running_var
    scale = torch.rsqrt(var + layer.eps)
    shift = -mean * scale
    if layer.affine:
        scale = scale * layer.weight
        shift = shift * layer.weight + layer.bias

    def channel(t: Tensor, h: Tensor) -> Tensor:
        return t.view(1, -1, *([1] * (h.ndim - 2)))

    return Affine(
        label,
        lambda h: h * channel(scale, h) + channel(shift, h),
        lambda r: r * channel(scale.abs(), r),
        lambda v: v * channel(scale.square(), v),
    )
