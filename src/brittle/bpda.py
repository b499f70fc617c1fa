"""Backward pass differentiable approximation (BPDA) of a non-differentiable preprocessing.

A defence that runs its inputs through a step function first (quantisation, JPEG, a
denoiser that rounds) has a gradient of zero almost everywhere, or none: gradient attacks
stand still, and the model looks robust without being so (Athalye, Carlini & Wagner 2018,
"Obfuscated gradients give a false sense of security", section 4.1). BPDA keeps the forward
pass and replaces the preprocessing ``g`` on the backward pass by a differentiable ``h`` with
``h(x) ~ g(x)``:

    forward:  f(g(x)),    backward:  grad_x f(g(x)) ~ J_h(x)^T grad_z f(z) at z = g(x).

For a ``g`` close to the identity (``g(x) ~ x``: quantisation, most input purifiers) ``h`` is
the identity and the gradient passes straight through: ``grad_z f(z)`` at ``z = g(x)``.

:func:`preprocessing_function` builds what :class:`~brittle.classifier.Classifier` runs for
``preprocessing=g, preprocessing_backward=...``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from brittle.errors import InputError

Transform = Callable[[Tensor], Tensor]
Backward = Literal["exact", "identity"] | Transform
"""How the backward pass goes through a preprocessing function: ``"exact"`` (autograd through
the function itself), ``"identity"`` (straight through) or a differentiable approximation."""
BACKWARDS = ("exact", "identity")


class _Approximated(torch.autograd.Function):
    """``g(x)`` forward; the vector-Jacobian product of ``h`` at ``x`` backward (the identity
    when ``h`` is ``None``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, g: Transform, h: Transform | None) -> Tensor:
        out = g(x)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InputError(
                f"a preprocessing with an approximated backward pass must return a tensor of "
                f"its input's shape {tuple(x.shape)}, got {got}; give preprocessing_backward"
                "='exact', or a preprocessing that keeps the shape"
            )
        ctx.save_for_backward(x)
        ctx.h = h
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        if ctx.h is None:
            return grad, None, None
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (approximated,) = torch.autograd.grad(ctx.h(leaf), leaf, grad)
        return approximated, None, None


def approximated(g: Transform, h: Transform | None) -> Transform:
    """``g`` on the forward pass, ``h``'s gradient on the backward pass (the identity's,
    straight through, when ``h`` is ``None``)."""

    def run(x: Tensor) -> Tensor:
        out: Tensor = _Approximated.apply(x, g, h)
        return out

    return run


def preprocessing_function(preprocessing: Any, backward: Backward) -> Transform | None:
    """What a classifier runs before its module for ``preprocessing`` and
    ``preprocessing_backward``: ``None`` unless ``preprocessing`` is a function.

    ``backward="exact"`` runs the function as it is (autograd through it); ``"identity"``
    and a differentiable function ``h`` give BPDA (:func:`approximated`). An approximation
    declared for a preprocessing that is no function (a mean and std) is refused.
    """
    if not (callable(backward) or backward in BACKWARDS):
        raise InputError(
            f"preprocessing_backward must be 'exact', 'identity' or a differentiable function "
            f"of the input, got {backward!r}"
        )
    if not callable(preprocessing):
        if backward != "exact":
            raise InputError(
                "preprocessing_backward approximates a preprocessing function's gradient: "
                "give preprocessing=<a function of the input batch>, or leave "
                "preprocessing_backward='exact'"
            )
        return None
    if backward == "exact":
        return preprocessing
    return approximated(preprocessing, None if backward == "identity" else backward)
