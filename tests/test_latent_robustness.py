"""The robustness estimators of Fawzi et al. 2018 (r_Z, r_in, r_unc), Theorem 2's projected
classifier and Theorem 3's common perturbations, on models whose answers are known.

The reference case is a linear classifier in latent space: g(z) = A z + c with A of full
column rank, and f linear on images, built so that f(g(z)) is decided by the half-space
w.z + b >= 0. Then r_Z(z) = |w.z + b| / ||w||, r_in(z) = |w.z + b| / ||(A^+)^T w|| (the
smallest ||A r|| with w.r = -(w.z + b)), and r_unc is the distance to f's hyperplane in image
space, below r_in when f's normal leaves the range of g.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import PGD, CarliniWagnerL2, DeepFool
from brittle.bounds.projected import ProjectedClassifier, theorem2_check
from brittle.bounds.robustness import (
    LatentClassifier,
    PenaltySearch,
    common_perturbation_share,
    estimate_all,
    in_distribution_robustness,
    latent_robustness,
    sample_latents,
    unconstrained_robustness,
)
from brittle.bounds.theorems import transfer_bound
from brittle.bounds.transferability import theorem3_check
from brittle.errors import GradientError, InputError

pytestmark = pytest.mark.usefixtures("one_thread")

D, SHAPE = 4, (1, 4, 4)
M = 16


class LinearGenerator(nn.Module):
    """g(z) = A z + c, reshaped to images; counts its forward passes."""

    a: Tensor
    c: Tensor

    def __init__(self, a: Tensor, c: Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("c", c)
        self.latent_dim, self.output_shape = a.shape[1], SHAPE
        self.forwards = 0

    def forward(self, z: Tensor) -> Tensor:
        self.forwards += 1
        return (z @ self.a.T + self.c).view(-1, *SHAPE)


class EncodingLinearGenerator(LinearGenerator):
    """A linear generator with a VAE-like ``encode``: its exact inverse, mu = A^+ (x - c)."""

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu = (x.flatten(1) - self.c) @ torch.linalg.pinv(self.a).T
        return mu, torch.zeros_like(mu)


class SigmoidGenerator(nn.Module):
    """A smooth nonlinear generator into (0, 1): sigmoid(B tanh(A z + a) + b).

    Weights 2 N(0, 1) / sqrt(fan_in) and no biases; ``saturated``: weights and biases N(0, 1),
    which saturates the tanh and the sigmoid over much of the latent space (flat regions where
    gradients say nothing).
    """

    def __init__(self, saturated: bool = False, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.inner, self.outer = nn.Linear(D, 8), nn.Linear(8, M)
        with torch.no_grad():
            for layer in (self.inner, self.outer):
                gain = 1.0 if saturated else 2 / math.sqrt(layer.in_features)
                layer.weight.copy_(gain * torch.randn(layer.weight.shape, generator=g))
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * saturated)
        self.latent_dim, self.output_shape = D, SHAPE

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.outer(torch.tanh(self.inner(z)))).view(-1, *SHAPE)


def tanh_network(seed: int = 1) -> Classifier:
    """A 3-class MLP on the images, centred on the grey image so that its classes share the
    generator's samples (59, 122 and 119 of 300)."""
    g = torch.Generator().manual_seed(seed)
    hidden, out = nn.Linear(M, 12), nn.Linear(12, 3)
    with torch.no_grad():
        hidden.weight.copy_(8 * torch.randn(12, M, generator=g) / math.sqrt(M))
        hidden.bias.copy_(-hidden.weight @ torch.full((M,), 0.5))
        out.weight.copy_(torch.randn(3, 12, generator=g))
        out.bias.zero_()
    net = nn.Sequential(nn.Flatten(), hidden, nn.Tanh(), out)
    return Classifier(net, bounds=(0, 1), input_shape=SHAPE)


def uniform_network(seed: int) -> Classifier:
    """The same MLP with torch's default initialisation, U(-1, 1) / sqrt(fan_in), seeded."""
    g = torch.Generator().manual_seed(seed)
    layers = (nn.Linear(M, 12), nn.Linear(12, 3))
    with torch.no_grad():
        for layer in layers:
            for p in layer.parameters():
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / math.sqrt(layer.in_features))
    net = nn.Sequential(nn.Flatten(), layers[0], nn.Tanh(), layers[1])
    return Classifier(net, bounds=(0, 1), input_shape=SHAPE)


