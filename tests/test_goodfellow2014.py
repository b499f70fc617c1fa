"""``brittle reproduce goodfellow2014`` at a tiny size, on scikit-learn's 8x8 digits.

The properties are those of the full-size run: the fixed rows with the paper's figures, each
row equal to what the cached model gives when attacked again here, the RBF network's
confidence read as exp(logit), the defences recorded in the checkpoints, the expectations
stated beside their numbers, the figures on the page, and the cache reused by a second run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from brittle import tasks
from brittle.attacks import FGSM
from brittle.data import load_dataset
from brittle.metrics import transfer_matrix
from brittle.reproduce import goodfellow2014
from brittle.zoo import load_checkpoint, load_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

TINY: dict[str, Any] = {"n_images": 120, "n_second": 40, "epochs": 3, "dataset": "digits"}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("goodfellow2014")
    tasks.reproduce("goodfellow2014", out, progress=False, **TINY)
    return out, json.loads((out / "report.json").read_text())


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in report["rows"]}


def test_the_report_has_the_fixed_rows_and_the_papers_figures(
    reproduced: tuple[Path, dict[str, Any]],
) -> None:
    _, report = reproduced
    assert [row["id"] for row in report["rows"]] == list(goodfellow2014.ROW_IDS)
    rows = _rows(report)
    for key, figure in {
        "softmax_error": 0.999,
        "maxout_adv_error": 0.894,
        "advtrain_adv_error": 0.179,
        "noise_sign_adv_error": 0.862,
        "rbf_mistake_confidence": 0.012,
        "agree_softmax_maxout": 0.846,
    }.items():
        assert rows[key]["paper"] == pytest.approx(figure)
    for row in report["rows"]:
        assert row["ours"] is None or 0 <= row["ours"] <= 1


def _attacked() -> tuple[torch.Tensor, torch.Tensor]:
    test = load_dataset("digits", "test").subset(TINY["n_images"])
    return test.x, test.y


def test_each_error_row_is_what_the_cached_model_gives_attacked_again(
    reproduced: tuple[Path, dict[str, Any]],
) -> None:
    out, report = reproduced
    rows = _rows(report)
    x, y = _attacked()
    for key, row in (
        ("softmax", "softmax_error"),
        ("maxout", "maxout_adv_error"),
        ("maxout_fgsm", "advtrain_adv_error"),
        ("maxout_noise_sign", "noise_sign_adv_error"),
        ("maxout_noise_uniform", "noise_uniform_adv_error"),
        ("rbf", "rbf_adv_error"),
    ):
        clf = load_classifier(out / f"{key}.pt")
        result = FGSM(goodfellow2014.EPS)(clf, x, y)
        assert rows[row]["ours"] == pytest.approx(float((result.pred_adv != y).double().mean()))
    keep = (y == 3) | (y == 7)
    logistic = load_classifier(out / "logreg37.pt")
    y37 = (y[keep] == 7).long()
    result = FGSM(goodfellow2014.EPS)(logistic, x[keep], y37)
    assert rows["logreg37_adv_error"]["ours"] == pytest.approx(
        float((result.pred_adv != y37).double().mean())
    )
    assert rows["logreg37_clean_error"]["ours"] == pytest.approx(
        float((result.pred_clean != y37).double().mean())
    )


def test_the_rbf_confidence_is_exp_of_its_logit(reproduced: tuple[Path, dict[str, Any]]) -> None:
    """The RBF network's classes do not compete: its confidence is exp(logit), not a softmax."""
    out, report = reproduced
    rows = _rows(report)
    x, y = _attacked()
    clf = load_classifier(out / "rbf.pt")
    clean = clf.predict_logits(x)
    adv = clf.predict_logits(FGSM(goodfellow2014.EPS)(clf, x, y).x_adv)
    wrong = adv.argmax(1) != y
    expected = adv.max(1).values.exp()[wrong].double().mean()
    assert rows["rbf_mistake_confidence"]["ours"] == pytest.approx(float(expected))
    assert rows["rbf_clean_confidence"]["ours"] == pytest.approx(
        float(clean.max(1).values.exp().double().mean())
    )


def test_the_agreement_rows_are_the_transfer_matrix_of_maxout_examples(
    reproduced: tuple[Path, dict[str, Any]],
) -> None:
    out, report = reproduced
    rows = _rows(report)
    x, y = _attacked()
    models = [load_classifier(out / f"{k}.pt") for k in ("maxout", "softmax", "rbf")]
    matrix = transfer_matrix(models, FGSM(goodfellow2014.EPS), x, y)
    assert rows["agree_softmax_maxout"]["ours"] == pytest.approx(float(matrix.agreement[0, 1]))
    assert rows["agree_rbf_maxout"]["ours"] == pytest.approx(float(matrix.agreement[0, 2]))
    assert report["figures"]["transfer"]["names"] == ["maxout", "softmax", "rbf"]


def test_defended_models_record_their_defence(reproduced: tuple[Path, dict[str, Any]]) -> None:
    out, report = reproduced
    expected = {
        "maxout_fgsm": "fgsm",
        "maxout_noise_sign": "noise-sign",
        "maxout_noise_uniform": "noise-uniform",
        "logreg37_fgsm": "fgsm",
    }
    for key, name in expected.items():
        _, meta = load_checkpoint(out / f"{key}.pt")
        assert meta["defense"]["name"] == name and meta["defense"]["eps"] == 0.25
        assert report["setting"]["models"][key]["defense"]["name"] == name
    assert load_checkpoint(out / "maxout.pt")[1]["defense"] is None
    masking = report["setting"]["gradient_masking_maxout_fgsm"]
    assert masking["n"] == TINY["n_second"] and masking["eps"] == 0.25


def test_unmet_expectations_are_notes_with_their_numbers(
    reproduced: tuple[Path, dict[str, Any]],
) -> None:
    _, report = reproduced
    expectations = report["setting"]["expectations"]
    assert list(expectations) == list(goodfellow2014.EXPECTATIONS)
    for what, got in expectations.items():
        noted = any(what in note for note in report["notes"])
        assert noted == (not got["met"])
    results = report["setting"]["results"]
    halved = results["maxout_fgsm"]["adv_error"] <= results["maxout"]["adv_error"] / 2
    assert expectations[goodfellow2014.EXPECTATIONS[0]]["met"] == halved


def test_the_page_has_the_figures_and_the_bundled_note(
    reproduced: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = reproduced
    page = (out / "report.html").read_text()
    assert page.count("<img") == 4
    for caption in ("Figure 3", "Figure 4", "Section 8", "Section 5"):
        assert caption in page
    assert "Not full MNIST" in page


def test_a_second_run_reuses_every_model_and_gives_the_same_rows(
    reproduced: tuple[Path, dict[str, Any]],
) -> None:
    out, first = reproduced
    tasks.reproduce("goodfellow2014", out, progress=False, **TINY)
    second = json.loads((out / "report.json").read_text())
    assert all(m["reused_checkpoint"] for m in second["setting"]["models"].values())
    assert second["rows"] == first["rows"]
