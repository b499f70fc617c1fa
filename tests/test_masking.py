"""The gradient-masking check (:mod:`brittle.checks.masking`) and where reports show it.

The "distilled-like" model is a LeNet trained on sklearn's 8x8 digits whose logits are
multiplied by 100, what defensive distillation at T = 100 deploys: its softmax saturates,
the cross-entropy gradient underflows to 0, FGSM fails, and attacks on the logits do not.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier, tasks
from brittle.attacks import CarliniWagnerL2
from brittle.checks.masking import (
    GAP_THRESHOLD,
    VANISHING_SHARE,
    MaskingCheck,
    gradient_masking_check,
    masking_warnings,
)
from brittle.cli.output import print_attack
from brittle.data import load_dataset
from brittle.errors import InputError
from brittle.zoo import build_model, save_checkpoint, train_model
from brittle.zoo.architectures import ZooModel

pytestmark = pytest.mark.usefixtures("one_thread")

TEMPERATURE = 100.0
EPS = 0.2
DISTILL = {"name": "distill", "temperature": TEMPERATURE, "teacher": "teacher.pt"}
ADVERSARIAL = {"name": "fgsm", "eps": 0.25, "alpha": 0.5}
SECTION = "Gradient masking check"


class Scale(nn.Module):
    """Multiplies the logits by a constant."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, z: Tensor) -> Tensor:
        return z * self.factor


