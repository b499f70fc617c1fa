"""``brittle reproduce papernot2017`` at a tiny size, on scikit-learn's 8x8 digits: the fixed
rows, the per-round curves (set sizes, queries, sign flips), and the cached oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from brittle import tasks
from brittle.reproduce import REPRODUCTIONS, papernot2017

pytestmark = pytest.mark.usefixtures("one_thread")

TINY: dict[str, Any] = {"n_images": 60, "epochs": 3, "dataset": "digits", "progress": False}
"""A LeNet oracle trained 3 epochs on the 1,437 training digits; 150 seed digits, 60 more
measured and attacked."""


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tasks.ReproduceOutcome]:
    out = tmp_path_factory.mktemp("papernot2017")
    return out, tasks.reproduce("papernot2017", out, **TINY)


@pytest.mark.slow  # two substitutes of 6 rounds, up to 9,600 points each: about 30 s
def test_the_report_has_the_fixed_rows_and_the_papers_algorithm(
    reproduced: tuple[Path, tasks.ReproduceOutcome],
) -> None:
    out, _ = reproduced
    assert "papernot2017" in REPRODUCTIONS
    report = json.loads((out / "report.json").read_text())
    rows = {row["id"]: row for row in report["rows"]}
    assert list(rows) == list(papernot2017.ROW_IDS)
    assert rows["substitute_accuracy"]["paper"] == papernot2017.PAPER_SUBSTITUTE_ACCURACY
    assert rows["transfer_rate"]["paper"] == papernot2017.PAPER_TRANSFER_RATE
    full, reservoir = report["figures"]["full"], report["figures"]["reservoir"]
    seed = papernot2017.SEED_SIZE
    # every round at most doubles the set; every point in it was labelled once by the oracle
    assert full["size"][0] == seed and len(full["size"]) == papernot2017.ROUNDS + 1
    assert all(b <= 2 * a for a, b in zip(full["size"], full["size"][1:], strict=False))
    assert full["queries"] == full["size"]
    assert rows["queries"]["ours"] == full["size"][-1]
    # reservoir sampling: kappa new points per round after sigma rounds, fewer queries
    sigma, kappa = papernot2017.SIGMA, papernot2017.KAPPA
    grown = [b - a for a, b in zip(reservoir["size"], reservoir["size"][1:], strict=False)]
    assert all(g <= kappa for g in grown[sigma:])
    assert rows["reservoir_queries"]["ours"] < rows["queries"]["ours"]
    # lambda's sign flips every tau rounds
    assert full["step"] == [None, 0.1, 0.1, 0.1, -0.1, -0.1, -0.1]
    assert len(full["transfer_rate"]) == len(full["accuracy"]) == papernot2017.ROUNDS + 1
    # the substitute learns the oracle: far above the 10% of chance at the last round
    assert rows["substitute_agreement"]["ours"] > 0.5
    assert any("Not full MNIST" in note for note in report["notes"])
    assert "substitute_accuracy" in (out / "report.html").read_text()


def test_the_oracle_is_trained_once_and_reused_from_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brittle.data import load_dataset

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    cpu = torch.device("cpu")
    first, accuracy = papernot2017._oracle(tmp_path, train, test, 1, 0, cpu, False, print)
    assert (tmp_path / papernot2017.CHECKPOINT).is_file()

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached oracle was trained again")

    monkeypatch.setattr(papernot2017, "train_model", no_training)
    again, same = papernot2017._oracle(tmp_path, train, test, 1, 0, cpu, False, print)
    assert same == accuracy
    assert torch.equal(again.predict(test.x), first.predict(test.x))