class LinearImageModel(nn.Module):
    """Two logits (0, w.x + b) on flattened images; counts its forward passes."""

    def __init__(self, w: Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))
        self.forwards = 0

    def forward(self, x: Tensor) -> Tensor:
        self.forwards += 1
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], 1)


@dataclass
class Geometry:
    """A linear generator and a linear image classifier whose pull-back is w.z + b."""

    generator: LinearGenerator
    classifier: Classifier
    a: Tensor
    w: Tensor
    b: float
    w_image: Tensor
    b_image: float

    def r_z(self, z: Tensor) -> Tensor:
        return (z @ self.w + self.b).abs() / self.w.norm()

    def r_in(self, z: Tensor) -> Tensor:
        return (z @ self.w + self.b).abs() / (torch.linalg.pinv(self.a).T @ self.w).norm()

    def r_unc(self, x: Tensor) -> Tensor:
        return (x.flatten(1) @ self.w_image + self.b_image).abs() / self.w_image.norm()


def geometry(
    *,
    scale: float = 0.05,
    orthonormal: bool = True,
    off_range: float = 0.0,
    b: float = 0.3,
    seed: int = 0,
    with_encoder: bool = False,
) -> Geometry:
    """g(z) = A z + 0.5 with A = scale * (orthonormal columns), or scale times a Gaussian
    matrix; f's normal is (A^+)^T w plus ``off_range`` times its length orthogonally to the
    range of A (which leaves f(g(z)) unchanged). The images stay well inside [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    if orthonormal:
        a = scale * torch.linalg.qr(torch.randn(M, D, generator=g))[0]
    else:
        a = scale * 2 * torch.randn(M, D, generator=g) / math.sqrt(M)
    c = torch.full((M,), 0.5)
    w = torch.randn(D, generator=g)
    pinv = torch.linalg.pinv(a)
    w_image = pinv.T @ w
    v = torch.randn(M, generator=g)
    v = v - a @ (pinv @ v)
    w_image = w_image + off_range * w_image.norm() * v / v.norm()
    b_image = b - float(w_image @ c)
    generator = (EncodingLinearGenerator if with_encoder else LinearGenerator)(a, c)
    model = LinearImageModel(w_image, b_image)
    classifier = Classifier(model, bounds=(0, 1), input_shape=SHAPE)
    return Geometry(generator, classifier, a, w, b, w_image, b_image)


def phi(t: float) -> float:
    return 0.5 * (1 + math.erf(t / math.sqrt(2)))


# ----------------------------------------------------------------------------- r_Z
def test_the_latent_search_finds_the_distance_to_the_hyperplane() -> None:
    geo = geometry()
    z = sample_latents(2000, D, seed=0)
    est = latent_robustness(geo.classifier, geo.generator, z)
    exact = geo.r_z(z)
    assert est.quantity == "r_Z" and est.values.shape == (2000,)
    assert est.success_rate >= 0.99 and est.failures == 0
    within = (est.values / exact - 1).abs() <= 0.02
    assert float(within.float().mean()) >= 0.99
    # every value is a verified change: never (beyond float rounding) below the distance
    assert bool((est.values >= exact * (1 - 1e-4) - 1e-5).all())
    moved = geo.classifier.predict(geo.generator(est.adversarial))
    assert torch.equal(moved != geo.classifier.predict(geo.generator(z)), est.success)


def test_the_empirical_cdf_of_r_z_is_the_gaussian_half_space() -> None:
    """For one half-space the distance of z ~ N(0, I) to it is |u + s|, u ~ N(0, 1) and
    s = b / ||w||: P(r_Z <= eta) = Phi(eta - s) - Phi(-eta - s)."""
    geo = geometry(b=0.4)
    n = 2000
    z = sample_latents(n, D, seed=4)
    est = latent_robustness(geo.classifier, geo.generator, z)
    s = geo.b / float(geo.w.norm())
    for eta in (0.1, 0.3, 0.6, 1.0, 1.5):
        p = phi(eta - s) - phi(-eta - s)
        empirical = float((est.values <= eta).float().mean())
        assert abs(empirical - p) <= 3 * math.sqrt(p * (1 - p) / n), (eta, empirical, p)
        # and the same samples' exact distances give (nearly) the same share
        assert abs(empirical - float((geo.r_z(z) <= eta).float().mean())) <= 0.005


def test_a_search_that_never_flips_is_inf_and_counted() -> None:
    class Constant(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return torch.tensor([2.0, 0.0]) + 0 * x.flatten(1).sum(1, keepdim=True)

    geo = geometry()
    clf = Classifier(Constant(), bounds=(0, 1), input_shape=SHAPE)
    est = latent_robustness(clf, geo.generator, sample_latents(20, D, 0), attacks=[DeepFool()])
    assert est.success_rate == 0 and est.failures == 20
    assert bool(torch.isinf(est.values).all()) and math.isinf(est.median)
    assert est.as_json()["median"] is None and est.as_json()["found"] == 0


# ----------------------------------------------------------------------------- r_in
@pytest.mark.parametrize("orthonormal", [True, False])
def test_r_in_is_the_image_distance_of_the_geometry(orthonormal: bool) -> None:
    """Orthonormal columns times 0.05: r_in = 0.05 r_Z; a Gaussian A: |s| / ||(A^+)^T w||."""
    geo = geometry(orthonormal=orthonormal, seed=3)
    z = sample_latents(300, D, seed=2)
    latent = latent_robustness(geo.classifier, geo.generator, z)
    est = in_distribution_robustness(geo.classifier, geo.generator, z, latent=latent)
    exact = geo.r_in(z)
    if orthonormal:
        assert torch.allclose(exact, 0.05 * geo.r_z(z), rtol=1e-4)
    assert est.success_rate >= 0.99
    assert float(((est.values / exact - 1).abs() <= 0.02).float().mean()) >= 0.99
    # never above the image distance of r_Z's own solution
    x = geo.generator(z)
    r_z_image = (geo.generator(latent.adversarial) - x).flatten(1).norm(dim=1)
    assert bool((est.values <= r_z_image).all())
    changed = geo.classifier.predict(geo.generator(est.adversarial)) != geo.classifier.predict(x)
    assert bool(changed.all())


def test_r_unc_is_at_most_r_in_when_the_range_is_a_subspace() -> None:
    """A latent move is an image move, so r_unc <= r_in; here f's normal leaves the range,
    so r_unc = r_in / sqrt(2) exactly, and the searches find both."""
    geo = geometry(off_range=1.0)
    z = sample_latents(150, D, seed=4)
    x = geo.generator(z)
    r_in = in_distribution_robustness(geo.classifier, geo.generator, z)
    attacks = [DeepFool(), CarliniWagnerL2(steps=50, binary_steps=6)]
    r_unc = unconstrained_robustness(geo.classifier, x, attacks=attacks)
    assert r_unc.success_rate == 1 and r_in.success_rate == 1
    assert bool((r_unc.values <= r_in.values).all())
    assert float(((r_unc.values / geo.r_unc(x) - 1).abs() <= 0.02).float().mean()) >= 0.99
    # float32 cancellation in x.w_image + b_image (|b_image| ~ 40) leaves an absolute error
    # of a few ulps of |b_image| / ||w_image||; the smallest distances are ~3e-5
    rounding = 16 * torch.finfo(torch.float32).eps * abs(geo.b_image) / float(geo.w_image.norm())
    assert torch.allclose(geo.r_unc(x), geo.r_in(z) / math.sqrt(2), rtol=1e-4, atol=rounding)


def test_the_normalisations_divide_by_the_stated_means() -> None:
    geo = geometry()
    z = sample_latents(64, D, seed=5)
    x = geo.generator(z)
    latent = latent_robustness(geo.classifier, geo.generator, z)
    ind = in_distribution_robustness(geo.classifier, geo.generator, z, latent=latent)
    unc = unconstrained_robustness(geo.classifier, x, attacks=[DeepFool()])
    means = {"r_Z": z.norm(dim=1).mean(), "r_in": x.flatten(1).norm(dim=1).mean()}
    means["r_unc"] = means["r_in"]
    for est in (latent, ind, unc):
        mean = float(means[est.quantity])
        assert est.scale == pytest.approx(mean, rel=1e-6)
        assert est.normalised_median == pytest.approx(est.median / mean, rel=1e-6)
        assert torch.allclose(est.normalised, est.values / mean)
        assert est.median == float(est.values.median())
        summary = est.as_json()
        json.dumps(summary, allow_nan=False)
        assert summary["scale"] == est.scale and summary["normalised_by"].startswith("mean ||")
        assert not any(isinstance(v, Tensor) for v in summary.values())
        assert summary["method"].startswith(est.quantity)


def test_estimate_all_on_a_nonlinear_generator() -> None:
    generator, clf = SigmoidGenerator(), tanh_network()
    out = estimate_all(
        clf,
        generator,
        60,
        seed=7,
        unconstrained_attacks=[DeepFool(), CarliniWagnerL2(steps=30, binary_steps=4)],
        search=PenaltySearch(steps=60, binary_steps=4),
    )
    assert torch.equal(out.z, sample_latents(60, D, seed=7))
    assert out.latent.success_rate >= 0.99 and out.in_distribution.success_rate >= 0.99
    assert bool((out.unconstrained.values <= out.in_distribution.values).all())
    model = LatentClassifier(clf, generator)
    x = model.images(out.z)
    r_z_image = (model.images(out.latent.adversarial) - x).flatten(1).norm(dim=1)
    assert bool((out.in_distribution.values <= r_z_image).all())
    assert bool((out.in_distribution.values < 0.99 * r_z_image).any())  # the penalty search
    summary = out.as_json()
    json.dumps(summary, allow_nan=False)
    assert summary["share_r_unc_at_most_r_in"] == 1.0 and summary["n"] == 60


def test_random_rays_flip_what_a_saturated_generator_hides_from_gradients() -> None:
    generator, clf = SigmoidGenerator(saturated=True), uniform_network(3)
    z = sample_latents(200, D, seed=9)
    gradients_only = latent_robustness(clf, generator, z, random_rays=0)
    est = latent_robustness(clf, generator, z)
    assert gradients_only.success_rate < 0.95 and est.success_rate >= 0.99
    assert torch.equal(
        est.values[gradients_only.success], gradients_only.values[gradients_only.success]
    )
    model = LatentClassifier(clf, generator)
    assert torch.equal(model.predict(est.adversarial) != model.predict(z), est.success)
    assert torch.allclose(est.values[est.success], (est.adversarial - z).norm(dim=1)[est.success])


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_before_any_work() -> None:
    geo = geometry()
    model = geo.classifier.module
    assert isinstance(model, LinearImageModel)
    wrong = LinearGenerator(geo.a, geo.generator.c)
    wrong.output_shape = (1, 2, 8)
    z = sample_latents(8, D, 0)
    with pytest.raises(InputError, match=r"images of shape \(1, 2, 8\)"):
        latent_robustness(geo.classifier, wrong, z)
    with pytest.raises(InputError, match=r"shape \(N, 4\)"):
        latent_robustness(geo.classifier, geo.generator, sample_latents(8, D + 1, 0))
    with pytest.raises(InputError, match=r"shape \(N, 4\)"):
        in_distribution_robustness(geo.classifier, geo.generator, z[:, :3])
    with pytest.raises(InputError, match="images of shape"):
        estimate_all(geo.classifier, wrong, 8)
    with pytest.raises(InputError, match="latent_dim"):
        latent_robustness(geo.classifier, nn.Linear(D, M), z)
    with pytest.raises(InputError, match=r"brittle\.Classifier"):
        latent_robustness(model, geo.generator, z)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="n must be"):
        estimate_all(geo.classifier, geo.generator, 0)
    with pytest.raises(InputError, match="eta"):
        common_perturbation_share(geo.classifier, geo.classifier, geo.generator, 8, 0.0)
    with pytest.raises(InputError, match="untargeted L2"):
        latent_robustness(geo.classifier, geo.generator, z, attacks=[PGD(eps=1.0)])
    with pytest.raises(InputError, match="needs a bounded box"):
        latent_robustness(geo.classifier, geo.generator, z, attacks=[CarliniWagnerL2()])
    with pytest.raises(InputError, match="images of shape"):
        ProjectedClassifier(geo.classifier, wrong)
    with pytest.raises(InputError, match="images of shape"):
        theorem2_check(geo.classifier, wrong, 8)
    assert wrong.forwards == 0 and geo.generator.forwards == 0 and model.forwards == 0


# ----------------------------------------------------------------------------- Theorem 2
@pytest.mark.parametrize("with_encoder", [False, True])
def test_the_projected_classifier_inverts_an_injective_linear_generator(
    with_encoder: bool,
) -> None:
    geo = geometry(orthonormal=False, with_encoder=with_encoder)
    projected = ProjectedClassifier(geo.classifier, geo.generator)
    z = sample_latents(200, D, seed=8)
    x = geo.generator(z)
    z_star, error = projected.invert(x)
    assert float(error.max()) < 1e-3 and float((z_star - z).norm(dim=1).max()) < 1e-2
    tilde = Classifier(projected, bounds=(0, 1), input_shape=SHAPE)
    assert torch.equal(tilde.predict(x), geo.classifier.predict(x))  # f~ = f on the range
    with pytest.raises(GradientError):  # the argmin is not differentiated
        DeepFool()(tilde, x[:4], tilde.predict(x[:4]))


def test_theorem2_holds_on_the_linear_model() -> None:
    """f~ = f o (projection on the range): r_unc(f~) = r_in, twice the theorem's floor."""
    geo = geometry(orthonormal=False, off_range=1.0)
    projected = ProjectedClassifier(geo.classifier, geo.generator, restarts=2)
    out = theorem2_check(
        geo.classifier, geo.generator, 40, projected=projected, random_directions=1
    )
    json.dumps(out, allow_nan=False)
    assert out["n"] == 40 and len(out["ratios"]) == 40
    assert out["share_satisfied"] == 1.0 and out["violations"] == 0
    assert out["agreement"] == 1.0 and out["inversion_error_max"] < 1e-3
    ratios = torch.tensor(out["ratios"])
    assert float(ratios.min()) > 0.9 and float(ratios.median()) < 1.05