@pytest.fixture(scope="module")
def lenet() -> ZooModel:
    """A small zoo LeNet trained for 5 epochs on the digits (about 90% test accuracy)."""
    train = load_dataset("digits", "train")
    model = build_model("lenet", (1, 8, 8), 10, seed=0, channels=[8, 16], hidden=[64])
    train_model(model, train.x, train.y, epochs=5, batch_size=64, lr=3e-3, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def samples() -> tuple[Tensor, Tensor]:
    test = load_dataset("digits", "test")
    return test.x[:200], test.y[:200]


@pytest.fixture(scope="module")
def plain(lenet: ZooModel, samples: tuple[Tensor, Tensor]) -> MaskingCheck:
    return gradient_masking_check(Classifier(lenet), *samples, EPS, batch_size=64)


@pytest.fixture(scope="module")
def saturated(lenet: ZooModel, samples: tuple[Tensor, Tensor]) -> MaskingCheck:
    distilled = Classifier(nn.Sequential(lenet, Scale(TEMPERATURE)))
    return gradient_masking_check(distilled, *samples, EPS, batch_size=64)


def test_a_saturated_softmax_warns_with_its_numbers(saturated: MaskingCheck) -> None:
    assert saturated.robust_fgsm > 0.7 and saturated.robust_pgd_ce > 0.6
    assert saturated.robust_pgd_margin < 0.1
    assert saturated.gap >= GAP_THRESHOLD and saturated.masked
    assert saturated.vanishing_share > 0.8 >= VANISHING_SHARE
    assert saturated.median_grad_l1 == 0.0
    gap, vanishing = saturated.warnings
    for number in (saturated.robust_fgsm, saturated.robust_pgd_ce, saturated.robust_pgd_margin):
        assert f"{number:.1%}" in gap
    assert "threshold 10" in gap and "loss=margin" in gap
    assert f"{saturated.vanishing_share:.1%}" in vanishing and "distillation" in vanishing
    data = json.loads(json.dumps(saturated.as_json()))
    assert data["warnings"] == saturated.warnings and data["masked"] is True
    assert data["robust_fgsm"] == saturated.robust_fgsm and data["gap_threshold"] == 0.1


def test_each_warning_fires_on_its_own_numbers(plain: MaskingCheck) -> None:
    """The rule, on given numbers: a saturated softmax (distillation) leaves the margin attack
    far below PGD on the cross-entropy; single-step adversarial training leaves FGSM far
    above both iterative attacks; an honest model leaves neither gap."""
    softmax = replace(plain, robust_fgsm=0.85, robust_pgd_ce=0.82, robust_pgd_margin=0.02)
    single = replace(plain, robust_fgsm=0.22, robust_pgd_ce=0.012, robust_pgd_margin=0.014)
    honest = replace(plain, robust_fgsm=0.30, robust_pgd_ce=0.25, robust_pgd_margin=0.24)
    (first,) = masking_warnings(softmax)
    assert "softmax's gradient" in first and "80.0 points less" in first
    (second,) = masking_warnings(single)
    assert "single step" in second and "20.8 points more than PGD" in second and "Tramer" in second
    assert masking_warnings(honest) == []
    assert single.gap == pytest.approx(0.208) and softmax.gap == pytest.approx(0.80)


def test_the_same_model_unscaled_does_not_warn(
    plain: MaskingCheck, saturated: MaskingCheck
) -> None:
    assert not plain.masked and plain.warnings == []
    assert plain.gap < GAP_THRESHOLD and plain.vanishing_share == 0.0
    assert plain.robust_fgsm < 0.2 and plain.median_grad_l1 > 0
    assert plain.clean_accuracy == saturated.clean_accuracy > 0.85
    # sign steps on the margin do not see the scale: the logit attack meets the same model
    assert abs(plain.robust_pgd_margin - saturated.robust_pgd_margin) <= 0.02


def test_gradient_norms_are_per_sample_and_do_not_depend_on_the_batches(
    lenet: ZooModel, samples: tuple[Tensor, Tensor], plain: MaskingCheck
) -> None:
    x, y = samples
    again = gradient_masking_check(Classifier(lenet), x, y, EPS, batch_size=7)
    assert plain.grad_l1.shape == plain.grad_l2.shape == (len(x),)
    assert torch.allclose(again.grad_l1, plain.grad_l1) and again.as_json() == plain.as_json()
    assert bool((plain.grad_l2 <= plain.grad_l1).all())
    l2 = gradient_masking_check(Classifier(lenet), x[:20], y[:20], 1.0, norm="l2")
    assert l2.norm == "l2" and l2.eps == 1.0
    with pytest.raises(InputError, match="at least one sample"):
        gradient_masking_check(Classifier(lenet), x[:0], y[:0], EPS)


def test_cw_still_breaks_the_distilled_like_model(
    lenet: ZooModel, samples: tuple[Tensor, Tensor]
) -> None:
    distilled = Classifier(nn.Sequential(lenet, Scale(TEMPERATURE)))
    x, y = samples[0][:40], samples[1][:40]
    result = CarliniWagnerL2(steps=50, binary_steps=5)(distilled, x, y)
    assert int(result.correct_clean.sum()) >= 30
    assert result.success_rate() > 0.9  # Carlini & Wagner 2016
    assert float(result.l2[result.success].median()) < 1.0  # of a box of L2 diameter 8


@pytest.fixture(scope="module")
def checkpoints(lenet: ZooModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The LeNet saved as is, as is but said to be defended, and distilled-like (last layer
    times 100) with its defence."""
    folder = tmp_path_factory.mktemp("masking")
    distilled = copy.deepcopy(lenet)
    last = distilled.net[-1]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        last.weight.mul_(TEMPERATURE)
        last.bias.mul_(TEMPERATURE)
    return {
        "plain": save_checkpoint(folder / "plain.pt", lenet, {"dataset": "digits"}),
        "unmasked": save_checkpoint(
            folder / "unmasked.pt", lenet, {"dataset": "digits", "defense": ADVERSARIAL}
        ),
        "defended": save_checkpoint(
            folder / "distilled.pt", distilled, {"dataset": "digits", "defense": DISTILL}
        ),
    }


def test_the_report_of_a_defended_model_shows_the_check(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    outcome = tasks.evaluate_model(
        model=checkpoints["defended"],
        out=tmp_path,
        eps_list=[0.1, EPS],
        n=100,
        progress=False,
    )
    report = json.loads(outcome.paths.json.read_text())
    check = report["gradient_masking"]
    assert check["n"] == 100 and check["eps"] == EPS and check["norm"] == "linf"
    assert check["masked"] and check["robust_fgsm"] - check["robust_pgd_margin"] >= 0.1
    assert check["warnings"] and all(w in report["warnings"] for w in check["warnings"])
    assert report["model"]["defense"] == DISTILL
    html = outcome.paths.html.read_text()
    assert SECTION in html and "Gradient masking suspected" in html
    assert "defended: distill (teacher: teacher.pt; temperature: 100)" in html
    assert "<dt>defense</dt><dd>name: distill; teacher: teacher.pt; temperature: 100" in html


def test_a_defended_model_without_masked_gradients_passes_the_check(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    outcome = tasks.evaluate_model(
        model=checkpoints["unmasked"], out=tmp_path, eps_list=[EPS], n=40, progress=False
    )
    check = outcome.report["gradient_masking"]
    assert not check["masked"] and check["warnings"] == []
    html = outcome.paths.html.read_text()
    assert SECTION in html and "No sign of gradient masking" in html
    assert "defended: fgsm (alpha: 0.5; eps: 0.25)" in html


def test_an_undefended_model_is_not_checked(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = tasks.evaluate_model(
        model=checkpoints["plain"], out=tmp_path, eps_list=[EPS], n=40, progress=False
    )
    assert "gradient_masking" not in json.loads(outcome.paths.json.read_text())
    assert SECTION not in outcome.paths.html.read_text()
    attacked = tasks.attack(model=checkpoints["plain"], eps=EPS, n=40, progress=False)
    assert "gradient_masking" not in attacked.summary
    print_attack(attacked)
    assert "gradient-masking" not in capsys.readouterr().out


def test_the_attack_summary_of_a_defended_model_carries_the_warnings(
    checkpoints: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = tasks.attack(model=checkpoints["defended"], eps=EPS, n=60, progress=False)
    check = outcome.summary["gradient_masking"]
    assert check["n"] == 60 and check["masked"]
    assert outcome.summary["warnings"] == check["warnings"]
    assert outcome.summary["model"]["defense"] == DISTILL
    print_attack(outcome)
    printed = capsys.readouterr().out
    assert "gradient-masking check (60 samples, eps=0.2 linf): robust accuracy FGSM" in printed
    assert all(f"warning: {w}" in printed for w in check["warnings"])


def test_a_budget_the_check_cannot_use_falls_back_to_linf(
    checkpoints: dict[str, Path],
) -> None:
    unbounded = tasks.attack(model=checkpoints["defended"], attack="deepfool", n=20, progress=False)
    check = unbounded.summary["gradient_masking"]
    assert (check["norm"], check["eps"]) == ("linf", pytest.approx(0.1))
