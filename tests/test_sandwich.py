"""The sandwich: certified <= true <= attacked robustness, per sample, in the evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import brittle
from brittle import Classifier
from brittle.attacks.deepfool import DeepFool
from brittle.certify.bound_propagation import certify
from brittle.certify.result import Certificates
from brittle.certify.sandwich import (
    Sandwich,
    attacked_robustness,
    certified_robustness,
    sandwich_check,
)
from brittle.errors import InputError
from brittle.eval.store import ResultStore
from brittle.threat import Norm

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 4, 4)


def test_a_linear_classifier_collapses_the_sandwich() -> None:
    """For a linear classifier the certificate is the exact L2 robustness, and DeepFool's
    one step lands on the nearest boundary: certified = true = attacked (up to overshoot)."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double()
    clf = Classifier(module, bounds=(-math.inf, math.inf), input_shape=SHAPE)
    x = torch.rand(20, *SHAPE, dtype=torch.float64)
    y = clf.predict(x)
    cert = certify(clf, x, norm="l2", y=y, steps=50)
    found = DeepFool(norm="l2", overshoot=0.001)(clf, x, y)
    assert bool(found.success.all())
    ids = torch.arange(20)
    certified, agrees = certified_robustness(cert, ids, y)
    attacked, correct = attacked_robustness([found], ids, Norm.L2)
    assert bool(agrees.all() and correct.all()) and bool((certified > 0).all())
    assert bool((certified <= attacked).all())
    assert bool((attacked <= 1.001 * certified + 2e-4).all())
    sandwich = Sandwich(ids, certified, agrees, attacked, correct, Norm.L2, "ibp")
    assert sandwich_check(sandwich).status == "passed"


def test_the_curves_count_what_they_say() -> None:
    ids = torch.arange(4)
    certified = torch.tensor([0.0, 0.1, 0.3, 0.0], dtype=torch.float64)
    attacked = torch.tensor([0.0, 0.2, math.inf, 0.05], dtype=torch.float64)
    agrees = torch.tensor([False, True, True, True])
    correct = torch.tensor([False, True, True, True])
    sandwich = Sandwich(ids, certified, agrees, attacked, correct, Norm.LINF, "ibp")
    low, high = sandwich.shares([0.0, 0.1, 0.25, 1.0])
    assert low == [0.75, 0.5, 0.25, 0.0]
    assert high == [0.75, 0.5, 0.25, 0.25]
    assert all(a <= b for a, b in zip(low, high, strict=True))


def test_a_certificate_above_an_attack_is_a_loud_bug() -> None:
    ids = torch.tensor([7, 8])
    sandwich = Sandwich(
        ids,
        torch.tensor([0.1, 0.5], dtype=torch.float64),
        torch.tensor([True, True]),
        torch.tensor([0.2, 0.3], dtype=torch.float64),
        torch.tensor([True, True]),
        Norm.LINF,
        "ibp",
    )
    check = sandwich_check(sandwich)
    assert check.status == "warning" and check.message.startswith("BUG")
    assert "sample 8" in check.message and check.numbers["violations"] == 1


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _data() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand((24, *SHAPE), generator=g)
    with torch.no_grad():
        y = _net()(x).argmax(1)
    y[:3] = (y[:3] + 1) % 3  # a few misclassified
    return x, y


def _evaluate(out: Path) -> dict[str, object]:
    outcome = brittle.evaluate(
        _net(), _data(), out=out, attacks="pgd:steps=10", eps=[0.02, 0.1, 0.5], certify=True
    )
    assert outcome is not None
    return outcome.report


def test_evaluate_certifies_stores_and_checks(tmp_path: Path) -> None:
    report = _evaluate(tmp_path)
    sandwich = report["sandwich"]
    assert isinstance(sandwich, dict) and sandwich["method"] == "ibp"
    low, high = sandwich["certified"], sandwich["attacked"]
    assert all(a <= b for a, b in zip(low, high, strict=True))
    assert high[0] == pytest.approx(21 / 24) and low[0] <= high[0]
    checks = {c["name"]: c for c in report["sanity_checks"]}  # type: ignore[attr-defined]
    assert checks["certified_within_attacked"]["status"] == "passed"
    assert "The sandwich" in (tmp_path / "report.html").read_text()
    with ResultStore(tmp_path / "results.sqlite") as store:
        run = store.record("evaluation", "evaluate")["run"]  # type: ignore[index]
        stored = store.certificates(run, "ibp", "linf")
    assert len(stored) == 24
    assert all(radius == 0 for sid, (_, radius) in stored.items() if sid < 3)  # misclassified


def test_a_planted_wrong_certificate_fails_the_check_loudly(tmp_path: Path) -> None:
    report = _evaluate(tmp_path)
    samples = report["sandwich"]["samples"]  # type: ignore[index]
    broken = next(
        i for i, a in zip(samples["ids"], samples["attacked"], strict=True) if a and a > 0
    )
    with ResultStore(tmp_path / "results.sqlite") as store:
        run = store.record("evaluation", "evaluate")["run"]  # type: ignore[index]
        label, _ = store.certificates(run, "ibp", "linf")[broken]
        store.put_certificates(run, "ibp", "linf", [broken], torch.tensor([label]), torch.ones(1))
    again = _evaluate(tmp_path)  # resumes: attacks and certificates come from the store
    checks = {c["name"]: c for c in again["sanity_checks"]}  # type: ignore[attr-defined]
    check = checks["certified_within_attacked"]
    assert check["status"] == "warning" and check["numbers"]["sample_id"] == broken
    assert again["warnings"][0].startswith("BUG")  # type: ignore[index]


def test_a_model_bound_propagation_cannot_read_is_refused_before_any_attack(
    tmp_path: Path,
) -> None:
    class Opaque(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(16, 3)

        def forward(self, x: Tensor) -> Tensor:
            return self.linear(x.flatten(1)) * 2

    with pytest.raises(InputError, match="Opaque"):
        brittle.evaluate(Opaque(), _data(), out=tmp_path, attacks="fgsm", eps=[0.1], certify="ibp")
    assert not (tmp_path / "results.sqlite").exists() or _no_rows(tmp_path)
    with pytest.raises(InputError, match="smoothed classifier"):
        brittle.evaluate(_net(), _data(), out=tmp_path, eps=[0.1], certify="smoothing")


def _no_rows(out: Path) -> bool:
    with ResultStore(out / "results.sqlite") as store:
        return store.count() == 0


def test_certificates_of_other_ids_are_matched_by_id() -> None:
    cert = Certificates(
        torch.tensor([1, 2]), torch.tensor([0.5, 0.25]), Norm.L2, "ibp", torch.tensor([9, 4])
    )
    certified, agrees = certified_robustness(cert, torch.tensor([4, 9]), torch.tensor([2, 0]))
    assert certified.tolist() == [0.25, 0.0] and agrees.tolist() == [True, False]


def test_the_command_line_takes_certify(tmp_path: Path) -> None:
    from brittle.cli import build_parser
    from brittle.cli.parser import UsageError

    parser = build_parser()
    base = ["evaluate", "--model", "m.pt", "--dataset", "mnist", "--out", str(tmp_path)]
    assert parser.parse_args(base).certify is None
    assert parser.parse_args([*base, "--certify"]).certify == "auto"
    assert parser.parse_args([*base, "--certify", "ibp"]).certify == "ibp"
    with pytest.raises(UsageError, match="crown"):
        parser.parse_args([*base, "--certify", "crown"])