# ----------------------------------------------------------------------------- Theorem 3
def test_common_perturbations_of_two_parallel_half_spaces() -> None:
    """f and h with the same normal (unit in image space) and biases b_f, b_h: one v flips
    both iff they agree at x and max(|s_f|, |s_h|) <= eta (s the signed distances); where
    they disagree no v can (w.v moves both the same way)."""
    geo = geometry(b=0.3)
    other = geometry(b=0.6)
    n, eta = 1000, 0.03
    same = common_perturbation_share(geo.classifier, geo.classifier, geo.generator, n, eta)
    x = geo.generator(sample_latents(n, D, seed=0))
    assert same["delta"] == 0.0
    assert same["share"] == pytest.approx(float((geo.r_unc(x) <= eta).float().mean()), abs=0.01)
    both = common_perturbation_share(geo.classifier, other.classifier, geo.generator, n, eta)
    s_f = (x.flatten(1) @ geo.w_image + geo.b_image) / geo.w_image.norm()
    s_h = (x.flatten(1) @ other.w_image + other.b_image) / other.w_image.norm()
    agree = (s_f >= 0) == (s_h >= 0)
    exact = agree & (torch.maximum(s_f.abs(), s_h.abs()) <= eta)
    assert both["delta"] == pytest.approx(float((~agree).float().mean()), abs=1e-6)
    assert both["share"] == pytest.approx(float(exact.float().mean()), abs=0.01)
    json.dumps(both, allow_nan=False)


