"""The result store under faults: every SQLite failure is one StorageError, a failed batch is
rolled back, committed batches stay, a rerun completes; WAL and the busy timeout let readers
and a second writer share the file."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks.fgsm import FGSM
from brittle.attacks.result import AttackResult
from brittle.errors import StorageError
from brittle.eval.store import ResultStore

N, BATCH, EPS = 24, 8, 0.1
Batch = tuple[list[int], AttackResult, Tensor]


@pytest.fixture(scope="module")
def batches() -> list[Batch]:
    """FGSM results of three batches of 8 images of 32x32 (each kept example is 8 KB)."""
    torch.manual_seed(0)
    classifier = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 3)))
    x = torch.rand(N, 1, 32, 32)
    y = classifier.predict(x)
    out = []
    for start in range(0, N, BATCH):
        index = list(range(start, start + BATCH))
        out.append((index, FGSM(EPS)(classifier, x[index], y[index]), x[index]))
    return out


def _store_all(store: ResultStore, batches: list[Batch], key: str = "k", eps: float = EPS) -> int:
    """Store the batches not stored yet, as a rerun of the evaluation does; return how many."""
    done = store.done(key, "fgsm", eps)
    todo = [b for b in batches if not set(b[0]) <= done]
    for index, result, x in todo:
        store.insert(key, "fgsm", eps, index, result, x=x, keep=range(N))
    return len(todo)


def _content(path: Path) -> tuple[list[tuple[Any, ...]], int, int]:
    """The stored samples, the number of batches and of examples, read by another connection."""
    with closing(sqlite3.connect(path)) as db:
        samples = db.execute("SELECT * FROM samples ORDER BY run, eps, sample_id").fetchall()
        (n_batches,) = db.execute("SELECT COUNT(*) FROM batches").fetchone()
        (n_examples,) = db.execute("SELECT COUNT(*) FROM examples").fetchone()
    return samples, n_batches, n_examples


@pytest.fixture
def reference(tmp_path: Path, batches: list[Batch]) -> tuple[list[tuple[Any, ...]], int, int]:
    """What an evaluation that never failed stores."""
    with ResultStore(tmp_path / "reference.sqlite") as store:
        _store_all(store, batches)
    return _content(tmp_path / "reference.sqlite")


class FailingConnection:
    """The store's connection, where statements starting with ``statement`` raise ``error``
    as SQLite would (everything else goes to the real connection)."""

    def __init__(self, db: sqlite3.Connection, statement: str, error: sqlite3.Error) -> None:
        self._db, self._statement, self._error = db, statement, error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith(self._statement):
            raise self._error
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith(self._statement):
            raise self._error
        return self._db.executemany(sql, *args)


def _assert_unlocked(path: Path) -> None:
    """No transaction of the failed store still holds the write lock."""
    with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")


def test_a_full_disk_keeps_the_committed_batches_and_a_rerun_completes(
    tmp_path: Path, batches: list[Batch], reference: tuple[list[tuple[Any, ...]], int, int]
) -> None:
    """A real SQLITE_FULL: the file may not grow past its size after the first batch."""
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        _store_all(store, batches[:1])
        (pages,) = store._db.execute("PRAGMA page_count").fetchone()
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageError) as info:
            _store_all(store, batches)
        assert store.done("k", "fgsm", EPS) == set(batches[0][0])
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "disk is full" in message
    assert "every batch committed before is kept" in message
    assert "free some space, then run the same command again" in message
    samples, n_batches, n_examples = _content(path)
    assert (len(samples), n_batches, n_examples) == (BATCH, 1, BATCH)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with ResultStore(path) as store:  # space freed: the same command again
        assert _store_all(store, batches) == len(batches) - 1
    assert _content(path) == reference


@pytest.mark.parametrize(
    "statement", ["INSERT OR REPLACE INTO samples", "INSERT INTO batches", "COMMIT"]
)
@pytest.mark.parametrize(
    ("error", "meaning", "fix"),
    [
        (sqlite3.OperationalError("database or disk is full"), "disk is full", "free some space"),
        (sqlite3.OperationalError("disk I/O error"), "I/O error", "check the disk"),
        (
            sqlite3.OperationalError("attempt to write a readonly database"),
            "read-only",
            "make it writable",
        ),
        (sqlite3.OperationalError("database is locked"), "locked for more than", "wait until"),
        (
            sqlite3.DatabaseError("database disk image is malformed"),
            "damaged",
            "move the file aside",
        ),
    ],
)
def test_sqlite_failures_in_a_batch_roll_it_back_as_one_storage_error(
    tmp_path: Path,
    batches: list[Batch],
    reference: tuple[list[tuple[Any, ...]], int, int],
    statement: str,
    error: sqlite3.Error,
    meaning: str,
    fix: str,
) -> None:
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        _store_all(store, batches[:1])
        before = _content(path)
        real = store._db
        store._db = FailingConnection(real, statement, error)  # type: ignore[assignment]
        with pytest.raises(StorageError) as info:
            _store_all(store, batches)
        assert info.value.__cause__ is error
        assert not real.in_transaction
        _assert_unlocked(path)
        assert _content(path) == before  # the failed batch left nothing behind
        store._db = real
        assert _store_all(store, batches) == len(batches) - 1
    assert _content(path) == reference
    message = str(info.value)
    assert message.startswith(f"cannot write a batch to the result store {path}: ")
    assert meaning in message and fix in message and "\n" not in message
    assert message.endswith("then run the same command again")
    assert ("kept" in message) != (meaning == "damaged")  # a damaged file may have lost rows


def test_failed_reads_are_storage_errors(tmp_path: Path, batches: list[Batch]) -> None:
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        _store_all(store, batches)
        store._db = FailingConnection(  # type: ignore[assignment]
            store._db, "SELECT", sqlite3.OperationalError("disk I/O error")
        )
        for read in (store.done, store.examples):
            with pytest.raises(StorageError, match=r"cannot read the result store .* I/O error"):
                read("k", "fgsm", EPS)
        store._db = store._db._db  # type: ignore[attr-defined]


def test_a_lock_held_too_long_is_a_storage_error_and_the_store_recovers(
    tmp_path: Path, batches: list[Batch]
) -> None:
    path = tmp_path / "results.sqlite"
    with ResultStore(path, busy_timeout=0.2) as store:
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process is writing
            start = time.perf_counter()
            with pytest.raises(StorageError, match=r"locked for more than 0\.2 s") as info:
                _store_all(store, batches)
            assert time.perf_counter() - start >= 0.15  # it waited before giving up
            other.execute("ROLLBACK")
        assert "wait until the other run ends" in str(info.value)
        assert _store_all(store, batches) == len(batches)
    assert _content(path)[1] == len(batches)


def test_a_writer_waits_for_another_writer_instead_of_failing(
    tmp_path: Path, batches: list[Batch]
) -> None:
    path = tmp_path / "results.sqlite"
    with ResultStore(path, busy_timeout=10) as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: (other.execute("COMMIT"), other.close()))
        release.start()
        start = time.perf_counter()
        assert _store_all(store, batches) == len(batches)
        assert time.perf_counter() - start >= 0.25
        release.join()


def test_readers_never_block_the_writer(tmp_path: Path, batches: list[Batch]) -> None:
    """WAL mode: a reader in the middle of a read transaction does not stop a batch."""
    path = tmp_path / "results.sqlite"
    with ResultStore(path, busy_timeout=0.2) as store:
        _store_all(store, batches[:1])
        with closing(sqlite3.connect(path, isolation_level=None)) as reader:
            assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            reader.execute("BEGIN")
            assert reader.execute("SELECT COUNT(*) FROM samples").fetchone() == (BATCH,)
            assert _store_all(store, batches) == len(batches) - 1
            assert reader.execute("SELECT COUNT(*) FROM samples").fetchone() == (BATCH,)
            reader.execute("COMMIT")
            assert reader.execute("SELECT COUNT(*) FROM samples").fetchone() == (N,)


def test_two_processes_can_write_the_same_store_at_once(
    tmp_path: Path, batches: list[Batch]
) -> None:
    """Two stores (two connections, as two processes have) write 16 batches each at once."""
    path = tmp_path / "results.sqlite"
    ResultStore(path).close()
    errors: list[BaseException] = []

    def evaluate(key: str) -> None:
        try:
            with ResultStore(path) as store:
                for eps in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
                    _store_all(store, batches, key=key, eps=eps)
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=evaluate, args=(key,)) for key in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    samples, n_batches, _ = _content(path)
    assert len(samples) == 2 * 6 * N and n_batches == 2 * 6 * len(batches)


def test_a_store_whose_folder_cannot_exist_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "runs").write_bytes(b"a file where the output folder should be")
    with pytest.raises(StorageError, match="cannot create the folder of the result store"):
        ResultStore(tmp_path / "runs" / "results.sqlite")
