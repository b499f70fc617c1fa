"""First-layer weights as images (Goodfellow et al. 2015, Figure 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from brittle import Classifier
from brittle.errors import InputError
from brittle.metrics import first_layer_filters
from brittle.reproduce.figures import weight_grid
from brittle.zoo import build_model


def _weight(layer: nn.Linear) -> np.ndarray:
    return layer.weight.detach().numpy()


def test_softmax_filters_are_its_class_templates() -> None:
    model = build_model("softmax", (1, 8, 8), 10, seed=0)
    filters = first_layer_filters(model)
    assert filters.shape == (1, 10, 8, 8)
    for k in range(10):
        np.testing.assert_array_equal(filters[0, k], _weight(model.linear)[k].reshape(8, 8))
    np.testing.assert_array_equal(first_layer_filters(Classifier(model)), filters)


def test_logistic_regression_has_one_filter() -> None:
    model = build_model("logistic", (1, 8, 8), 2, seed=0)
    filters = first_layer_filters(model)
    assert filters.shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(filters[0, 0], _weight(model.linear).reshape(8, 8))


def test_each_maxout_row_holds_the_pieces_of_one_unit() -> None:
    model = build_model("maxout", (1, 8, 8), 10, units=6, pieces=3, seed=0)
    layer = model.net[2]
    filters = first_layer_filters(model)
    assert filters.shape == (6, 3, 8, 8)
    weight = _weight(layer.linear)
    for u in range(6):
        for p in range(3):
            np.testing.assert_array_equal(filters[u, p], weight[u * 3 + p].reshape(8, 8))
    # the unit's output is the max over its row's filters: the grouping the layer computes
    x = torch.rand(4, 64)
    bias = layer.linear.bias.detach().view(6, 3)
    pieces = torch.einsum("nd,upd->nup", x, torch.from_numpy(filters).float().flatten(2))
    expected = (pieces + bias).amax(2)
    torch.testing.assert_close(layer(x).detach(), expected)
    assert first_layer_filters(model, max_units=4).shape == (4, 3, 8, 8)


def test_a_channel_must_be_chosen_for_several_channels() -> None:
    model = build_model("softmax", (3, 4, 4), 5, seed=0)
    with pytest.raises(InputError, match=r"3 channels .* pass channel=0 to 2"):
        first_layer_filters(model)
    filters = first_layer_filters(model, channel=1)
    assert filters.shape == (1, 5, 4, 4)
    np.testing.assert_array_equal(filters[0, 2], _weight(model.linear)[2].reshape(3, 4, 4)[1])
    with pytest.raises(InputError, match=r"channel must be an integer in \[0, 2\]"):
        first_layer_filters(model, channel=3)


@pytest.mark.parametrize(
    "module",
    [
        build_model("lenet", (1, 8, 8), 10, channels=(4,), hidden=(8,)),
        build_model("mlp", (1, 8, 8), 10, hidden=(8,)),
        nn.Linear(64, 10),
    ],
)
def test_other_architectures_are_refused_with_the_supported_ones(module: nn.Module) -> None:
    with pytest.raises(InputError, match="softmax, logistic, maxout models"):
        first_layer_filters(module)


def test_max_units_must_be_a_positive_integer() -> None:
    model = build_model("maxout", (1, 8, 8), 10, units=4, pieces=2, seed=0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="max_units must be an integer >= 1"):
            first_layer_filters(model, max_units=bad)  # type: ignore[arg-type]


def test_the_grid_draws_the_models_side_by_side() -> None:
    naive = first_layer_filters(build_model("maxout", (1, 8, 8), 10, units=3, pieces=2, seed=0))
    other = first_layer_filters(build_model("maxout", (1, 8, 8), 10, units=3, pieces=2, seed=1))
    png = weight_grid({"naive": naive, "adversarial training": other})
    assert png.startswith(b"\x89PNG")
    with pytest.raises(InputError, match="at least one model"):
        weight_grid({})
