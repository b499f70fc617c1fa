"""The result store v2: its schema and key, its records, the files it refuses (never changed),
two real processes writing one store, the pandas one-liner and the CSV/JSON export."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import torch
from torch import nn

from brittle import Classifier
from brittle.attacks.fgsm import FGSM
from brittle.attacks.iterative import PGD
from brittle.errors import InputError
from brittle.eval import SCHEMA_VERSION, ResultStore, evaluate
from brittle.eval.runner import single_plan
from brittle.eval.store import APPLICATION_ID, SAMPLE_COLUMNS
from brittle.eval.tables import export_tables

N = 24


@pytest.fixture(scope="module")
def data() -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    classifier = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)))
    x = torch.rand(N, 1, 8, 8)
    return classifier, x, classifier.predict(x)


def test_a_new_store_states_its_schema_and_keys_samples_by_run_attack_eps_target_id(
    data, tmp_path: Path
) -> None:
    classifier, x, y = data
    path = tmp_path / "results.sqlite"
    result = FGSM(0.1)(classifier, x, y)
    with ResultStore(path) as store:
        store.insert("run", "atk", 0.1, list(range(100, 100 + N)), result)
        store.insert("run", "atk", 0.1, list(range(100, 100 + N)), result)  # the same again
        targeted = FGSM(0.1, targeted=True)
        aims = [int(y[0] + 1) % 4, int(y[0] + 2) % 4]
        for t in aims:  # one sample, two targets: two rows
            r = targeted(classifier, x[:1], y[:1], torch.tensor([t]))
            store.insert("run", "tgt", 0.1, [7], r)
        assert store.done("run", "atk", 0.1) == set(range(100, 100 + N))
        assert store.count() == N + 2 and store.count("other") == 0
        store.put_record("bound", "b1", {"r_z": 0.5})
        store.put_record("bound", "b1", {"r_z": 0.6})  # replaced
        store.put_record("run", "r", {"seed": 1}, replace=False)
        store.put_record("run", "r", {"seed": 2}, replace=False)  # kept as first written
        assert store.record("bound", "b1") == {"r_z": 0.6}
        assert store.record("run", "r") == {"seed": 1} and store.record("run", "x") is None
        assert set(store.records("bound")) == {"b1"}
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        assert meta["format"] == "brittle-results" and meta["schema_version"] == "2"
        columns = [row[1] for row in db.execute("PRAGMA table_info(samples)")]
        assert tuple(columns) == SAMPLE_COLUMNS
        targets = db.execute("SELECT target FROM samples WHERE attack = 'tgt'").fetchall()
        assert sorted(targets) == sorted((t,) for t in aims)
        untargeted = db.execute("SELECT COUNT(*) FROM samples WHERE target IS NULL").fetchone()
        assert untargeted == (N,)  # NULL targets are one key value: no duplicate rows
        kinds = {row[0] for row in db.execute("SELECT kind FROM records")}
        assert kinds == {"bound", "run"}


def _v1(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE runs (run_key TEXT PRIMARY KEY, config TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE samples (run_key TEXT NOT NULL, eps REAL NOT NULL, idx INTEGER NOT "
            "NULL, y INTEGER NOT NULL, PRIMARY KEY (run_key, eps, idx))"
        )
        db.execute("INSERT INTO samples VALUES ('a', 0.1, 0, 1)")
        db.commit()


def _foreign(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        db.commit()


def _newer(path: Path) -> None:
    with ResultStore(path):
        pass
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.commit()


@pytest.mark.parametrize(
    ("make", "message", "advice"),
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 a zip file" * 50), "not an SQLite file", "--out"),
        (lambda p: p.write_text("eps,robust\n0.1,0.5\n"), "not an SQLite file", "move the file"),
        (_v1, "result store of schema 1", "new --out folder"),
        (_foreign, "not a brittle result store (tables: invoices)", "move the file aside"),
        (_newer, "result store of schema 3", "upgrade brittle"),
    ],
    ids=["zip", "csv", "v1", "foreign", "newer"],
)
def test_a_file_that_is_not_a_v2_store_is_refused_and_left_unchanged(
    tmp_path: Path, make, message: str, advice: str
) -> None:
    path = tmp_path / "results.sqlite"
    make(path)
    before = path.read_bytes()
    with pytest.raises(InputError) as info:
        ResultStore(path)
    text = str(info.value)
    assert message in text and advice in text and str(path) in text and "\n" not in text
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists() or make is _newer


def test_the_command_refuses_an_old_store_in_its_folder_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any work, with exit code 2 and the file unchanged."""
    from brittle.cli import main

    _v1(tmp_path / "results.sqlite")
    before = (tmp_path / "results.sqlite").read_bytes()
    model = tmp_path / "m.pt"
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--arch",
                "softmax",
                "--epochs",
                "1",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    result = subprocess.run(
        [sys.executable, "-m", "brittle.cli", "evaluate", "--model", str(model), "--out",
         str(tmp_path), "--n", "8", "--eps", "0.1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if "No module named brittle.cli.__main__" in result.stderr:
        code = "import sys; from brittle.cli import main; sys.exit(main())"
        argv = ["evaluate", "--model", str(model), "--out", str(tmp_path), "--n", "8"]
        result = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "schema 1" in result.stderr and "new --out folder" in result.stderr
    assert (tmp_path / "results.sqlite").read_bytes() == before


WRITER = """
import sys, torch
from torch import nn
from brittle import Classifier
from brittle.attacks.fgsm import FGSM
from brittle.eval import ResultStore
path, key, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)))
x = torch.rand(8, 1, 8, 8)
result = FGSM(0.1)(clf, x, clf.predict(x))
with ResultStore(path) as store:
    for b in range(batches):
        store.insert("run", key, 0.1, list(range(8 * b, 8 * b + 8)), result)
"""


def test_two_processes_writing_one_store_at_once_lose_no_row(tmp_path: Path) -> None:
    """Two real processes, each 60 batches of its own attack into the same new file."""
    path = tmp_path / "results.sqlite"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), key, "60"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for key in ("a", "b")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    with closing(sqlite3.connect(path)) as db:
        counts = dict(db.execute("SELECT attack, COUNT(*) FROM samples GROUP BY attack"))
        (batches,) = db.execute("SELECT COUNT(*) FROM batches").fetchone()
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert counts == {"a": 480, "b": 480} and batches == 120


def test_the_store_reads_into_pandas_in_one_line_and_exports_csv_and_json(
    data, tmp_path: Path
) -> None:
    pd = pytest.importorskip("pandas")
    classifier, x, y = data
    path = tmp_path / "results.sqlite"
    plans = [single_plan(FGSM, 0.1), single_plan(lambda e: PGD(e, steps=3), 0.1)]
    with ResultStore(path) as store:
        evaluation = evaluate(
            classifier, plans, (x, y), [0.1, 0.2], batch_size=5, store=store, run_key="r",
            ids=torch.arange(50, 50 + N), progress=False,
        )  # fmt: skip
        written = export_tables(store, evaluation, tmp_path)
    frame = pd.read_sql("SELECT * FROM samples", sqlite3.connect(path))
    assert len(frame) == 2 * 2 * N and tuple(frame.columns) == SAMPLE_COLUMNS
    assert set(frame["attack_name"]) == {"FGSM", "PGD"} and frame["target"].isna().all()
    assert {p.name for p in written} == {
        f"{t}.{ext}" for t in ("samples", "worst_case", "results") for ext in ("csv", "json")
    }
    csv = pd.read_csv(tmp_path / "samples.csv")
    key = ["attack", "eps", "sample_id"]
    left = frame.sort_values(key).reset_index(drop=True)
    right = csv.sort_values(key).reset_index(drop=True)
    for column in ("success", "pred_adv", "gradients", "queries"):
        assert (left[column] == right[column]).all(), column
    assert (abs(left["l2"] - right["l2"]) <= 1e-12 * (1 + left["l2"].abs())).all()
    records = json.loads((tmp_path / "samples.json").read_text())
    assert len(records) == len(frame) and set(records[0]) == {*SAMPLE_COLUMNS, "counted_success"}
    worst = pd.read_csv(tmp_path / "worst_case.csv")
    assert len(worst) == 2 * N and set(worst.columns) >= {"robust", "broken_by", "broken:PGD"}
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["eps"], r["attack"]) for r in results] == [
        (e, a) for e in (0.1, 0.2) for a in ("FGSM", "PGD", "worst case")
    ]
    for r, s in zip(results[2::3], evaluation.summaries, strict=True):
        assert r["robust_accuracy"] == pytest.approx(s["robust_accuracy"])
        assert r["robust_ci_low"] == pytest.approx(s["robust_ci_low"])
