"""FGSM / FGM (Goodfellow, Shlens & Szegedy 2015): closed forms on linear models, and the
invariants every result must satisfy on random small models.

Closed form (section 3): with logits Wx + b, the cross-entropy gradient with respect to x is
W^T (softmax(Wx + b) - e_y); with two classes it is (1 - p_y)(w_t - w_y), t the other class,
so x' = clip(x + eps * sign(w_t - w_y)) whatever the probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import FGSM, AttackResult
from brittle.attacks.base import TargetSpec
from brittle.threat import Norm

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- helpers
def binary_linear(d: int, seed: int) -> nn.Linear:
    """Two-class linear model whose weight rows differ by at least 0.03 in every coordinate.

    The separation keeps sign(w_t - w_y) unambiguous in float32 (the autograd gradient is
    p_t w_t - (1 - p_y) w_y, not exactly (1 - p_y)(w_t - w_y)); the small scale keeps p_y
    away from 1, where the gradient would underflow.
    """
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(d, generator=g) * 0.3
    gap = (torch.rand(d, generator=g) * 0.3 + 0.1) * torch.where(
        torch.rand(d, generator=g) < 0.5, -1.0, 1.0
    )
    lin = nn.Linear(d, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.stack([w0, w0 + gap]))
        lin.bias.copy_(torch.randn(2, generator=g) * 0.1)
    return lin


def multiclass_linear(d: int, k: int, seed: int) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(d, k)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(k, d, generator=g) * 0.5)
        lin.bias.copy_(torch.randn(k, generator=g) * 0.1)
    return lin


def ce_gradient(lin: nn.Linear, x: Tensor, labels: Tensor) -> Tensor:
    """Analytic grad_x CE(Wx + b, labels) = W^T (softmax - onehot), in float64."""
    w = lin.weight.detach().double()
    b = lin.bias.detach().double()
    p = torch.softmax(x.double() @ w.T + b, dim=1)
    return (p - F.one_hot(labels, w.shape[0]).double()) @ w


def random_inputs(n: int, shape: tuple[int, ...], seed: int) -> Tensor:
    """Uniform inputs in [0, 1] with some features exactly on the box edges."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    edge = torch.rand(n, *shape, generator=g)
    x = torch.where(edge < 0.1, torch.zeros_like(x), x)
    return torch.where(edge > 0.9, torch.ones_like(x), x)


def project_l1_reference(v: np.ndarray, eps: float) -> np.ndarray:
    """Euclidean projection onto the L1 ball by bisection on the soft threshold (float64)."""
    if np.abs(v).sum() <= eps:
        return v
    lo, hi = 0.0, float(np.abs(v).max())
    for _ in range(200):
        theta = (lo + hi) / 2
        if np.clip(np.abs(v) - theta, 0, None).sum() > eps:
            lo = theta
        else:
            hi = theta
    return np.sign(v) * np.clip(np.abs(v) - hi, 0, None)


def box_then_ball(x: Tensor, step: Tensor, norm: str, eps: float) -> Tensor:
    """Reference projection of x + step: clip to [0, 1], then onto the eps-ball around x."""
    delta = (x + step).clamp(0, 1) - x
    flat = delta.flatten(1).double()
    if norm == "l2":
        size = flat.norm(dim=1, keepdim=True)
        flat = torch.where(size > eps, flat * eps / size, flat)
    else:
        flat = torch.stack([torch.from_numpy(project_l1_reference(r.numpy(), eps)) for r in flat])
    return x + flat.float().view_as(x)


# ---------------------------------------------------------------------------- closed forms
@SETTINGS
@given(
    d=st.integers(1, 20),
    n=st.integers(1, 6),
    eps=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_linear_binary_closed_form(d: int, n: int, eps: float, seed: int) -> None:
    lin = binary_linear(d, seed)
    x = random_inputs(n, (d,), seed)
    y = torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(seed))
    w = lin.weight.detach()
    direction = torch.sign(w[1 - y] - w[y])  # sign(w_t - w_y), t the other class
    expected = (x + eps * direction).clamp(0, 1)

    untargeted = FGSM(eps)(Classifier(lin), x, y)
    torch.testing.assert_close(untargeted.x_adv, expected, atol=1e-6, rtol=0)
    # with two classes the targeted step towards t = 1 - y is the same move:
    # x - eps * sign(grad J(x, t)) = x - eps * sign((1 - p_t)(w_y - w_t))
    targeted = FGSM(eps, targeted=True)(Classifier(lin), x, y, target=1 - y)
    torch.testing.assert_close(targeted.x_adv, expected, atol=1e-6, rtol=0)


