"""BPDA: a declared non-differentiable preprocessing runs forward as itself and backward as the
identity (or a given approximation): PGD stands still on the exact gradient (zero almost
everywhere) and succeeds through BPDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import PGD
from brittle.checks.masking import input_gradient_norms
from brittle.checks.probes import Probe, gradient_check
from brittle.errors import GradientError, InputError
from brittle.threat import Goal, Norm

D = 16
LEVELS = 8


def quantise(x: Tensor) -> Tensor:
    """Round to 8 levels of [0, 1]: a step function, whose gradient is zero almost
    everywhere."""
    return torch.round(x * (LEVELS - 1)) / (LEVELS - 1)


def _net() -> nn.Module:
    """Logits (0, W . (x - 1/2)) with W = +-1: a margin a budget of eps can move by 16 eps."""
    g = torch.Generator().manual_seed(0)
    w = torch.randint(0, 2, (D,), generator=g).float() * 2 - 1
    layer = nn.Linear(D, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.stack([torch.zeros(D), w]))
        layer.bias.copy_(torch.tensor([0.0, -0.5 * float(w.sum())]))
    return nn.Sequential(layer)


def _data(net: nn.Module, n: int = 64) -> tuple[Tensor, Tensor]:
    """Inputs and the labels the quantised network gives them (every sample correct)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, D, generator=g)
    with torch.no_grad():
        y = net(quantise(x)).argmax(1)
    return x, y


def _model(net: nn.Module, backward: object = "exact") -> Classifier:
    return Classifier(net, preprocessing=quantise, preprocessing_backward=backward)  # type: ignore[arg-type]


def test_the_forward_pass_is_the_preprocessing_itself() -> None:
    net = _net()
    x, _ = _data(net)
    expected = net(quantise(x))
    for backward in ("exact", "identity", lambda v: 2 * v):
        torch.testing.assert_close(_model(net, backward).logits(x), expected, rtol=0, atol=0)


def test_the_exact_gradient_vanishes_and_bpda_passes_it_straight_through() -> None:
    net = _net()
    x, y = _data(net)
    l1, _ = input_gradient_norms(_model(net), x, y, 32)
    assert float(l1.max()) == 0.0
    straight, doubled = _model(net, "identity"), _model(net, lambda v: 2 * v)
    leaf = x.clone().requires_grad_(True)
    # d loss / d x through the identity: d loss / d q at q = quantise(x), chained with dq/dx = I
    q = quantise(x).requires_grad_(True)
    (expected,) = torch.autograd.grad(nn.functional.cross_entropy(net(q), y, reduction="sum"), q)
    (got,) = torch.autograd.grad(
        nn.functional.cross_entropy(straight.logits(leaf), y, reduction="sum"), leaf
    )
    torch.testing.assert_close(got, expected)
    (twice,) = torch.autograd.grad(
        nn.functional.cross_entropy(doubled.logits(leaf), y, reduction="sum"), leaf
    )
    torch.testing.assert_close(twice, 2 * expected)  # the approximation h(x) = 2x: J_h = 2I


def test_pgd_stands_still_on_the_exact_gradient_and_succeeds_with_bpda() -> None:
    net = _net()
    x, y = _data(net)
    attack = PGD(0.25, steps=20, random_start=False)
    exact = attack(_model(net), x, y)
    assert torch.equal(exact.x_adv, x) and not bool(exact.success.any())
    probe = Probe(_model(net), x, y, torch.arange(len(x)), [], Goal.UNTARGETED, Norm.LINF, 0, 32)
    check = gradient_check(probe)
    assert check.warned and check.numbers["vanished"] == len(x)
    bpda = attack(_model(net, "identity"), x, y)
    assert float(bpda.success.float().mean()) >= 0.9


def test_bad_declarations_are_refused() -> None:
    net = _net()
    with pytest.raises(InputError, match="preprocessing_backward must be"):
        _model(net, "straight")
    with pytest.raises(InputError, match="give preprocessing=<a function"):
        Classifier(net, preprocessing=(0.5, 0.5), preprocessing_backward="identity")
    halve = Classifier(
        nn.Sequential(nn.Linear(D // 2, 2)),
        preprocessing=lambda v: v[:, : D // 2],
        preprocessing_backward="identity",
    )
    with pytest.raises(InputError, match="of its input's shape"):
        halve.check_outputs(torch.rand(4, D))


def test_a_preprocessing_outside_autograd_is_refused_unless_declared() -> None:
    """A function through numpy leaves no graph: the exact backward is refused before any
    attack (with the BPDA declaration in the message), the identity runs."""

    def numpy_quantise(x: Tensor) -> Tensor:
        return torch.from_numpy(np.round(x.detach().cpu().numpy() * 7) / 7).to(x)

    net = _net()
    x, y = _data(net)
    with pytest.raises(GradientError, match="preprocessing_backward='identity'"):
        PGD(0.25, steps=2)(Classifier(net, preprocessing=numpy_quantise), x, y)
    result = PGD(0.25, steps=20, random_start=False)(
        Classifier(net, preprocessing=numpy_quantise, preprocessing_backward="identity"), x, y
    )
    assert float(result.success.float().mean()) >= 0.9
