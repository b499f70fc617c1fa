"""Per-sample results in an embedded SQLite file, so a long evaluation can stop and resume.

Rows are keyed by ``(run_key, eps, idx)``: ``run_key`` identifies what was evaluated (see
:func:`run_key`), ``eps`` the budget and ``idx`` the sample's position in the evaluated set.
Each batch is written in one transaction, so a run killed mid-way loses at most the batch
in flight, and a rerun skips every sample already stored.

The database runs in WAL mode with a busy timeout (:data:`BUSY_TIMEOUT`), so readers never
block a writer and two processes writing the same store wait for each other instead of
failing with "database is locked". Every SQLite failure (disk full, I/O error, read-only
file, a lock held too long, a damaged file) is a :class:`~brittle.errors.StorageError` that
says what failed, that the committed batches are kept, and how to resume.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from brittle.attacks.result import AttackResult
from brittle.errors import InputError, StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    run_key TEXT NOT NULL,
    eps REAL NOT NULL,
    idx INTEGER NOT NULL,
    y INTEGER NOT NULL,
    target INTEGER,
    pred_clean INTEGER NOT NULL,
    pred_adv INTEGER NOT NULL,
    success INTEGER NOT NULL,
    confidence_adv REAL NOT NULL,
    l0 REAL NOT NULL,
    l1 REAL NOT NULL,
    l2 REAL NOT NULL,
    linf REAL NOT NULL,
    gradients INTEGER NOT NULL,
    queries INTEGER NOT NULL,
    PRIMARY KEY (run_key, eps, idx)
);
CREATE TABLE IF NOT EXISTS batches (
    run_key TEXT NOT NULL,
    eps REAL NOT NULL,
    samples INTEGER NOT NULL,
    seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS examples (
    run_key TEXT NOT NULL,
    eps REAL NOT NULL,
    idx INTEGER NOT NULL,
    shape TEXT NOT NULL,
    clean BLOB NOT NULL,
    adversarial BLOB NOT NULL,
    PRIMARY KEY (run_key, eps, idx)
);
"""

BUSY_TIMEOUT = 30.0
"""Seconds a store waits for another process's write transaction before giving up."""

_ADDED_COLUMNS = (
    ("min_eps", "REAL"),
    ("verification_queries", "INTEGER NOT NULL DEFAULT 0"),
    ("nonfinite", "INTEGER NOT NULL DEFAULT 0"),
    ("exhausted", "INTEGER NOT NULL DEFAULT 0"),
)
"""Columns of ``samples`` added after the first release, with their SQL types: every store
gets them when opened (rows written before hold NULL or 0)."""

_INT_COLUMNS = ("y", "pred_clean", "pred_adv", "gradients", "queries", "verification_queries")
_BOOL_COLUMNS = ("success", "nonfinite", "exhausted")
_FLOAT_COLUMNS = ("confidence_adv", "l0", "l1", "l2", "linf")
_OPTIONAL_COLUMNS = ("target", "min_eps")
_COLUMNS = (*_INT_COLUMNS, *_BOOL_COLUMNS, *_FLOAT_COLUMNS, *_OPTIONAL_COLUMNS)
"""The per-sample fields of an :class:`AttackResult` kept in ``samples``, in this order."""


