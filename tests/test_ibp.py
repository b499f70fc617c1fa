"""Interval bound propagation: exact on linear models, sound on trained networks, monotone."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier, Oracle
from brittle.attacks.iterative import PGD
from brittle.certify.bound_propagation import certify, margin_bound
from brittle.certify.layers import network_ops
from brittle.errors import InputError
from brittle.zoo.architectures import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (2, 2, 3)  # 12 features, 2 channels


def linear_classifier(
    preprocessing: tuple[list[float], list[float]] | None = None,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[Classifier, Tensor, Tensor]:
    """A float64 linear classifier over 4 classes (weights ``W``, bias ``b``)."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).double()
    clf = Classifier(module, bounds=bounds, preprocessing=preprocessing, input_shape=SHAPE)
    return clf, module[1].weight.detach(), module[1].bias.detach()


def exact_radius(
    z: Tensor, w: Tensor, label: Tensor, dual: float, scale: Tensor | None = None
) -> Tensor:
    """The exact distance to the nearest decision boundary of a linear classifier:
    ``min_j (z_y - z_j) / ||w_y - w_j||_dual``, the rows scaled by ``scale`` (1 / std)."""
    radii = []
    for i in range(len(z)):
        y = int(label[i])
        best = math.inf
        for j in range(len(w)):
            if j != y:
                row = w[y] - w[j]
                if scale is not None:
                    row = row * scale
                best = min(best, float((z[i, y] - z[i, j]) / row.norm(p=dual)))
        radii.append(best)
    return torch.tensor(radii, dtype=torch.float64)


@pytest.mark.parametrize(("norm", "dual"), [("linf", 1), ("l2", 2)])
def test_linear_margin_bound_is_the_hand_bound(norm: str, dual: float) -> None:
    clf, w, _b = linear_classifier()
    x = torch.rand(5, *SHAPE, dtype=torch.float64)
    z = clf.predict_logits(x)
    label = z.argmax(1)
    for eps in (0.0, 0.01, 0.3):
        hand = torch.stack(
            [
                torch.stack(
                    [
                        z[i, label[i]] - z[i, j] - eps * (w[label[i]] - w[j]).norm(p=dual)
                        for j in range(4)
                        if j != label[i]
                    ]
                ).min()
                for i in range(5)
            ]
        )
        torch.testing.assert_close(margin_bound(clf, x, label, eps, norm), hand)


@pytest.mark.parametrize(("norm", "dual"), [("linf", 1), ("l2", 2)])
def test_linear_certified_radius_is_the_exact_distance(norm: str, dual: float) -> None:
    clf, w, _ = linear_classifier()
    x = torch.rand(6, *SHAPE, dtype=torch.float64)
    cert = certify(clf, x, norm=norm, steps=60)
    z = clf.predict_logits(x)
    assert torch.equal(cert.label, z.argmax(1))
    torch.testing.assert_close(cert.radius, exact_radius(z, w, cert.label, dual), rtol=1e-9, atol=0)
    assert cert.method == "ibp" and str(cert.norm) == norm


def test_l2_radius_goes_through_the_preprocessing() -> None:
    """With per-channel ``(mean, std)`` the rows are ``w / std`` in input space."""
    clf, w, _ = linear_classifier(preprocessing=([0.5, 0.2], [0.25, 2.0]))
    x = torch.rand(6, *SHAPE, dtype=torch.float64)
    cert = certify(clf, x, norm="l2", steps=60)
    scale = (1 / torch.tensor([0.25, 2.0], dtype=torch.float64)).repeat_interleave(6)
    z = clf.predict_logits(x)
    exact = exact_radius(z, w, cert.label, 2, scale)
    torch.testing.assert_close(cert.radius, exact, rtol=1e-9, atol=0)


def small_mlp() -> tuple[Classifier, Tensor, Tensor]:
    """An MLP trained for a few steps on three Gaussian blobs in 12 features, in [0, 1]."""
    gen = torch.Generator().manual_seed(1)
    centres = torch.rand(3, 12, generator=gen)
    y = torch.arange(3).repeat(40)
    x = (centres[y] + 0.08 * torch.randn(120, 12, generator=gen)).clamp(0, 1).view(-1, *SHAPE)
    model = build_model("mlp", SHAPE, 3, seed=0, hidden=(16, 16))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return Classifier(model, input_shape=SHAPE), x, y


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_no_attack_finds_an_adversarial_example_inside_a_certified_radius(norm: str) -> None:
    clf, x, y = small_mlp()
    cert = certify(clf, x, norm=norm, y=y, steps=14)
    inside = cert.radius > 0
    assert int(inside.sum()) >= 30  # the property is checked on many certified samples
    pgd = PGD(eps=0.1, norm=norm, steps=60, restarts=3, loss="margin")
    result = pgd.attack(clf, x[inside], y[inside], eps=cert.radius[inside])
    assert not bool(result.success.any())


