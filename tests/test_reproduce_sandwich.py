"""``brittle reproduce sandwich`` at a tiny size, on scikit-learn's 8x8 digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brittle import tasks
from brittle.reproduce import sandwich

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow  # three trainings and two evaluations: 43 s on the loaded 2-core machine
def test_the_sandwich_reproduction_at_a_tiny_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a narrower LeNet, fewer steps and draws: the same code in seconds
    monkeypatch.setattr(sandwich, "ARCH", {"channels": [6], "hidden": [32]})
    monkeypatch.setattr(sandwich, "ATTACK_STEPS", 5)
    monkeypatch.setattr(sandwich, "DRAWS", 200)
    monkeypatch.setattr(sandwich, "LR", 1e-2)  # two epochs of the digits suffice
    outcome = tasks.reproduce(
        "sandwich", tmp_path, n_images=12, n_second=6, epochs=2, dataset="digits", progress=False
    )
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {row["id"]: row for row in report["rows"]}
    assert list(rows) == list(sandwich.ROW_IDS)
    assert rows["lenet_accuracy"]["ours"] >= 0.5  # trained: the checks below are not vacuous
    for model in ("lenet", "lenet_pgd"):
        assert rows[f"{model}_violations"]["ours"] == 0  # IBP is sound, PGD's examples verified
        assert rows[f"{model}_certified"]["ours"] <= rows[f"{model}_attacked"]["ours"]
    for record in report["figures"]["sandwich"].values():
        assert all(c <= a for c, a in zip(record["certified"], record["attacked"], strict=True))
    assert report["figures"]["sandwich"]["smoothed"]["norm"] == "l2"
    assert (tmp_path / "evaluations" / "lenet" / "report.html").is_file()
    assert outcome.paths.html.read_text().count("data:image/png;base64") >= 1
    assert any("digits" in note for note in report["notes"])  # not full MNIST, and says so
