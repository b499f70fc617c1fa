"""``brittle reproduce sandwich`` at a tiny size, on scikit-learn's 8x8 digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brittle import tasks
from brittle.reproduce import sandwich

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_sandwich_reproduction_at_a_tiny_size(tmp_path: Path) -> None:
    outcome = tasks.reproduce(
        "sandwich",
        tmp_path,
        n_images=12,
        n_second=6,
        epochs=1,
        n_train=300,
        dataset="digits",
        progress=False,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {row["id"]: row for row in report["rows"]}
    assert list(rows) == list(sandwich.ROW_IDS)
    for model in ("lenet", "lenet_pgd"):
        assert rows[f"{model}_violations"]["ours"] == 0  # IBP is sound, PGD's examples verified
        assert rows[f"{model}_certified"]["ours"] <= rows[f"{model}_attacked"]["ours"]
    for record in report["figures"]["sandwich"].values():
        assert all(c <= a for c, a in zip(record["certified"], record["attacked"], strict=True))
    assert report["figures"]["sandwich"]["smoothed"]["norm"] == "l2"
    assert (tmp_path / "evaluations" / "lenet" / "report.html").is_file()
    assert outcome.paths.html.read_text().count("data:image/png;base64") >= 1
    assert any("digits" in note for note in report["notes"])  # not full MNIST, and says so
