"""Randomised smoothing (brittle.certify.smoothing) against closed forms and scipy, and the
Gaussian augmentation defence it pairs with."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor, nn

from brittle.certify import Certificates, certified_accuracy
from brittle.certify.result import ABSTAIN
from brittle.certify.smoothing import (
    ESTIMATE_STREAM,
    Smoothed,
    binomial_p_value,
    clopper_pearson_lower,
)
from brittle.classifier import Classifier
from brittle.cli import ERROR_EXIT, main
from brittle.defenses import DefenseOptions, build_objective
from brittle.defenses.gaussian import GaussianTraining
from brittle.errors import InputError
from brittle.randomness import normal
from brittle.zoo import load_checkpoint

DIM = 6


class Linear(nn.Module):
    """The binary linear classifier f(x) = 1 if w.x + b > 0 else 0, as logits [0, w.x + b]."""

    def __init__(self, w: Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), nn.Parameter(torch.tensor(b))

    def forward(self, x: Tensor) -> Tensor:
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


class Recorder(nn.Module):
    """A linear classifier that keeps every input it sees (to inspect the noise)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []
        self.inner = Linear(torch.ones(DIM), -DIM / 2)

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.clone())
        return self.inner(x)


W = torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5, -1.0])
B = 0.3


def _inputs(n: int, seed: int = 0) -> Tensor:
    return torch.rand(n, DIM, generator=torch.Generator().manual_seed(seed))


def _distance(x: Tensor) -> Tensor:
    """The exact L2 distance of each input to the linear boundary: |w.x + b| / ||w||."""
    return (x @ W + B).abs() / W.norm()


def test_a_linear_classifier_is_certified_up_to_its_exact_distance_to_the_boundary() -> None:
    # g(x) = the class of sign(w.x + b) with p_A = Phi(|w.x + b| / (sigma ||w||)), so
    # sigma Phi^-1(p_A_lower) approaches |w.x + b| / ||w|| from below as n grows
    sigma, n = 0.5, 20_000
    x = _inputs(12)
    exact = _distance(x).double()
    x = x[(exact > 0.1 * sigma) & (exact < 2 * sigma)]
    exact = _distance(x).double()
    smoothed = Smoothed(Linear(W, B), sigma, seed=3)
    cert = smoothed.certify(x, n0=100, n=n, alpha=0.001)
    truth = ((x @ W + B) > 0).long()
    assert torch.equal(cert.label, truth)
    assert bool((cert.radius <= exact).all())
    # the bound's gap: at most ~3.1 binomial sd of p_A (alpha = 0.001) plus the draw's own
    assert bool((cert.radius >= exact - 0.1 * sigma).all()), (cert.radius, exact)
    # the estimation counts follow p_A = Phi(distance / sigma) within 5 binomial sd
    counts = smoothed.counts(x, torch.arange(len(x)), n, ESTIMATE_STREAM)
    p_a = torch.as_tensor(stats.norm.cdf((exact / sigma).numpy()))
    share = counts.gather(1, truth[:, None])[:, 0].double() / n
    assert bool(((share - p_a).abs() <= 5 * (p_a * (1 - p_a) / n).sqrt() + 1e-9).all())


def test_on_the_boundary_both_procedures_abstain_and_far_from_it_they_do_not() -> None:
    w = torch.ones(DIM)
    on = torch.full((1, DIM), 0.5)  # w.x - 3 = 0: p_A = 1/2
    far = torch.full((1, DIM), 0.95)  # distance (5.7 - 3) / sqrt(6) = 1.1 = 4.4 sigma
    smoothed = Smoothed(Linear(w, -DIM / 2), 0.25)
    x = torch.cat([on, far])
    cert = smoothed.certify(x, n0=50, n=2_000)
    assert cert.label.tolist() == [ABSTAIN, 1]
    assert cert.radius[0] == 0 and 0 < cert.radius[1] <= 2.7 / math.sqrt(DIM)
    predicted = smoothed.predict(x, n=2_000)
    assert predicted.label.tolist() == [ABSTAIN, 1]
    assert bool((predicted.radius == 0).all())
    # certified accuracy counts the abstention as wrong at every radius, including 0
    acc = certified_accuracy(cert, torch.tensor([1, 1]), [0.0, 0.1])
    assert acc.tolist() == [0.5, 0.5]