def test_theorem3_check_is_the_bound_at_the_measured_disagreement() -> None:
    """theorem3_check: delta counted on its own draws, its one-sided Clopper-Pearson limit
    (closed form 1 - (1 - c)^(1/n) when no disagreement is seen), Theorem 3's bound at both,
    and the share the joint attack finds, at the corollary's median radius by default."""
    geo = geometry(b=0.3)
    other = geometry(b=0.6)
    lipschitz = 0.05  # A has orthonormal columns scaled by 0.05: ||A r|| = 0.05 ||r||
    same = theorem3_check(
        geo.classifier, geo.classifier, geo.generator, 200, lipschitz=lipschitz, n_samples=500
    )
    assert same["delta"] == 0.0
    assert same["delta_upper"] == pytest.approx(1 - 0.05 ** (1 / 500))
    assert same["eta"] == pytest.approx(lipschitz * math.sqrt(math.log(2 * math.pi)))
    assert same["bound"] == pytest.approx(0.5)
    assert same["bound_conservative"] == pytest.approx(
        transfer_bound(same["eta"], same["delta_upper"], lipschitz)
    )
    both = theorem3_check(
        geo.classifier, other.classifier, geo.generator, 200, lipschitz=lipschitz, n_samples=500
    )
    x = geo.generator(sample_latents(500, D, seed=1))
    disagree = (x.flatten(1) @ geo.w_image + geo.b_image >= 0) != (
        x.flatten(1) @ other.w_image + other.b_image >= 0
    )
    assert both["delta"] == pytest.approx(float(disagree.float().mean()))
    assert both["delta"] < both["delta_upper"] < 1
    assert both["bound"] == pytest.approx(transfer_bound(both["eta"], both["delta"], lipschitz))
    assert both["bound_conservative"] <= both["bound"]
    assert both["attack_reaches_bound"] == (both["share"] >= both["bound_conservative"])
    json.dumps(both, allow_nan=False)
    with pytest.raises(InputError, match="confidence"):
        theorem3_check(geo.classifier, geo.classifier, geo.generator, 10, confidence=1.5)
