"""IBP training (Gowal et al. 2018): the schedule, and certified radii it makes larger."""

from __future__ import annotations

import pytest
import torch

from brittle import Classifier
from brittle.certify.bound_propagation import certify
from brittle.defenses.ibp import IBPTraining
from brittle.errors import InputError
from brittle.zoo import build_model, train_model

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 3, 4)


def test_the_schedule_ramps_eps_up_and_kappa_down() -> None:
    step = IBPTraining(0.2, alpha=0.5, warmup=10, ramp=20)
    assert step.schedule(0) == (0.0, 1.0) and step.schedule(10) == (0.0, 1.0)
    assert step.schedule(20) == pytest.approx((0.1, 0.75))
    assert step.schedule(30) == pytest.approx((0.2, 0.5)) == step.schedule(1000)


def blobs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    centres = torch.rand(3, 12, generator=gen)
    y = torch.arange(3).repeat(60)
    x = (centres[y] + 0.05 * torch.randn(180, 12, generator=gen)).clamp(0, 1)
    return x.view(-1, *SHAPE), y


def test_ibp_training_certifies_larger_radii_than_plain_training() -> None:
    x, y = blobs()
    radii = {}
    for name, objective in (("plain", None), ("ibp", IBPTraining(0.15, ramp=20))):
        model = build_model("mlp", SHAPE, 3, seed=0, hidden=(32, 32))
        train_model(
            model,
            x,
            y,
            epochs=20,
            batch_size=60,
            lr=1e-2,
            seed=0,
            progress=False,
            objective=objective,
        )
        clf = Classifier(model.eval(), input_shape=SHAPE)
        assert float((clf.predict(x) == y).float().mean()) > 0.9
        radii[name] = certify(clf, x, norm="linf", y=y, steps=12).radius
    assert float(radii["ibp"].median()) > 1.3 * float(radii["plain"].median())
    assert float((radii["ibp"] >= 0.12).float().mean()) > float(
        (radii["plain"] >= 0.12).float().mean()
    )


def test_a_model_it_cannot_bound_is_refused() -> None:
    maxout = build_model("maxout", SHAPE, 3, units=4, pieces=2)
    with pytest.raises(InputError, match="Maxout"):
        IBPTraining(0.1).check(maxout, torch.rand(2, *SHAPE), 3)
    with pytest.raises(InputError, match="ramp"):
        IBPTraining(0.1, ramp=-1)


def test_the_defense_is_registered_with_gowals_defaults() -> None:
    from brittle.defenses.choose import DefenseOptions, build_objective

    objective = build_objective(DefenseOptions("ibp", eps=0.2))
    assert isinstance(objective, IBPTraining)
    assert (objective.eps, objective.alpha) == (0.2, 0.5)
    assert objective.describe()["name"] == "ibp"