def test_the_certificates_do_not_depend_on_the_batch_size_or_the_order() -> None:
    x, ids = _inputs(5, seed=1), torch.tensor([4, 17, 2, 9, 30])
    base = Linear(W, B)
    results = [
        Smoothed(base, 0.5, seed=7, batch_size=size).certify(x, ids, n0=30, n=301)
        for size in (3, 7, 301, 5_000, None)
    ]
    for other in results[1:]:
        assert torch.equal(other.label, results[0].label)
        assert torch.equal(other.radius, results[0].radius)
    order = torch.tensor([3, 0, 4, 1, 2])
    shuffled = Smoothed(base, 0.5, seed=7, batch_size=64).certify(x[order], ids[order], 30, 301)
    assert torch.equal(shuffled.radius, results[0].radius[order])
    assert torch.equal(shuffled.ids, ids[order])


def test_each_sample_draws_its_own_noise_keyed_by_its_id() -> None:
    recorder = Recorder()
    smoothed = Smoothed(recorder, 0.5, seed=11, batch_size=1_000)
    x = torch.full((2, DIM), 0.5)  # the same input twice
    ids = torch.tensor([5, 6])
    smoothed.counts(smoothed._inputs(x, ids)[0], ids, 8, ESTIMATE_STREAM)
    noise = (torch.cat(recorder.seen[-1:]).view(2, 8, DIM) - 0.5) / 0.5
    assert not torch.allclose(noise[0], noise[1])
    # draw j of sample i is the j-th block of randomness.normal's sequence of (seed, i, stream)
    for row, i in enumerate(ids.tolist()):
        expected = normal(11, torch.tensor([i]), ESTIMATE_STREAM, 8 * DIM).view(8, DIM)
        torch.testing.assert_close(noise[row], expected.float(), atol=1e-5, rtol=0)


def test_clopper_pearson_and_the_binomial_test_match_scipy() -> None:
    n, alpha = 1_000, 0.001
    k = np.array([0, 1, 250, 500, 900, 999, 1_000])
    ours = clopper_pearson_lower(k, n, alpha)
    for ki, bound in zip(k, ours, strict=True):
        ci = stats.binomtest(int(ki), n).proportion_ci(1 - 2 * alpha, method="exact")
        assert bound == pytest.approx(ci.low, abs=1e-12)
    n_a, n_b = np.array([10, 60, 50, 7, 0]), np.array([10, 40, 30, 1, 3])
    for a, b, p in zip(n_a, n_b, binomial_p_value(n_a, n_b), strict=True):
        assert p == pytest.approx(stats.binomtest(int(a), int(a + b), 0.5).pvalue, rel=1e-9)


def test_the_largest_radius_is_sigma_times_the_quantile_of_alpha_to_the_one_over_n() -> None:
    # every draw agrees: p_A_lower = alpha^(1/n), the most n draws can certify
    smoothed = Smoothed(Linear(torch.ones(DIM), 100.0), 0.25)
    cert = smoothed.certify(_inputs(2), n0=10, n=500, alpha=0.01)
    expected = 0.25 * stats.norm.ppf(0.01 ** (1 / 500))
    torch.testing.assert_close(cert.radius, torch.full((2,), expected, dtype=torch.float64))
    assert isinstance(cert, Certificates) and cert.norm == "l2" and len(cert) == 2


