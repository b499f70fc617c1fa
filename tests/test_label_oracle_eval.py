"""A label-only oracle evaluated end to end: the decision-based attacks run under capability
oracle_labels, the store keeps "no confidence" as NULL (read back as NaN, reported as none),
the run resumes, and a store made before the confidence could be absent is refused with what
to do."""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import brittle
from brittle import Capability, Oracle
from brittle.attacks.rays import RayS
from brittle.errors import InputError, StorageError
from brittle.eval import ResultStore

SHAPE = (1, 4, 4)
N = 12


def _problem() -> tuple[Oracle, Tensor, Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()

    def predict(batch: Tensor) -> Tensor:
        with torch.no_grad():
            return net(batch).argmax(1)

    x = torch.rand(N, *SHAPE, generator=torch.Generator().manual_seed(1))
    y = predict(x)
    return Oracle(predict, num_classes=3, input_shape=SHAPE), x, y


def test_a_label_oracle_is_evaluated_by_the_decision_based_attacks(tmp_path: Path) -> None:
    oracle, x, y = _problem()
    attacks = ["hopskipjump:norm=linf:max_queries=60", "rays:max_queries=60"]
    outcome = brittle.evaluate(
        oracle, (x, y), out=tmp_path, attacks=attacks, eps=0.3, progress=False,
        capability=Capability.ORACLE_LABELS,
    )  # fmt: skip
    report = outcome.report
    assert report["threat_model"]["capability"] == "ORACLE_LABELS"
    for row in report["results"]:
        assert 0 <= row["robust_accuracy"] <= 1
        assert math.isnan(row["mean_confidence_misclassified"])  # a label oracle gives none
    written = json.loads((tmp_path / "report.json").read_text())
    assert all(r["mean_confidence_misclassified"] is None for r in written["results"])
    assert (
        'data-json="/results/0/mean_confidence_misclassified" data-value="nan">n/a<'
        in (tmp_path / "report.html").read_text()
    )
    with closing(sqlite3.connect(tmp_path / "results.sqlite")) as db:
        rows, nulls = db.execute(
            "SELECT COUNT(*), COUNT(*) - COUNT(confidence_adv) FROM samples"
        ).fetchone()
    assert rows == nulls == 2 * N
    again = brittle.evaluate(
        oracle, (x, y), out=tmp_path, attacks=attacks, eps=0.3, progress=False,
        capability=Capability.ORACLE_LABELS,
    )  # fmt: skip
    assert again.evaluation.attacked == 0 and again.evaluation.reused == 2 * N
    figures = ("success_rate", "robust_accuracy", "robust_count")
    assert [[r[k] for k in figures] for r in again.report["results"]] == [
        [r[k] for k in figures] for r in report["results"]
    ]


def test_no_confidence_is_stored_as_null_and_read_back_as_nan(tmp_path: Path) -> None:
    oracle, x, y = _problem()
    result = RayS(max_queries=40)(oracle, x, y)
    assert bool(result.confidence_adv.isnan().all())
    with ResultStore(tmp_path / "s.sqlite", classes=3) as store:
        store.insert("run", "rays", 0.3, list(range(N)), result)
        back = store.result("run", "rays", 0.3)
    assert bool(back.confidence_adv.isnan().all())
    assert torch.equal(back.success, result.success) and torch.equal(back.queries, result.queries)


def test_a_confidence_out_of_range_is_still_damage(tmp_path: Path) -> None:
    oracle, x, y = _problem()
    result = RayS(max_queries=40)(oracle, x, y)
    path = tmp_path / "s.sqlite"
    with ResultStore(path, classes=3) as store:
        store.insert("run", "rays", 0.3, list(range(N)), result)
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE samples SET confidence_adv = 2.0 WHERE sample_id = 4")
        db.commit()
    with ResultStore(path, classes=3) as store, pytest.raises(StorageError, match="confidence"):
        store.result("run", "rays", 0.3)


def test_an_older_store_that_needs_a_confidence_is_refused_with_what_to_do(
    tmp_path: Path,
) -> None:
    """A store made before a confidence could be absent (its column NOT NULL) keeps working for
    models with scores, and refuses label-only rows with one clear error, before writing."""
    oracle, x, y = _problem()
    path = tmp_path / "s.sqlite"
    ResultStore(path).close()
    with closing(sqlite3.connect(path)) as db:  # rebuild samples as older brittles made it
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'samples'").fetchone()[0]
        db.execute("DROP TABLE samples")
        db.execute(sql.replace("confidence_adv REAL", "confidence_adv REAL NOT NULL"))
        db.execute(
            "CREATE UNIQUE INDEX samples_key ON samples "
            "(run, attack, eps, IFNULL(target, -1), sample_id)"
        )
        db.commit()
    result = RayS(max_queries=40)(oracle, x, y)
    with ResultStore(path) as store:
        with pytest.raises(InputError, match="new --out folder"):
            store.insert("run", "rays", 0.3, list(range(N)), result)
        assert store.count() == 0