def conv_net() -> Classifier:
    """A CNN with every layer kind bound propagation supports, batchnorm with real statistics."""
    torch.manual_seed(3)
    module = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(4, 4, 1),
        nn.LeakyReLU(0.1),
        nn.AvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(8, 8),
        nn.BatchNorm1d(8),
        nn.Tanh(),
        nn.Linear(8, 3),
    )
    module.train()
    with torch.no_grad():
        for _ in range(5):
            module(torch.rand(16, *SHAPE) * 3)  # running statistics away from (0, 1)
    module.eval()
    return Classifier(module, preprocessing=([0.4, 0.6], [0.3, 0.5]), input_shape=SHAPE)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_margin_bound_holds_on_sampled_inputs(norm: str) -> None:
    clf = conv_net()
    network = network_ops(clf)
    x = torch.rand(8, *SHAPE)
    torch.testing.assert_close(network.logits(x), clf.predict_logits(x))
    label = clf.predict(x)
    eps = 0.05
    bound = margin_bound(clf, x, label, eps, norm)
    for _ in range(50):
        step = torch.randn_like(x)
        if norm == "linf":
            step = step.sign() * eps
        else:
            step = step / step.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * eps
        z = clf.predict_logits((x + step).clamp(0, 1))
        top = z.scatter(1, label[:, None], -math.inf).amax(1)
        assert bool((z.gather(1, label[:, None]).squeeze(1) - top >= bound - 1e-5).all())


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_margin_bound_falls_as_eps_grows_and_the_radius_is_where_it_crosses(norm: str) -> None:
    clf = conv_net()
    x = torch.rand(10, *SHAPE)
    label = clf.predict(x)
    grid = torch.linspace(0, 0.2, 21)
    bounds = torch.stack([margin_bound(clf, x, label, float(e), norm) for e in grid])
    assert bool((bounds[1:] <= bounds[:-1] + 1e-6).all())
    cert = certify(clf, x, norm=norm, steps=18)
    held = cert.radius > 0
    assert bool((margin_bound(clf, x, label, cert.radius, norm)[held] > 0).all())
    resolution = (1.0 if norm == "linf" else math.sqrt(12)) / 2**18
    past = margin_bound(clf, x, label, cert.radius + 2 * resolution, norm)
    assert bool((past[held] <= 0).all())


def test_certificates_do_not_depend_on_the_batch_size() -> None:
    clf = conv_net()
    x = torch.rand(10, *SHAPE)
    one = certify(clf, x, norm="linf", batch_size=3, steps=10)
    whole = certify(clf, x, norm="linf", batch_size=100, steps=10)
    assert torch.equal(one.radius, whole.radius) and torch.equal(one.label, whole.label)


def test_a_misclassified_sample_gets_radius_zero() -> None:
    clf, x, _y = small_mlp()
    wrong = (clf.predict(x) + 1) % 3
    cert = certify(clf, x[:5], y=wrong[:5], steps=6)
    assert torch.equal(cert.radius, torch.zeros(5)) and torch.equal(cert.label, clf.predict(x[:5]))


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [("lenet", {"channels": (3,), "hidden": (8,)}), ("mlp", {"hidden": (8,)}), ("softmax", {})],
)
def test_zoo_networks_are_read_as_their_layers(arch: str, kwargs: dict[str, object]) -> None:
    model = build_model(arch, (1, 8, 8), 10, seed=0, **kwargs)
    clf = Classifier(model, preprocessing=(0.1307, 0.3081), input_shape=(1, 8, 8))
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(network_ops(clf).logits(x), clf.predict_logits(x))
    cert = certify(clf, x, norm="l2", steps=8)
    assert len(cert) == 4 and bool((cert.radius >= 0).all())


def test_logistic_regression_is_its_two_logits() -> None:
    model = build_model("logistic", (1, 4, 4), 2, seed=0)
    clf = Classifier(model, input_shape=(1, 4, 4))
    x = torch.rand(5, 1, 4, 4)
    torch.testing.assert_close(network_ops(clf).logits(x), clf.predict_logits(x))


def test_unsupported_layers_and_models_are_refused_by_name() -> None:
    maxout = Classifier(
        build_model("maxout", (1, 4, 4), 3, units=4, pieces=2), input_shape=(1, 4, 4)
    )
    with pytest.raises(InputError, match=r"net\.2 \(Maxout\)"):
        certify(maxout, torch.rand(2, 1, 4, 4))
    with pytest.raises(InputError, match=r"RBFNetwork"):
        certify(
            Classifier(build_model("rbf", (1, 4, 4), 3), input_shape=(1, 4, 4)),
            torch.rand(2, 1, 4, 4),
        )
    leaky = Classifier(
        nn.Sequential(nn.Flatten(), nn.LeakyReLU(-0.5), nn.Linear(16, 2)), input_shape=(1, 4, 4)
    )
    with pytest.raises(InputError, match="decreasing"):
        certify(leaky, torch.rand(2, 1, 4, 4))
    clf, _, _ = linear_classifier()
    with pytest.raises(InputError, match="linf and l2"):
        certify(clf, torch.rand(2, *SHAPE, dtype=torch.float64), norm="l1")
    oracle = Oracle(lambda x: x.flatten(1)[:, :2], 2, SHAPE, outputs="scores")
    with pytest.raises(InputError, match="white-box"):
        certify(oracle, torch.rand(2, *SHAPE))
