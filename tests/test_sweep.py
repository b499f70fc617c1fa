"""The epsilon sweep of logits along sign(grad_x J) (Goodfellow et al. 2015, Figure 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from brittle import Classifier
from brittle.errors import InputError
from brittle.metrics import epsilon_sweep
from brittle.reproduce.figures import epsilon_sweep_plot

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def linear() -> tuple[Classifier, nn.Linear, torch.Tensor, torch.Tensor]:
    """A linear model on flattened 8x8 inputs, float64, and 5 inputs inside the box."""
    torch.manual_seed(0)
    layer = nn.Linear(64, 10).double()
    x = 0.2 + 0.6 * torch.rand(5, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 3, 5, 7, 9])
    return Classifier(nn.Sequential(nn.Flatten(), layer)), layer, x, y


def test_the_logits_of_a_linear_model_are_affine_in_eps(linear) -> None:
    clf, layer, x, y = linear
    sweep = epsilon_sweep(clf, x, y, eps_max=0.5, points=11)
    w, b = layer.weight.detach(), layer.bias.detach()
    z = x.flatten(1) @ w.T + b
    # grad_x of the cross-entropy of z = W x + b: W^T (softmax(z) - onehot(y))
    residual = z.softmax(1) - nn.functional.one_hot(y, 10).double()
    d = (residual @ w).sign()
    eps = torch.from_numpy(sweep.eps)
    expected = z[:, None, :] + eps[None, :, None] * (d @ w.T)[:, None, :]
    assert sweep.logits.shape == (5, 11, 10) and sweep.predictions.shape == (5, 11)
    np.testing.assert_allclose(sweep.logits, expected.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(sweep.predictions, sweep.logits.argmax(2))
    assert sweep.eps[5] == 0.0  # the clean input is on the line
    np.testing.assert_array_equal(sweep.logits[:, 5], clf.predict_logits(x).numpy())
    np.testing.assert_array_equal(sweep.y, y.numpy())
    np.testing.assert_array_equal(sweep.wrong, sweep.predictions != y.numpy()[:, None])


def test_the_grid_is_symmetric_and_holds_zero_when_odd(linear) -> None:
    clf, _, x, y = linear
    odd = epsilon_sweep(clf, x, y, eps_max=0.3, points=7).eps
    np.testing.assert_array_equal(odd, -odd[::-1])
    assert odd[0] == -0.3 and odd[-1] == 0.3 and 0.0 in odd and np.all(np.diff(odd) > 0)
    even = epsilon_sweep(clf, x[:1], y[:1], eps_max=0.3, points=2).eps
    np.testing.assert_array_equal(even, [-0.3, 0.3])


def test_clipping_keeps_every_point_in_the_box(linear) -> None:
    clf, _, x, y = linear
    sweep = epsilon_sweep(clf, x, y, eps_max=1.0, points=5, clip=True, batch_size=7)
    assert sweep.clipped
    free = epsilon_sweep(clf, x, y, eps_max=1.0, points=5)
    with torch.enable_grad():
        probe = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(clf.logits(probe), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, probe)
    end = (x + grad.sign()).clamp(0, 1)
    np.testing.assert_allclose(sweep.logits[:, -1], clf.predict_logits(end).numpy(), atol=1e-12)
    assert not np.allclose(sweep.logits[:, -1], free.logits[:, -1])  # the box binds at eps 1
    np.testing.assert_array_equal(sweep.logits[:, 2], free.logits[:, 2])


def test_the_gradient_is_taken_in_eval_mode_and_leaves_no_parameter_grad() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10))
    module.train()
    clf = Classifier(module)
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([1, 2, 3])
    first = epsilon_sweep(clf, x, y, eps_max=0.2, points=5)
    second = epsilon_sweep(clf, x, y, eps_max=0.2, points=5)
    np.testing.assert_array_equal(first.logits, second.logits)  # dropout off: deterministic
    np.testing.assert_allclose(first.logits[:, 2], clf.predict_logits(x).numpy(), atol=1e-6)
    assert module.training  # the module's state is given back
    assert all(p.grad is None and p.requires_grad for p in module.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps_max": 0.0}, "eps_max must be finite and > 0"),
        ({"eps_max": -0.1}, "eps_max must be finite and > 0"),
        ({"eps_max": float("nan")}, "eps_max must be finite and > 0"),
        ({"eps_max": "big"}, "eps_max must be a number"),
        ({"eps_max": 0.1, "points": 1}, "points must be an integer >= 2"),
        ({"eps_max": 0.1, "points": 2.5}, "points must be an integer >= 2"),
        ({"eps_max": 0.1, "batch_size": 0}, "batch_size must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused(linear, kwargs: dict, message: str) -> None:
    clf, _, x, y = linear
    with pytest.raises(InputError, match=message):
        epsilon_sweep(clf, x, y, **kwargs)


def test_bad_inputs_are_refused(linear) -> None:
    clf, _, x, y = linear
    with pytest.raises(InputError, match="no inputs"):
        epsilon_sweep(clf, x[:0], y[:0], eps_max=0.1)
    with pytest.raises(InputError, match="one label per input"):
        epsilon_sweep(clf, x, y[:2], eps_max=0.1)
    with pytest.raises(InputError, match=r"brittle\.Classifier"):
        epsilon_sweep(clf.module, x, y, eps_max=0.1)  # type: ignore[arg-type]


def test_the_plot_draws_one_input_of_the_sweep(linear) -> None:
    clf, _, x, y = linear
    sweep = epsilon_sweep(clf, x, y, eps_max=0.5, points=21)
    png = epsilon_sweep_plot(sweep, [str(k) for k in range(10)], index=1)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(InputError, match="name the 10 classes"):
        epsilon_sweep_plot(sweep, ["a", "b"])
