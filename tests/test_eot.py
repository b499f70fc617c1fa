"""Randomised models: EOT gradients (k draws, counted), the verdict over several draws (a
strict majority), determinism given the seed, and the evaluation turning EOT on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.access import ModelAccess
from brittle.attacks import FGSM, PGD
from brittle.eot import EOT, misclassified, use_eot_if_randomised, verdict_scores
from brittle.errors import InputError
from brittle.eval.api import evaluate
from brittle.threat import Capability

D = 16
W = torch.tensor([1.0, -1.0] * (D // 2))
V = torch.tensor([1.0, 1.0, -1.0, -1.0] * (D // 4))  # orthogonal to W: W . V = 0


class Linear(nn.Module):
    """h(x) = W . (x - 1/2), logits (-h, h): deterministic."""

    def forward(self, x: Tensor) -> Tensor:
        h = (x - 0.5) @ W
        return torch.stack([-h, h], dim=1)


class NoisyGradient(nn.Module):
    """h(x) = W . (x - 1/2) + s (A / w) (frac(w V . x) - 1/2), one random sign s per sample
    and call: the added value is at most A / (2 w) = 0.01, but the gradient W + s A V with
    A = 2 has the sign of s V on every coordinate. One draw's gradient sign is a coin flip
    along V, orthogonal to W: a sign step of one draw never changes W . x. The mean of k
    draws is W + A mean(s) V, whose sign is W's once |mean(s)| < 1/2."""

    A, W_FREQ = 2.0, 100.0

    def forward(self, x: Tensor) -> Tensor:
        s = torch.randint(0, 2, (len(x),), device=x.device).to(x.dtype) * 2 - 1
        t = self.W_FREQ * (x @ V)
        saw = (t - torch.floor(t)) - 0.5
        h = (x - 0.5) @ W + s * (self.A / self.W_FREQ) * saw
        return torch.stack([-h, h], dim=1)