def test_linear_binary_gradient_is_goodfellow_formula() -> None:
    """grad_x CE = (1 - p_y)(w_t - w_y): the formula the closed form rests on."""
    lin = binary_linear(7, 3).double()
    x = torch.rand(5, 7, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 1, 0, 1])
    (grad,) = torch.autograd.grad(F.cross_entropy(lin(x), y, reduction="sum"), x)
    p_y = torch.softmax(lin(x), 1).gather(1, y[:, None])
    w = lin.weight.detach()
    torch.testing.assert_close(grad, (1 - p_y) * (w[1 - y] - w[y]))


@SETTINGS
@given(
    d=st.integers(2, 16),
    k=st.integers(3, 6),
    n=st.integers(1, 6),
    eps=st.floats(0.01, 0.5),
    seed=st.integers(0, 10_000),
    targeted=st.booleans(),
)
def test_linear_multiclass_linf_closed_form(
    d: int, k: int, n: int, eps: float, seed: int, targeted: bool
) -> None:
    """Untargeted: clip(x + eps sign(grad J(x, y))); targeted: clip(x - eps sign(grad J(x, t)))."""
    lin = multiclass_linear(d, k, seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = random_inputs(n, (d,), seed)
    y = torch.randint(0, k, (n,), generator=g)
    t = (y + torch.randint(1, k, (n,), generator=g)) % k
    if targeted:
        grad = ce_gradient(lin, x, t)
        expected = (x - eps * torch.sign(grad).float()).clamp(0, 1)
        res = FGSM(eps, targeted=True)(Classifier(lin), x, y, target=t)
    else:
        grad = ce_gradient(lin, x, y)
        expected = (x + eps * torch.sign(grad).float()).clamp(0, 1)
        res = FGSM(eps)(Classifier(lin), x, y)
    # compare where the sign is determined in float32
    clear = grad.abs() > 1e-4 * grad.abs().amax(1, keepdim=True).clamp_min(1e-30)
    torch.testing.assert_close(res.x_adv[clear], expected[clear], atol=1e-6, rtol=0)


@SETTINGS
@given(
    d=st.integers(2, 16),
    k=st.integers(2, 5),
    n=st.integers(1, 5),
    eps=st.floats(0.01, 3.0),
    seed=st.integers(0, 10_000),
    norm=st.sampled_from(["l2", "l1"]),
    targeted=st.booleans(),
)
def test_linear_lp_variants_closed_form(
    d: int, k: int, n: int, eps: float, seed: int, norm: str, targeted: bool
) -> None:
    """FGM: x' = projection of x + eps * g / ||g||_p onto the eps-ball and the box."""
    lin = multiclass_linear(d, k, seed)
    g = torch.Generator().manual_seed(seed + 2)
    x = random_inputs(n, (d,), seed)
    y = torch.randint(0, k, (n,), generator=g)
    t = (y + torch.randint(1, k, (n,), generator=g)) % k
    grad = -ce_gradient(lin, x, t) if targeted else ce_gradient(lin, x, y)
    p = 2 if norm == "l2" else 1
    step = eps * grad / grad.norm(p=p, dim=1, keepdim=True).clamp_min(1e-12)
    expected = box_then_ball(x, step.float(), norm, eps)
    attack = FGSM(eps, norm=norm, targeted=targeted)
    res = attack(Classifier(lin), x, y, target=t if targeted else None)
    torch.testing.assert_close(res.x_adv, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_lp_variant_uses_whole_budget_along_gradient(norm: str) -> None:
    """Away from the box edges, ||x' - x||_p = eps and x' - x is parallel to the gradient."""
    lin = multiclass_linear(10, 4, 0)
    x = torch.full((6, 10), 0.5)
    y = torch.arange(6) % 4
    eps = 0.05
    res = FGSM(eps, norm=norm)(Classifier(lin), x, y)
    delta = (res.x_adv - x).double()
    p = 2 if norm == "l2" else 1
    torch.testing.assert_close(
        delta.norm(p=p, dim=1), torch.full((6,), eps).double(), rtol=1e-5, atol=1e-7
    )
    grad = ce_gradient(lin, x, y)
    cosine = F.cosine_similarity(delta, grad, dim=1)
    torch.testing.assert_close(cosine, torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------- properties
def small_model(kind: str, shape: tuple[int, int, int], k: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    c, h, w = shape
    if kind == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k))
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 12), nn.ReLU(), nn.Linear(12, k))
    return nn.Sequential(
        nn.Conv2d(c, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * (h // 2) * (w // 2), k),
    )


def model_argmax(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model.eval()(x).argmax(1)


def independent_norms(delta: Tensor) -> dict[str, Tensor]:
    flat = delta.flatten(1).double()
    return {
        "l0": (flat != 0).double().sum(1) / flat.shape[1],
        "l1": flat.abs().sum(1),
        "l2": flat.pow(2).sum(1).sqrt(),
        "linf": flat.abs().max(1).values,
    }


def check_result(
    res: AttackResult,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    norm: str,
    eps: Tensor,
    target: Tensor | None,
) -> None:
    n = len(x)
    # shapes and dtypes
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype
    for name in ("success", "pred_clean", "pred_adv", "l0", "l1", "l2", "linf", "gradients"):
        assert getattr(res, name).shape == (n,), name
    assert res.success.dtype == torch.bool
    assert res.pred_adv.dtype == res.pred_clean.dtype == torch.long
    assert torch.equal(res.y, y)
    # the box, exactly, and the budget up to float rounding
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    sizes = independent_norms(res.x_adv - x)
    e = eps.double()
    assert bool((sizes[norm] <= e * (1 + 1e-5) + 1e-6).all()), (sizes[norm], e)
    # the reported norms are the norms of x_adv - x
    for name, value in sizes.items():
        torch.testing.assert_close(getattr(res, name).double(), value, rtol=1e-5, atol=1e-6)
    # predictions are the model's argmax; success is the re-prediction
    assert torch.equal(res.pred_clean, model_argmax(model, x))
    assert torch.equal(res.pred_adv, model_argmax(model, res.x_adv))
    if target is None:
        assert torch.equal(res.success, res.pred_adv != y)
    else:
        assert res.target is not None and torch.equal(res.target, target)
        assert torch.equal(res.success, res.pred_adv == target)
    with torch.no_grad():
        probs = model(res.x_adv).softmax(1)
    torch.testing.assert_close(res.confidence_adv, probs.gather(1, res.pred_adv[:, None])[:, 0])
    # one forward + backward per sample
    assert torch.equal(res.gradients, torch.ones(n, dtype=torch.long))
    assert torch.equal(res.queries, torch.ones(n, dtype=torch.long))


model_kinds = st.sampled_from(["linear", "mlp", "conv"])
shapes = st.tuples(st.integers(1, 3), st.sampled_from([2, 4, 6]), st.sampled_from([2, 4]))


@SETTINGS
@given(
    kind=model_kinds,
    shape=shapes,
    k=st.integers(2, 5),
    n=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    norm=st.sampled_from(["linf", "l2", "l1"]),
    eps=st.floats(0.0, 2.0),
    targeted=st.booleans(),
)
def test_fgsm_invariants(
    kind: str,
    shape: tuple[int, int, int],
    k: int,
    n: int,
    seed: int,
    norm: str,
    eps: float,
    targeted: bool,
) -> None:
    model = small_model(kind, shape, k, seed)
    x = random_inputs(n, shape, seed)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    target = (y + torch.randint(1, k, (n,), generator=g)) % k if targeted else None
    res = FGSM(eps, norm=norm, targeted=targeted)(Classifier(model), x, y, target=target)
    check_result(res, model, x, y, norm, torch.full((n,), eps), target)
    assert res.eps == eps and res.norm == norm and res.attack == "FGSM"


@settings(SETTINGS, max_examples=30)
@given(
    kind=model_kinds,
    shape=shapes,
    n=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    norm=st.sampled_from(["linf", "l2", "l1"]),
    levels=st.tuples(st.floats(0.001, 1.0), st.floats(0.001, 1.0)),
    target_kind=st.sampled_from([None, "random", "given"]),
)
def test_per_sample_eps_override(
    kind: str,
    shape: tuple[int, int, int],
    n: int,
    seed: int,
    norm: str,
    levels: tuple[float, float],
    target_kind: str | None,
) -> None:
    """attack(..., eps=tensor) gives each row its own budget: row i equals FGSM(eps_i)'s row i."""
    k = 4
    model = small_model(kind, shape, k, seed)
    x = random_inputs(n, shape, seed)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    choices = torch.tensor([0.0, *levels], dtype=torch.float32)
    eps = choices[torch.randint(0, 3, (n,), generator=g)]
    targeted = target_kind is not None
    target: TargetSpec = None
    if target_kind == "given":
        target = (y + torch.randint(1, k, (n,), generator=g)) % k
    elif target_kind == "random":
        target = "random"
    attack = FGSM(0.5, norm=norm, targeted=targeted)
    res = attack(Classifier(model), x, y, target=target, eps=eps)
    check_result(res, model, x, y, norm, eps, res.target if targeted else None)
    # rows with eps = 0 are untouched
    assert torch.equal(res.x_adv[eps == 0], x[eps == 0])
    # each row is what a scalar budget gives on the same batch (same gradient, same targets)
    for level in choices.tolist():
        rows = eps == level
        scalar = FGSM(level, norm=norm, targeted=targeted)(Classifier(model), x, y, target=target)
        torch.testing.assert_close(res.x_adv[rows], scalar.x_adv[rows], atol=1e-6, rtol=1e-6)
    assert res.eps is not None and math.isclose(res.eps, float(eps.max()), rel_tol=1e-6)


def test_zero_gradient_leaves_input_unchanged() -> None:
    """A constant model has zero input gradient: every variant returns x itself."""
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
    model = nn.Sequential(nn.Flatten(), lin)
    x = torch.rand(3, 4)
    y = torch.tensor([0, 1, 2])
    for norm in ("linf", "l2", "l1"):
        res = FGSM(0.3, norm=norm)(Classifier(model), x, y)
        assert torch.equal(res.x_adv, x)
        assert torch.equal(res.success, torch.tensor([False, True, True]))


def test_success_on_linear_model_with_large_eps() -> None:
    """Goodfellow section 3: with eps over the logit gap / ||w_t - w_y||_1 the label flips."""
    lin = binary_linear(30, 5)
    x = torch.full((8, 30), 0.5)
    y = torch.arange(8) % 2
    w = lin.weight.detach()
    b = lin.bias.detach()
    margin = ((w[y] - w[1 - y]) * x).sum(1) + b[y] - b[1 - y]  # logit_y - logit_t
    eps_needed = margin.clamp_min(0) / (w[1] - w[0]).abs().sum()
    eps = float(eps_needed.max()) * 1.01 + 1e-3
    assert eps < 0.5  # the box does not bind
    res = FGSM(eps)(Classifier(lin), x, y)
    assert bool(res.success.all())


@pytest.mark.parametrize(("norm", "eps"), [("linf", 3.0), ("l2", 100.0), ("l1", 1000.0)])
def test_box_invariant_with_other_bounds(norm: str, eps: float) -> None:
    """A box other than [0, 1]: x + (clamp(x') - x) can round one ulp outside it in float32,
    so the result must be clamped last (regression: L1/L2 were not)."""
    low, high = 0.1, 0.9
    for seed in range(5):
        lin = multiclass_linear(20, 3, seed)
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(64, 20, generator=g) * (high - low) + low
        y = torch.randint(0, 3, (64,), generator=g)
        res = FGSM(eps, norm=norm)(Classifier(lin, bounds=(low, high)), x, y)
        assert float(res.x_adv.min()) >= low and float(res.x_adv.max()) <= high


def test_norm_enum_and_numpy_inputs() -> None:
    """Norm given as the enum; numpy inputs and labels are accepted (tensors come back)."""
    lin = binary_linear(5, 0)
    x = random_inputs(4, (5,), 0)
    y = torch.tensor([0, 1, 0, 1])
    a = FGSM(0.2, norm=Norm.LINF)(Classifier(lin), x, y)
    b = FGSM(0.2, norm="Linf")(Classifier(lin), x.numpy(), y.numpy())  # type: ignore[arg-type]
    assert torch.equal(a.x_adv, b.x_adv)
