"""``brittle reproduce cohen2019`` at a tiny size, on scikit-learn's 8x8 digits: the fixed
rows, certificates that respect the largest radius n draws can give, the shape checks and
the cached checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from brittle import tasks
from brittle.errors import InputError
from brittle.reproduce import REPRODUCTIONS, cohen2019

pytestmark = pytest.mark.usefixtures("one_thread")

TINY: dict[str, Any] = {
    "n_images": 12,
    "n_second": 200,
    "epochs": 3,
    "dataset": "digits",
    "progress": False,
}
"""Two LeNets trained 3 epochs on the 1,437 training digits; 12 images, 200 draws each."""


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tasks.ReproduceOutcome]:
    out = tmp_path_factory.mktemp("cohen2019")
    return out, tasks.reproduce("cohen2019", out, **TINY)


def test_the_report_has_the_fixed_rows_and_certificates_within_reach(
    reproduced: tuple[Path, tasks.ReproduceOutcome],
) -> None:
    out, _ = reproduced
    assert "cohen2019" in REPRODUCTIONS
    report = json.loads((out / "report.json").read_text())
    rows = {row["id"]: row for row in report["rows"]}
    assert list(rows) == list(cohen2019.ROW_IDS)
    assert all(row["paper"] is None for row in rows.values())  # no MNIST figure in the paper
    for sigma in cohen2019.SIGMAS:
        shares = [rows[f"certified_sigma_{sigma:g}_radius_{r:g}"]["ours"] for r in cohen2019.RADII]
        assert shares == sorted(shares, reverse=True)
        most = cohen2019.largest_radius(sigma, 200)
        radii = report["figures"]["radius_per_image"][f"{sigma:g}"]
        assert max(radii) <= most + 1e-12 and len(radii) == 12
        for r in cohen2019.RADII:
            if r > most:  # beyond what 200 draws can certify: 0, and the row says why
                row = rows[f"certified_sigma_{sigma:g}_radius_{r:g}"]
                assert row["ours"] == 0 and "beyond reach" in row["note"]
        curve = report["figures"]["certified_accuracy"][f"{sigma:g}"]
        assert curve[0] == rows[f"certified_sigma_{sigma:g}_radius_0"]["ours"]
    assert set(report["setting"]["shape"]) == {
        "non_increasing_in_radius",
        "larger_sigma_better_at_radius_1",
        "larger_sigma_better_at_radius_1.5",
        "larger_sigma_worse_at_radius_0",
    }
    assert report["setting"]["shape"]["non_increasing_in_radius"]
    assert any("No paper figure is quoted" in note for note in report["notes"])
    assert (out / "report.html").read_text().count("certified_sigma_") >= 8
    assert rows["base_accuracy_sigma_0.25"]["ours"] > 0.5  # the model learned something


def test_a_rerun_reuses_the_checkpoints_and_gives_the_same_rows(
    reproduced: tuple[Path, tasks.ReproduceOutcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, first = reproduced

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a rerun trained again")

    monkeypatch.setattr(cohen2019, "train_model", no_training)
    again = tasks.reproduce("cohen2019", out, **TINY).reproduction
    assert [r.ours for r in again.rows] == [r.ours for r in first.reproduction.rows]
    assert all(m["reused_checkpoint"] for m in again.setting["models"].values())


def test_bad_draws_are_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--n-second"):
        tasks.reproduce("cohen2019", tmp_path, **{**TINY, "n_second": 0})