def run_key(config: dict[str, Any]) -> str:
    """A short stable hash of a configuration (keys sorted, so their order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's content (a checkpoint's identity, whatever its name)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ResultStore:
    """Per-sample attack results in an SQLite file (created on first use).

    ``busy_timeout`` is how long, in seconds, a write waits for another process's write
    transaction to end. Failures of the file or the disk raise :class:`StorageError`.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        if self.path.is_dir():
            raise InputError(f"the result store {self.path} is a folder; give a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(
                f"cannot create the folder of the result store {self.path} ({err}); fix the "
                "place or choose another output folder, then run the same command again"
            ) from err
        try:
            self._open()
        except sqlite3.DatabaseError as err:
            if _kind(err) != _DAMAGED:
                raise _storage_error(self.path, "open", err, busy_timeout) from err
            raise InputError(  # a file that is not a store is a wrong --out, not a disk fault
                f"{self.path} is not a brittle result store ({err}); choose another output "
                "folder or delete the file"
            ) from err

    def _open(self) -> None:
        """Connect in WAL mode, create the tables, upgrade an old schema.

        Autocommit mode (``isolation_level=None``): transactions are explicit, see
        :meth:`_transaction`.
        """
        self._db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
        except BaseException:
            self._db.close()
            raise

    def _add_missing_columns(self) -> None:
        """Give the store every column of :data:`_ADDED_COLUMNS` it lacks (a new store, or one
        written before the column was kept)."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(samples)")}
        missing = [(name, kind) for name, kind in _ADDED_COLUMNS if name not in present]
        if missing:
            with self._transaction() as db:
                for name, kind in missing:
                    db.execute(f"ALTER TABLE samples ADD COLUMN {name} {kind}")

    def close(self) -> None:
        """Close the database."""
        with self._storage_errors("close"):
            self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back on any error.

        ``BEGIN IMMEDIATE`` takes the write lock up front (waiting up to the busy timeout),
        so a transaction never fails half-way because another process started writing.
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite itself rolls back on some errors (disk full)
                with suppress(sqlite3.Error):  # the original error says more than this one
                    self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _storage_errors(self, action: str) -> Iterator[None]:
        """Turn any SQLite error inside the block into a :class:`StorageError`."""
        try:
            yield
        except sqlite3.Error as err:
            raise _storage_error(self.path, action, err, self.busy_timeout) from err

    # ------------------------------------------------------------------ runs
    def register(self, key: str, config: dict[str, Any]) -> None:
        """Record the configuration a run key stands for (kept for inspection)."""
        with self._storage_errors("write to"), self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_key, config) VALUES (?, ?)",
                (key, json.dumps(config, sort_keys=True)),
            )

    # ------------------------------------------------------------------ samples
    def done(self, key: str, eps: float) -> set[int]:
        """Indices of the samples already stored for ``(key, eps)``."""
        with self._storage_errors("read"):
            rows = self._db.execute(
                "SELECT idx FROM samples WHERE run_key = ? AND eps = ?", (key, float(eps))
            ).fetchall()
        return {int(r[0]) for r in rows}

    def insert(
        self,
        key: str,
        eps: float,
        indices: Sequence[int],
        result: AttackResult,
        x: Tensor | None = None,
        examples: int = 0,
    ) -> None:
        """Store one batch in one transaction: its rows, its time, and the first examples.

        ``indices[i]`` is the position of the result's row ``i`` in the evaluated set. With
        the batch's clean inputs ``x``, the clean and adversarial inputs of samples whose index
        is below ``examples`` are kept too, for the report's images. If the write fails
        (:class:`StorageError`), nothing of the batch is stored.
        """
        if len(indices) != len(result):
            raise InputError(f"{len(indices)} indices for a result of {len(result)} samples")
        cols = result.numpy()
        clean = None if x is None else x.detach().cpu().numpy()
        rows = [(key, float(eps), int(idx), *_row(cols, i)) for i, idx in enumerate(indices)]
        x_adv = cols["x_adv"]
        with self._storage_errors("write a batch to"), self._transaction() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO samples (run_key, eps, idx, {', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' * (3 + len(_COLUMNS)))})",
                rows,
            )
            db.execute(
                "INSERT INTO batches (run_key, eps, samples, seconds) VALUES (?, ?, ?, ?)",
                (key, float(eps), len(indices), float(result.seconds)),
            )
            for i, idx in enumerate(indices):
                if clean is not None and idx < examples:
                    db.execute(
                        "INSERT OR REPLACE INTO examples VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            key,
                            float(eps),
                            int(idx),
                            json.dumps(list(x_adv[i].shape)),
                            np.ascontiguousarray(clean[i], dtype=np.float32).tobytes(),
                            np.ascontiguousarray(x_adv[i], dtype=np.float32).tobytes(),
                        ),
                    )

    def result(self, key: str, eps: float) -> AttackResult:
        """The stored samples of ``(key, eps)``, in index order, as an :class:`AttackResult`.

        The store keeps per-sample numbers, not inputs: ``x_adv`` is empty (shape ``(N, 0)``);
        ``ids`` are the stored indices; ``seconds`` is the attack time summed over every stored
        batch; ``min_eps`` (from ``Minimize``, ``inf`` where the model was not fooled) is there
        when every row has one. ``attack``, ``norm`` and ``criterion`` are left empty for the
        caller, who knows the attack, to fill in.
        """
        names = ("idx", *_COLUMNS)
        with self._storage_errors("read"):
            rows = self._db.execute(
                f"SELECT {', '.join(names)} FROM samples WHERE run_key = ? AND eps = ? "
                "ORDER BY idx",
                (key, float(eps)),
            ).fetchall()
            (seconds,) = self._db.execute(
                "SELECT COALESCE(SUM(seconds), 0) FROM batches WHERE run_key = ? AND eps = ?",
                (key, float(eps)),
            ).fetchone()
        columns = {name: [row[j] for row in rows] for j, name in enumerate(names)}
        ints = {c: torch.tensor(columns[c], dtype=torch.long) for c in _INT_COLUMNS}
        bools = {c: torch.tensor(columns[c], dtype=torch.bool) for c in _BOOL_COLUMNS}
        floats = {c: torch.tensor(columns[c], dtype=torch.float32) for c in _FLOAT_COLUMNS}
        targets = columns["target"]
        has_target = bool(rows) and targets[0] is not None
        min_eps = columns["min_eps"]
        has_min_eps = bool(rows) and all(v is not None for v in min_eps)
        tensors: dict[str, Tensor] = {**ints, **bools, **floats}
        return AttackResult(
            x_adv=torch.zeros(len(rows), 0),
            target=torch.tensor(targets, dtype=torch.long) if has_target else None,
            ids=torch.tensor(columns["idx"], dtype=torch.long),
            attack="",
            norm="",
            criterion="",
            eps=float(eps),
            seconds=float(seconds),
            min_eps=torch.tensor(min_eps, dtype=torch.float64) if has_min_eps else None,
            **tensors,
        )

    def examples(self, key: str, eps: float) -> tuple[list[int], Tensor, Tensor]:
        """The kept examples of ``(key, eps)``: their indices, clean and adversarial inputs."""
        with self._storage_errors("read"):
            rows = self._db.execute(
                "SELECT idx, shape, clean, adversarial FROM examples "
                "WHERE run_key = ? AND eps = ? ORDER BY idx",
                (key, float(eps)),
            ).fetchall()
        if not rows:
            return [], torch.zeros(0), torch.zeros(0)
        shape = json.loads(rows[0][1])

        def stack(column: int) -> Tensor:
            arrays = [np.frombuffer(r[column], dtype=np.float32).reshape(shape) for r in rows]
            return torch.from_numpy(np.stack(arrays))

        return [int(r[0]) for r in rows], stack(2), stack(3)


def _row(cols: dict[str, Any], i: int) -> tuple[Any, ...]:
    """Row ``i`` of ``AttackResult.numpy()``'s arrays as the values of :data:`_COLUMNS`
    (``None`` where an optional field, ``target`` or ``min_eps``, is absent)."""
    target, min_eps = cols["target"], cols["min_eps"]
    return (
        *(int(cols[c][i]) for c in _INT_COLUMNS),
        *(int(bool(cols[c][i])) for c in _BOOL_COLUMNS),
        *(float(cols[c][i]) for c in _FLOAT_COLUMNS),
        None if target is None else int(target[i]),
        None if min_eps is None else float(min_eps[i]),
    )


_FULL, _READ_ONLY, _LOCKED, _DAMAGED, _CANNOT_OPEN, _IO = (
    "full",
    "read-only",
    "locked",
    "damaged",
    "cannot open",
    "I/O",
)
_KINDS = (  # the SQLite error names (sqlite_errorname) and message words of each kind
    (_FULL, ("SQLITE_FULL",), ("disk is full",)),
    (_READ_ONLY, ("SQLITE_READONLY", "SQLITE_PERM"), ("readonly", "read-only")),
    (_LOCKED, ("SQLITE_BUSY", "SQLITE_LOCKED"), ("locked", "busy")),
    (_DAMAGED, ("SQLITE_CORRUPT", "SQLITE_NOTADB"), ("malformed", "not a database")),
    (_CANNOT_OPEN, ("SQLITE_CANTOPEN",), ("unable to open",)),
    (_IO, ("SQLITE_IOERR",), ("i/o error",)),
)
_EXPLAIN = {  # kind: what it means, what to do before running again
    _FULL: ("the disk is full", "free some space"),
    _READ_ONLY: ("the file or its folder is read-only", "make it writable"),
    _LOCKED: (
        "another process held the database locked for more than {timeout:g} s",
        "wait until the other run ends (or stop it)",
    ),
    _DAMAGED: ("the file is damaged", "move the file aside (the run then starts over)"),
    _CANNOT_OPEN: (
        "the file cannot be opened or created (folder missing or not writable)",
        "fix the folder or choose another output folder",
    ),
    _IO: ("the disk reported an I/O error", "check the disk (space, connection, health)"),
    "": ("SQLite failed", "fix the cause"),
}


def _kind(err: sqlite3.Error) -> str:
    """Which kind of failure ``err`` is ("" if none of :data:`_KINDS`): by SQLite's error
    name where Python sets it, else by the words of the message."""
    name = getattr(err, "sqlite_errorname", None) or ""
    text = str(err).lower()
    for kind, names, words in _KINDS:
        if name.startswith(names) or any(word in text for word in words):
            return kind
    return ""


def _storage_error(
    path: Path, action: str, err: sqlite3.Error, busy_timeout: float
) -> StorageError:
    """The one-line :class:`StorageError` of a failed ``action`` ("read", "write to", ...)."""
    kind = _kind(err)
    meaning, fix = _EXPLAIN[kind]
    kept = (
        "its stored results may be lost"
        if kind == _DAMAGED
        else "every batch committed before is kept (a batch is one transaction; one that "
        "failed is rolled back)"
    )
    return StorageError(
        f"cannot {action} the result store {path}: {meaning.format(timeout=busy_timeout)} "
        f"({err}); {kept}. To resume, {fix}, then run the same command again"
    )