class Flip(nn.Module):
    """Predicts class 0 or 1 at random, class 1 with probability ``p``: logits (2, 0) or
    (0, 2) (not rows summing to 1, which read as probabilities); the input enters through a
    zero-weight term that keeps a gradient."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        one = (torch.rand(len(x), device=x.device) < self.p).to(x.dtype)
        return 2 * torch.stack([1 - one, one], dim=1) + 0 * x.sum(1, keepdim=True)


class Scripted(nn.Module):
    """Class 1 on the calls whose number is in ``wrong``, else class 0 (a scripted draw)."""

    def __init__(self, wrong: set[int]) -> None:
        super().__init__()
        self.wrong, self.calls = wrong, 0

    def forward(self, x: Tensor) -> Tensor:
        one = float(self.calls in self.wrong)
        self.calls += 1
        return 2 * torch.tensor([[1 - one, one]]) + 0 * x.sum(1, keepdim=True)


def _points(n: int = 48, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Inputs 0.5 + 0.1 r + 0.02 u (r = +-1, u uniform in [-1, 1]: inside the box by more
    than 0.3, past eps = 0.2), kept where the margin |W . (x - 1/2)| lies in [0.4, 1.6]
    (EOT PGD can move it by up to 16 eps = 3.2), and the labels of the deterministic part."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randint(0, 2, (8 * n, D), generator=g).float() * 2 - 1
    u = torch.rand(8 * n, D, generator=g) * 2 - 1
    x = 0.5 + 0.1 * r + 0.02 * u
    margin = ((x - 0.5) @ W).abs()
    keep = (margin >= 0.4) & (margin <= 1.6)
    x = x[keep][:n]
    y = ((x - 0.5) @ W > 0).long()
    assert len(x) == n
    return x, y


def test_eot_settings_are_checked() -> None:
    assert EOT() == EOT(20, 9)
    for bad in ({"samples": 0}, {"draws": 0}, {"samples": True}, {"draws": 2.0}):
        with pytest.raises(InputError, match="EOT"):
            EOT(**bad)


def test_each_gradient_averages_k_draws_and_counts_them() -> None:
    x, y = _points(8)
    model = Classifier(Linear(), input_shape=(D,))
    model.check_outputs(x)
    plain = ModelAccess(model, Capability.WHITE_BOX, len(x), "test")
    g1, z1 = plain.loss_gradient(x, y)
    model.eot = EOT(samples=5, draws=3)
    access = ModelAccess(model, Capability.WHITE_BOX, len(x), "test")
    g5, z5 = access.loss_gradient(x, y)
    torch.testing.assert_close(g5, g1)  # a deterministic model: the mean of equal draws
    torch.testing.assert_close(z5, z1)
    assert access.queries.tolist() == [5] * len(x) and access.gradients.tolist() == [5] * len(x)
    idx = torch.arange(0, len(x), 2)
    products, _ = access.vjp(x[idx], torch.eye(2).expand(len(idx), 2, 2), idx)
    assert products.shape == (len(idx), 2, D)
    torch.testing.assert_close(products[:, 1], W.expand(len(idx), D))
    # a vjp of 2 vectors: 5 draws, each a query and 2 gradients
    assert access.queries[idx].tolist() == [10] * len(idx)
    assert access.gradients[idx].tolist() == [5 + 10] * len(idx)


def test_pgd_spends_k_times_the_gradients_and_judges_over_the_draws() -> None:
    x, y = _points(16)
    model = Classifier(Linear(), input_shape=(D,))
    attack = PGD(0.05, steps=6, random_start=False, early_stop=False)
    plain = attack(model, x, y)
    model.eot = EOT(samples=4, draws=5)
    eot = attack(model, x, y)
    assert torch.equal(eot.x_adv, plain.x_adv)  # the mean of 4 equal gradients: one step
    assert torch.equal(eot.success, plain.success)
    assert torch.equal(eot.gradients, 4 * plain.gradients)
    assert torch.equal(eot.queries, 4 * plain.queries)
    assert eot.verification_queries.tolist() == [2 * 5] * len(x)  # clean and adversarial


def test_eot_breaks_a_model_whose_single_draw_gradient_is_noise() -> None:
    x, y = _points(32)
    model = Classifier(NoisyGradient(), input_shape=(D,))
    # every sample takes all 20 steps: the end of the ascent, not the first crossing
    attack = PGD(0.2, steps=20, random_start=False, early_stop=False)
    one_draw = attack(model, x, y)
    assert bool(one_draw.correct_clean.all())
    # the sign steps of one draw move along V only: W . x, hence the prediction, never moves
    assert float(one_draw.robust.float().mean()) == 1.0
    # the mean of 10 draws has the sign of W unless |mean(s)| >= 1/2: P = 0.11 per step
    model.eot = EOT(samples=10, draws=9)
    eot = attack(model, x, y)
    assert bool(eot.correct_clean.all())
    assert float(eot.robust.float().mean()) == 0.0
    assert eot.gradients.tolist() == [10 * 20] * len(x)
    assert one_draw.gradients.tolist() == [20] * len(x)


def test_the_verdict_is_a_strict_majority_of_the_draws() -> None:
    x = torch.full((1, D), 0.5)
    y = torch.zeros(1, dtype=torch.long)
    for wrong, fooled in (({0, 1, 2}, True), ({0, 4}, False), ({1, 2, 3, 4}, True), (set(), False)):
        model = Classifier(Scripted(wrong), input_shape=(D,))
        model.eot = EOT(samples=1, draws=5)
        scores, passes = verdict_scores(model, x, misclassified(y))
        assert passes == 5
        # the scores of the first draw that agrees with the majority
        assert bool(scores.argmax(1) == 1) is fooled


def test_a_chance_misclassification_is_not_a_success() -> None:
    """A model that predicts the wrong class 3 times in 10 whatever its input: one draw
    counts about 30% of the samples fooled, a majority of 9 draws about 10% (P[Bin(9, 0.3)
    >= 5] = 0.099), and every verdict agrees with the prediction it reports."""
    x = torch.full((300, D), 0.5)
    y = torch.zeros(300, dtype=torch.long)
    model = Classifier(Flip(0.3), input_shape=(D,))
    one = FGSM(0.1)(model, x, y)
    model.eot = EOT(samples=1, draws=9)
    nine = FGSM(0.1)(model, x, y)
    assert 0.2 < one.success_rate() < 0.4
    assert nine.success_rate() < 0.17
    for result in (one, nine):
        assert torch.equal(result.success, result.pred_adv != result.y)


def test_same_seed_same_result_and_the_callers_generator_untouched() -> None:
    x, y = _points(24)
    model = Classifier(NoisyGradient(), input_shape=(D,))
    model.eot = EOT(samples=3, draws=3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = PGD(0.2, steps=10, seed=1)(model, x, y)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # another global state: no effect inside the attack
    again = PGD(0.2, steps=10, seed=1)(model, x, y)
    other = PGD(0.2, steps=10, seed=2)(model, x, y)
    assert torch.equal(first.x_adv, again.x_adv) and torch.equal(first.success, again.success)
    assert not torch.equal(first.x_adv, other.x_adv)


def test_a_deterministic_model_gives_the_same_result_at_any_batch_size() -> None:
    x, y = _points(24)
    model = Classifier(Linear(), input_shape=(D,))
    model.eot = EOT(samples=3, draws=3)
    attack = PGD(0.1, steps=5)
    whole = attack(model, x, y)
    parts = [
        attack(model, x[i : i + 5], y[i : i + 5], ids=range(i, min(i + 5, 24)))
        for i in range(0, 24, 5)
    ]
    assert torch.equal(whole.x_adv, torch.cat([p.x_adv for p in parts]))


def test_randomness_is_detected_and_turns_eot_on() -> None:
    x, _ = _points(8)
    steady = Classifier(Linear(), input_shape=(D,))
    assert use_eot_if_randomised(steady, x) is None and steady.eot is None
    noisy = Classifier(NoisyGradient(), input_shape=(D,))
    assert use_eot_if_randomised(noisy, x) == EOT()
    kept = Classifier(NoisyGradient(), input_shape=(D,))
    kept.eot = EOT(1, 1)
    assert use_eot_if_randomised(kept, x, EOT(5, 5)) == EOT(1, 1)


def test_an_evaluation_of_a_randomised_model_uses_eot_and_says_so(tmp_path: Path) -> None:
    x, y = _points(16)
    x = x.view(16, 1, 4, 4)  # images, for the report's pictures
    model = Classifier(nn.Sequential(nn.Flatten(), NoisyGradient()), input_shape=(1, 4, 4))
    outcome = evaluate(
        model, (x, y), out=tmp_path / "run", attacks=["fgsm"], eps=[0.1], progress=False
    )
    assert outcome is not None
    assert model.eot == EOT()
    assert outcome.report["model"]["eot"]["samples_per_gradient"] == EOT().samples
    check = next(c for c in outcome.report["sanity_checks"] if c["name"] == "deterministic")
    assert check["status"] == "passed" and "EOT" in check["message"]