def test_a_classifier_keeps_its_preprocessing_and_a_module_is_wrapped() -> None:
    x = _inputs(6)
    plain = Smoothed(Linear(W, B), 0.5).certify(x, n0=20, n=200)
    # noise is added in input space, before the preprocessing: (2W).(x - 0.2) / 2 + B + 0.2
    # sum(W) is W.x + B, so the same classifier behind (mean 0.2, std 2) gives the same counts
    inner = Linear(2 * W, B + 0.2 * float(W.sum()))
    behind = Classifier(inner, preprocessing=(0.2, 2.0))
    wrapped = Smoothed(behind, 0.5).certify(x, None, 20, 200)
    torch.testing.assert_close(wrapped.radius, plain.radius)
    assert torch.equal(wrapped.label, plain.label)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, x: Smoothed(Linear(W, B), 0.0), "sigma must be > 0"),
        (lambda s, x: Smoothed(Linear(W, B), math.nan), "sigma must be a finite number"),
        (lambda s, x: Smoothed("model", 0.5), "base must be a brittle Classifier"),  # type: ignore[arg-type]
        (lambda s, x: s.certify(x, n0=0), "n0 must be a positive integer"),
        (lambda s, x: s.certify(x, n=2.5), "n must be a positive integer"),
        (lambda s, x: s.certify(x, alpha=1.0), r"alpha must be in \(0, 1\)"),
        (lambda s, x: s.predict(x, alpha=0), r"alpha must be in \(0, 1\)"),
        (lambda s, x: s.certify(x * 3), "outside the bounds"),
        (lambda s, x: s.certify(x, torch.tensor([1, 1, 2])), "ids must be distinct"),
        (lambda s, x: s.certify(x, torch.tensor([1, 2])), "ids has 2 entries for 3 inputs"),
        (lambda s, x: s.predict(x, torch.zeros(3)), "ids must be a 1-D integer tensor"),
        (lambda s, x: Smoothed(Linear(W, B), 0.5, batch_size=0), "batch_size must be"),
    ],
)
def test_bad_input_is_refused_with_what_to_do(call, message: str) -> None:  # type: ignore[no-untyped-def]
    smoothed = Smoothed(Linear(W, B), 0.5)
    with pytest.raises(InputError, match=message):
        call(smoothed, _inputs(3))


def test_the_chunk_size_follows_the_memory_budget() -> None:
    smoothed = Smoothed(Linear(W, B), 0.5)
    x = _inputs(2)
    rows = smoothed.rows(x)
    assert rows > 1_000  # a 6-feature input: hundreds of thousands of rows fit in 512 MiB
    assert Smoothed(Linear(W, B), 0.5, batch_size=9).rows(x) == 9


def test_gaussian_training_adds_unclipped_noise_of_standard_deviation_sigma() -> None:
    objective = build_objective(DefenseOptions("gaussian", sigma=0.5))
    assert isinstance(objective, GaussianTraining)
    assert (objective.sigma, objective.alpha) == (0.5, 0.0)
    assert objective.describe() == {"name": "gaussian", "sigma": 0.5, "alpha": 0.0}
    default = build_objective(DefenseOptions("gaussian"))  # the registered default
    assert isinstance(default, GaussianTraining) and default.sigma == 0.25
    x = torch.full((400, 50), 0.5)
    torch.manual_seed(0)
    noise = objective.perturb(nn.Identity(), x, torch.zeros(400), None) - x
    assert float(noise.std()) == pytest.approx(0.5, rel=0.02)
    assert abs(float(noise.mean())) < 0.01
    # one training step: the noisy copies leave the box, and nothing clips them
    model = nn.Sequential(nn.Linear(50, 3))
    seen: list[Tensor] = []
    model.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    objective.backward(model, x, torch.zeros(400, dtype=torch.long))
    assert float(seen[-1].max()) > 1.5 and float(seen[-1].min()) < -0.5
    with pytest.raises(InputError, match="--eps does not apply to --defense gaussian"):
        build_objective(DefenseOptions("gaussian", eps=0.1))
    with pytest.raises(InputError, match="sigma must be > 0"):
        build_objective(DefenseOptions("gaussian", sigma=-1.0))


def test_no_input_gives_no_certificates() -> None:
    smoothed = Smoothed(Linear(W, B), 0.5)
    for cert in (smoothed.certify(torch.zeros(0, DIM)), smoothed.predict(torch.zeros(0, DIM))):
        assert len(cert) == 0 and cert.radius.dtype == torch.float64


def test_brittle_train_takes_the_gaussian_defence_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "noisy.pt"
    args = ["train", "--dataset", "digits", "--epochs", "1", "--n-train", "300", "--quiet"]
    assert main([*args, "--defense", "gaussian", "--sigma", "0.5", "--out", str(out)]) == 0
    _, meta = load_checkpoint(out)
    assert meta["defense"] == {"name": "gaussian", "sigma": 0.5, "alpha": 0.0}
    assert main([*args, "--defense", "gaussian", "--sigma", "0", "--out", str(out)]) == ERROR_EXIT
    assert "sigma must be > 0" in capsys.readouterr().err
