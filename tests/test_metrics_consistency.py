"""Metrics agree with each other whatever the model returns, and implausible models are named."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import FGSM, PGD

pytestmark = pytest.mark.usefixtures("one_thread")


class NanSometimes(nn.Module):
    """A linear model whose logits are NaN for inputs whose first feature exceeds 0.6."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x[:, :1] > 0.6, float("nan"), self.lin(x))


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.5])
def test_rates_agree_with_nan_outputs(eps: float) -> None:
    """robust = clean x (1 - success), with non-finite outputs on some perturbed inputs."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 6, generator=g) * 0.5
    y = torch.randint(0, 3, (64,), generator=g)
    with pytest.warns(RuntimeWarning) if eps > 0.1 else contextlib.nullcontext():
        s = PGD(eps, steps=5)(Classifier(NanSometimes()), x, y).summary()
    assert s["robust_accuracy"] == pytest.approx(s["clean_accuracy"] * (1 - s["success_rate"]))
    if eps > 0.1:
        assert s["nonfinite_outputs"] > 0


def test_clean_nan_rows_are_not_correct() -> None:
    """A sample whose clean output is NaN is not classified correctly (prediction -1)."""

    class NanFirst(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            out = torch.stack([x.sum(1), -x.sum(1)], 1)
            return torch.where(torch.arange(len(x))[:, None] == 0, float("nan"), out)

    x = torch.full((4, 3), 0.5)
    clf = Classifier(NanFirst(), num_classes=2)
    clf._outputs_checked.add((3,))  # the first probe would refuse NaN on clean inputs
    with pytest.warns(RuntimeWarning):
        res = FGSM(0.01)(clf, x, torch.zeros(4, dtype=torch.long))
    assert int(res.pred_clean[0]) == -1 and not bool(res.correct_clean[0])


def test_empty_batch_says_its_rates_are_undefined() -> None:
    clf = Classifier(nn.Linear(6, 3))
    s = FGSM(0.1)(clf, torch.zeros(0, 6), torch.zeros(0, dtype=torch.long)).summary()
    assert s["n"] == 0 and math.isnan(s["success_rate"]) and "no samples" in s["note"]


def test_a_feature_extractor_is_named() -> None:
    """nn.Flatten on 28x28 inputs has 784 outputs: not a 10-class classifier."""
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    with pytest.warns(UserWarning, match="784 outputs per input but the labels go up to 7"):
        FGSM(0.1)(Classifier(nn.Flatten()), x, y)
