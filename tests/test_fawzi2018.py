"""``brittle reproduce fawzi2018`` at a tiny size on the 8x8 digits: the fixed rows, each row
what the analysis gives, the order the theory predicts, and the cache reused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from brittle import tasks
from brittle.bounds import transfer_bound
from brittle.reproduce import fawzi2018

pytestmark = pytest.mark.usefixtures("one_thread")

TINY: dict[str, Any] = {"n_images": 20, "n_second": 1000, "epochs": 2, "dataset": "digits"}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("fawzi2018")
    tasks.reproduce("fawzi2018", out, progress=False, **TINY)
    return out, json.loads((out / "report.json").read_text())


def test_the_report_has_the_fixed_rows(reproduced: tuple[Path, dict[str, Any]]) -> None:
    _, report = reproduced
    ids = [row["id"] for row in report["rows"]]
    assert ids == list(fawzi2018.ROW_IDS)
    for model in ("softmax", "mlp", "lenet", "lenet_advtrained"):
        for quantity in ("error_rate", "r_z", "r_in", "r_unc"):
            assert f"{model}_{quantity}" in ids
    assert ids[16:19] == ["bound_r_z", "bound_r_in", "lenet_theorem2_share"]
    assert "paper_svhn" in report["setting"] and "paper_cifar10" in report["setting"]
    table = report["setting"]["ours_mnist_vae"]
    assert list(table) == [
        "upper bound",
        *(fawzi2018.CLASSIFIERS[m].role for m in fawzi2018.MODEL_KEYS),
    ]


def test_the_theorems_rows_are_their_checks(reproduced: tuple[Path, dict[str, Any]]) -> None:
    """Theorem 2's share and Theorem 3's bound and share are those of the checks in the JSON;
    the bound is Theorem 3's closed form at delta's upper limit, below its value at delta."""
    _, report = reproduced
    rows = {row["id"]: row["ours"] for row in report["rows"]}
    theorem2 = report["figures"]["theorem2"]
    assert theorem2["n"] == min(TINY["n_images"], fawzi2018.THEOREM2_SAMPLES)
    assert rows["lenet_theorem2_share"] == theorem2["share_satisfied"]
    lipschitz = report["setting"]["generator"]["lipschitz"]
    for f, h in fawzi2018.TRANSFER_PAIRS:
        found = report["figures"]["theorem3"][f"{f}_{h}"]
        assert found["delta_samples"] == TINY["n_second"]
        assert found["delta"] <= found["delta_upper"]
        assert found["bound_conservative"] == pytest.approx(
            transfer_bound(found["eta"], found["delta_upper"], lipschitz)
        )
        assert found["bound_conservative"] <= found["bound"]
        assert rows[f"theorem3_{f}_{h}_bound"] == pytest.approx(found["bound_conservative"])
        assert rows[f"theorem3_{f}_{h}_share"] == found["share"]
        assert 0 <= found["share"] <= 1


def test_rows_are_the_analysis_and_r_unc_never_exceeds_r_in(
    reproduced: tuple[Path, dict[str, Any]],
) -> None:
    _, report = reproduced
    rows = {row["id"]: row["ours"] for row in report["rows"]}
    for model in fawzi2018.MODEL_KEYS:
        found = report["figures"][model]
        robustness = found["robustness"]
        assert rows[f"{model}_r_z"] == pytest.approx(robustness["r_Z"]["normalised_median"])
        assert rows[f"{model}_r_in"] == pytest.approx(robustness["r_in"]["normalised_median"])
        assert rows[f"{model}_r_unc"] == pytest.approx(robustness["r_unc"]["normalised_median"])
        assert robustness["share_r_unc_at_most_r_in"] == 1.0
        assert found["checks"]["r_unc <= r_in on every sample"]
        assert found["class_probabilities"]["n"] == TINY["n_second"]
    lenet = report["figures"]["lenet"]
    assert rows["bound_r_in"] == pytest.approx(lenet["bound_input_median"]["normalised"])


def test_a_second_run_reuses_the_generator_and_the_models(
    reproduced: tuple[Path, dict[str, Any]],
) -> None:
    out, first = reproduced
    tasks.reproduce("fawzi2018", out, progress=False, **TINY)
    second = json.loads((out / "report.json").read_text())
    assert second["setting"]["generator"]["reused_checkpoint"]
    assert all(m["reused_checkpoint"] for m in second["setting"]["models"].values())
    assert second["rows"] == first["rows"]
