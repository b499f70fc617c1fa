"""The smoothed classifier as a model: attacked with EOT and certified by smoothing in one
evaluation (the sandwich for g)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import brittle
from brittle.certify.smoothed_model import SmoothedClassifier
from brittle.certify.smoothing import Smoothed
from brittle.errors import InputError
from brittle.eval.certified import certifier
from brittle.threat import Norm

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 8, 8)


def _linear() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A two-class linear network on 8x8 inputs whose boundary w.x + b = 0 passes through
    the middle of the box, and its w and b (logit 1 minus logit 0)."""
    torch.manual_seed(0)
    layer = nn.Linear(64, 2)
    with torch.no_grad():
        layer.bias.zero_()
        layer.bias[1] = -0.5 * (layer.weight[1] - layer.weight[0]).sum()
    w = (layer.weight[1] - layer.weight[0]).detach()
    b = (layer.bias[1] - layer.bias[0]).detach()
    return nn.Sequential(nn.Flatten(), layer), w, b


def test_forward_passes_are_noisy_draws_and_certify_is_smoothed() -> None:
    net, _, _ = _linear()
    g = SmoothedClassifier(net, sigma=0.25, n0=50, n=500, batch_size=4096)
    x = torch.rand(6, *SHAPE)
    assert g.eot is not None and g.eot.draws == 1 and g.votes == 500
    first, second = g.logits(x), g.logits(x)
    assert not torch.equal(first, second)  # fresh noise on every pass
    torch.manual_seed(1)
    noisy = g.logits(x)
    torch.manual_seed(1)
    expected = net(x + 0.25 * torch.randn_like(x))  # x + N(0, sigma^2 I), then f
    assert torch.allclose(noisy, expected)
    ids = torch.tensor([3, 9, 4, 7, 1, 0])
    mine = g.certify(x, ids=ids)
    theirs = Smoothed(net, 0.25, batch_size=4096).certify(x, ids, n0=50, n=500)
    assert torch.equal(mine.label, theirs.label) and torch.equal(mine.radius, theirs.radius)
    assert mine.method == "randomized-smoothing" and mine.norm == Norm.L2


def test_the_verdict_is_the_vote_of_g() -> None:
    """predict_scores: log (count + 1) / (votes + K) of the votes' classes. For a linear f,
    P(f(x + eps) = 1) = Phi((w.x + b) / (sigma ||w||)): the vote shares match it."""
    net, w, b = _linear()
    g = SmoothedClassifier(net, sigma=0.25, votes=4000, batch_size=1000)
    x = torch.rand(8, *SHAPE)
    g.check_outputs(x)
    scores = g.predict_scores(x)
    shares = scores.exp()
    assert torch.allclose(shares.sum(1), torch.ones(8), atol=1e-5)
    counts = shares * (4000 + 2) - 1
    assert torch.allclose(counts, counts.round(), atol=1e-2)  # whole counts
    p_one = torch.distributions.Normal(0.0, 1.0).cdf((x.flatten(1) @ w + b) / (0.25 * w.norm()))
    assert bool(((counts[:, 1] / 4000 - p_one).abs() < 0.04).all())  # 5 standard errors


def test_ibp_is_refused_for_a_smoothed_classifier() -> None:
    net, _, _ = _linear()
    g = SmoothedClassifier(net, sigma=0.25)
    with pytest.raises(InputError, match="smoothing or auto"):
        certifier(g, "ibp", Norm.L2, 16)
    with pytest.raises(InputError, match="L2"):
        certifier(g, "auto", Norm.LINF, 16)
    assert certifier(g, "auto", Norm.L2, 16)[0] == "smoothing"


def test_evaluate_puts_the_smoothing_certificate_below_the_attacks(tmp_path: Path) -> None:
    """brittle.evaluate on the smoothed classifier: EOT turned on, the sandwich certified by
    smoothing, no certified radius above an attacked distance, and every radius at most the
    exact L2 distance of the linear boundary, |w.x + b| / ||w|| (g's boundary is f's: for a
    linear f, P(f(x + eps) = 1) = Phi((w.x + b) / (sigma ||w||)))."""
    net, w, b = _linear()
    x = torch.rand(16, *SHAPE)
    margin = x.flatten(1) @ w + b
    y = (margin > 0).long()
    g = SmoothedClassifier(net, sigma=0.25, n0=50, n=2000, batch_size=8192)
    outcome = brittle.evaluate(
        g,
        (x, y),
        out=tmp_path / "eval",
        attacks="pgd:norm=l2:steps=10",
        eps=[0.1, 0.2, 0.4, 0.8],
        certify=True,
        progress=False,
    )
    assert outcome is not None
    report = outcome.report
    sandwich = report["sandwich"]
    assert sandwich["method"] == "smoothing" and sandwich["norm"] == "l2"
    checks = {c["name"]: c["status"] for c in report["sanity_checks"]}
    assert checks["certified_within_attacked"] == "passed"
    samples = sandwich["samples"]
    certified = torch.tensor(samples["certified"], dtype=torch.float64)
    attacked = torch.tensor(
        [float("inf") if a is None else a for a in samples["attacked"]], dtype=torch.float64
    )
    assert bool((certified <= attacked).all())
    assert bool((certified > 0).any())  # the certificates say something
    assert bool((attacked < float("inf")).any())  # and so do the attacks
    exact = (margin.abs() / w.norm()).double()[torch.tensor(samples["ids"])]
    assert bool((certified <= exact + 1e-6).all())


def test_the_base_preprocessing_and_box_follow_the_noise() -> None:
    """A Classifier base keeps its box and preprocessing: the noise is added in input space,
    then (x - mean) / std; bad sigma is refused before any work."""
    net, _, _ = _linear()
    base = brittle.Classifier(net, bounds=(-1.0, 2.0), preprocessing=(0.5, 0.25))
    g = SmoothedClassifier(base, sigma=0.1)
    assert g.bounds == (-1.0, 2.0) and g.module is net
    x = torch.rand(4, *SHAPE)
    torch.manual_seed(3)
    got = g.logits(x)
    torch.manual_seed(3)
    assert torch.allclose(got, net((x + 0.1 * torch.randn_like(x) - 0.5) / 0.25))
    with pytest.raises(InputError, match="sigma"):
        SmoothedClassifier(net, sigma=0.0)
    with pytest.raises(InputError, match="votes"):
        SmoothedClassifier(net, sigma=0.1, votes=0)
