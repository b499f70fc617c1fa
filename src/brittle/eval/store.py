"""Per-sample results in an embedded SQLite file, so a long evaluation can stop and resume.

**Schema version 2.** Per-sample rows live in ``samples``, keyed by
``(run, attack, eps, target, sample_id)``:

- ``run``: what was evaluated, the hash (:func:`run_key`) of the model checkpoint's SHA-256,
  the data (name, split and the split's content hash), the threat model and the seed;
- ``attack``: the hash (:func:`attack_key`) of the attack's canonical JSON spec (its name and
  declared parameters, without the budget: :func:`~brittle.attacks.registry.describe_attack`);
  the spec itself is the ``attack`` record of that key, and ``attack_name`` the readable name;
- ``eps``: the budget;
- ``target``: the target class, NULL for an untargeted attack (a unique index treats NULL
  as one value, so an untargeted sample is stored once);
- ``sample_id``: the sample's id in its data set (:attr:`~brittle.data.Dataset.ids`).

``records(kind, key, created, json)`` holds every other kind of record as JSON: the ``run``
(its identity), each ``attack`` spec, the ``evaluation`` (the options to resume it) and its
``summary``; a bound or a training run can be stored the same way later. ``meta`` holds
``format`` (``brittle-results``) and ``schema_version``; ``PRAGMA user_version`` and
``PRAGMA application_id`` say the same to any SQLite tool. A file that is not such a store, an
older brittle store (schema 1) or one of a newer schema, is refused with what it is and what
to do: it is never upgraded, changed or overwritten.

Each batch is written in one transaction, so a run killed mid-way loses at most the batch
in flight, and a rerun skips every sample already stored.

The database runs in WAL mode with a busy timeout (:data:`BUSY_TIMEOUT`), so readers never
block a writer and two processes writing the same store wait for each other instead of
failing with "database is locked". Every SQLite failure (disk full, I/O error, read-only
file, a lock held too long, a damaged file) is a :class:`~brittle.errors.StorageError` that
says what failed, that the committed batches are kept, and how to resume.

Read it with pandas in one line::

    pd.read_sql("SELECT * FROM samples", sqlite3.connect("runs/x/results.sqlite"))
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor

import brittle
from brittle.attacks.result import AttackResult
from brittle.errors import InputError, StorageError

SCHEMA_VERSION = 2
"""The version of the store's schema this brittle reads and writes."""
FORMAT = "brittle-results"
"""The ``format`` of ``meta``: what says a SQLite file is a brittle result store."""
APPLICATION_ID = 0x62726974  # "brit"
"""The store's ``PRAGMA application_id`` (SQLite's field for the file's application)."""

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    created TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE samples (
    run TEXT NOT NULL,
    attack TEXT NOT NULL,
    attack_name TEXT NOT NULL,
    eps REAL NOT NULL,
    target INTEGER,
    sample_id INTEGER NOT NULL,
    y INTEGER NOT NULL,
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
    verification_queries INTEGER NOT NULL,
    nonfinite INTEGER NOT NULL,
    exhausted INTEGER NOT NULL,
    min_eps REAL
);
CREATE UNIQUE INDEX samples_key ON samples (run, attack, eps, IFNULL(target, -1), sample_id);
CREATE TABLE batches (
    run TEXT NOT NULL,
    attack TEXT NOT NULL,
    eps REAL NOT NULL,
    samples INTEGER NOT NULL,
    seconds REAL NOT NULL
);
CREATE TABLE examples (
    run TEXT NOT NULL,
    attack TEXT NOT NULL,
    eps REAL NOT NULL,
    target INTEGER,
    sample_id INTEGER NOT NULL,
    shape TEXT NOT NULL,
    clean BLOB NOT NULL,
    adversarial BLOB NOT NULL
);
CREATE UNIQUE INDEX examples_key ON examples (run, attack, eps, IFNULL(target, -1), sample_id);
"""
_TABLES = {"meta", "records", "samples", "batches", "examples"}
_HEADER = b"SQLite format 3\x00"

BUSY_TIMEOUT = 30.0
"""Seconds a store waits for another process's write transaction before giving up."""

_INT_COLUMNS = ("y", "pred_clean", "pred_adv", "gradients", "queries", "verification_queries")
_BOOL_COLUMNS = ("success", "nonfinite", "exhausted")
_FLOAT_COLUMNS = ("confidence_adv", "l0", "l1", "l2", "linf")
_COLUMNS = (
    "target",
    "y",
    "pred_clean",
    "pred_adv",
    "success",
    "confidence_adv",
    "l0",
    "l1",
    "l2",
    "linf",
    "gradients",
    "queries",
    "verification_queries",
    "nonfinite",
    "exhausted",
    "min_eps",
)
"""The per-sample fields of an :class:`AttackResult` kept in ``samples``, in this order."""
SAMPLE_COLUMNS = ("run", "attack", "attack_name", "eps", "target", "sample_id", *_COLUMNS[1:])
"""Every column of ``samples``."""


def canonical_json(data: Any) -> str:
    """``data`` as canonical JSON: keys sorted, no spaces (the same data, the same text)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_key(config: dict[str, Any]) -> str:
    """A short stable hash of a configuration (keys sorted, so their order does not matter)."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def attack_key(spec: dict[str, Any]) -> str:
    """The key of an attack spec in ``samples``: the hash of its canonical JSON."""
    return run_key(spec)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's content (a checkpoint's identity, whatever its name)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class ResultStore:
    """Per-sample attack results in an SQLite file of schema :data:`SCHEMA_VERSION`.

    A missing (or empty) file is created, unless ``create`` is false (a reader: the file
    must be a store already). ``busy_timeout`` is how long, in seconds, a write waits for
    another process's write transaction to end. A file that is not a store of this schema is
    refused (:class:`~brittle.errors.InputError`) and left as it is. Failures of the file or
    the disk raise :class:`StorageError`.
    """

    def __init__(
        self, path: str | Path, *, busy_timeout: float = BUSY_TIMEOUT, create: bool = True
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        if self.path.is_dir():
            raise InputError(f"the result store {self.path} is a folder; give a file path")
        _refuse_foreign_bytes(self.path)
        if not create and not self.path.is_file():
            raise InputError(f"there is no result store at {self.path}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(
                f"cannot create the folder of the result store {self.path} ({err}); fix the "
                "place or choose another output folder, then run the same command again"
            ) from err
        try:
            self._open(create)
        except sqlite3.DatabaseError as err:
            if _kind(err) != _DAMAGED:
                raise _storage_error(self.path, "open", err, busy_timeout) from err
            raise InputError(  # a file that is not a store is a wrong --out, not a disk fault
                f"{self.path} is not a brittle result store ({err}); choose another output "
                "folder, or move the file aside"
            ) from err

    def _open(self, create: bool) -> None:
        """Connect in WAL mode; create the schema in a new file; refuse any other file.

        Autocommit mode (``isolation_level=None``): transactions are explicit, see
        :meth:`_transaction`. The check and the creation are one write transaction, so two
        processes opening a new file at once create it once.
        """
        self._db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            tables = self._tables()
            if not tables and not create:
                raise InputError(f"{self.path} is an empty SQLite file, not a result store yet")
            if tables:  # an existing store: check it without writing anything
                self._check_schema(tables)
            else:
                self._db.execute("PRAGMA journal_mode=WAL")
                with self._transaction() as db:
                    tables = self._tables()
                    if tables:  # another process created it meanwhile
                        self._check_schema(tables)
                    else:
                        self._create(db)
        except BaseException:
            self._db.close()
            raise

    def _tables(self) -> set[str]:
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows}

    def _create(self, db: sqlite3.Connection) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        meta = {
            "format": FORMAT,
            "schema_version": str(SCHEMA_VERSION),
            "created": _now(),
            "brittle_version": brittle.__version__,
        }
        db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _check_schema(self, tables: set[str]) -> None:
        """Refuse, with what it is and what to do, a file that is not a store of this schema."""
        where = f"{self.path}"
        advice = (
            "evaluate into a new --out folder, or move or delete the old file if its results "
            "are no longer needed"
        )
        if "meta" not in tables:
            if "samples" in tables and self._has_column("samples", "run_key"):
                raise InputError(
                    f"{where} is a result store of schema 1 (written by brittle before 0.2); this "
                    f"brittle reads schema {SCHEMA_VERSION} only and never changes an old store: "
                    f"{advice}"
                )
            raise InputError(
                f"{where} is an SQLite database but not a brittle result store (tables: "
                f"{', '.join(sorted(tables))}); choose another --out folder, or move the file aside"
            )
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise InputError(
                f"{where} is an SQLite database but not a brittle result store (its meta table "
                f"has no format {FORMAT!r}); choose another --out folder, or move the file aside"
            )
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            newer = version is not None and version.isdigit() and int(version) > SCHEMA_VERSION
            fix = "upgrade brittle to read it" if newer else advice
            raise InputError(
                f"{where} is a brittle result store of schema {version}; this brittle reads "
                f"schema {SCHEMA_VERSION} only and never changes another: {fix}"
            )
        missing = _TABLES - tables
        if missing:
            raise InputError(
                f"{where} is an incomplete brittle result store (no table "
                f"{', '.join(sorted(missing))}); move it aside and run again"
            )

    def _has_column(self, table: str, column: str) -> bool:
        return any(row[1] == column for row in self._db.execute(f"PRAGMA table_info({table})"))

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

    # ------------------------------------------------------------------ records
    def put_record(
        self, kind: str, key: str, data: dict[str, Any], *, replace: bool = True
    ) -> None:
        """Store ``data`` as the record ``(kind, key)``; ``replace=False`` keeps a record
        already there (for what never changes: a run's identity, an attack's spec)."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self._storage_errors("write to"), self._transaction() as db:
            db.execute(
                f"{verb} INTO records (kind, key, created, json) VALUES (?, ?, ?, ?)",
                (kind, key, _now(), json.dumps(data, sort_keys=True)),
            )

    def record(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record ``(kind, key)``, ``None`` when there is none."""
        with self._storage_errors("read"):
            row = self._db.execute(
                "SELECT json FROM records WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every record of ``kind``, by key."""
        with self._storage_errors("read"):
            rows = self._db.execute(
                "SELECT key, json FROM records WHERE kind = ? ORDER BY key", (kind,)
            ).fetchall()
        return {str(k): dict(json.loads(v)) for k, v in rows}

    def register(self, key: str, config: dict[str, Any]) -> None:
        """Record the configuration a run key stands for (kept as first written)."""
        self.put_record("run", key, config, replace=False)

    def register_attack(self, spec: dict[str, Any]) -> str:
        """Record an attack's spec; its key (:func:`attack_key`)."""
        key = attack_key(spec)
        self.put_record("attack", key, spec, replace=False)
        return key

    # ------------------------------------------------------------------ samples
    def done(self, run: str, attack: str, eps: float) -> set[int]:
        """Ids of the samples already stored for ``(run, attack, eps)`` (any target)."""
        with self._storage_errors("read"):
            rows = self._db.execute(
                "SELECT sample_id FROM samples WHERE run = ? AND attack = ? AND eps = ?",
                (run, attack, float(eps)),
            ).fetchall()
        return {int(r[0]) for r in rows}

    def count(self, run: str | None = None) -> int:
        """How many per-sample rows the store holds (of ``run``, or of every run)."""
        where, args = ("WHERE run = ?", (run,)) if run is not None else ("", ())
        with self._storage_errors("read"):
            (n,) = self._db.execute(f"SELECT COUNT(*) FROM samples {where}", args).fetchone()
        return int(n)

    def insert(
        self,
        run: str,
        attack: str,
        eps: float,
        ids: Sequence[int],
        result: AttackResult,
        *,
        attack_name: str | None = None,
        x: Tensor | None = None,
        keep: Collection[int] = (),
    ) -> None:
        """Store one batch in one transaction: its rows, its time, and the kept examples.

        ``ids[i]`` is the sample id of the result's row ``i``. With the batch's clean inputs
        ``x``, the clean and adversarial inputs of the samples whose id is in ``keep`` are
        stored too, for the report's images. If the write fails (:class:`StorageError`),
        nothing of the batch is stored.
        """
        if len(ids) != len(result):
            raise InputError(f"{len(ids)} sample ids for a result of {len(result)} samples")
        cols = result.numpy()
        name = result.attack if attack_name is None else attack_name
        clean = None if x is None else x.detach().cpu().numpy()
        head = (run, attack, name, float(eps))
        rows = []
        for i, sid in enumerate(ids):
            target_i, *values = _row(cols, i)
            rows.append((*head, target_i, int(sid), *values))
        x_adv = cols["x_adv"]
        target = cols["target"]
        kept = [] if clean is None else [i for i, sid in enumerate(ids) if int(sid) in keep]
        with self._storage_errors("write a batch to"), self._transaction() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO samples ({', '.join(SAMPLE_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(SAMPLE_COLUMNS))})",
                rows,
            )
            db.execute(
                "INSERT INTO batches (run, attack, eps, samples, seconds) VALUES (?, ?, ?, ?, ?)",
                (run, attack, float(eps), len(ids), float(result.seconds)),
            )
            for i in kept:
                assert clean is not None
                db.execute(
                    "INSERT OR REPLACE INTO examples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run,
                        attack,
                        float(eps),
                        None if target is None else int(target[i]),
                        int(ids[i]),
                        json.dumps(list(x_adv[i].shape)),
                        np.ascontiguousarray(clean[i], dtype=np.float32).tobytes(),
                        np.ascontiguousarray(x_adv[i], dtype=np.float32).tobytes(),
                    ),
                )

    def result(
        self, run: str, attack: str, eps: float, ids: Sequence[int] | None = None
    ) -> AttackResult:
        """The stored samples of ``(run, attack, eps)`` as an :class:`AttackResult`.

        In the order of ``ids`` (those sample ids only; each must be stored), or by sample id.
        The store keeps per-sample numbers, not inputs: ``x_adv`` is empty (shape ``(N, 0)``);
        ``ids`` are the sample ids; ``seconds`` is the attack time summed over every stored
        batch; ``min_eps`` (from ``Minimize``, ``inf`` where the model was not fooled) is there
        when every row has one. ``norm`` and ``criterion`` are left empty for the caller, who
        knows the attack, to fill in; ``attack`` is the stored name.
        """
        names = ("sample_id", "attack_name", *_COLUMNS)
        with self._storage_errors("read"):
            rows = self._db.execute(
                f"SELECT {', '.join(names)} FROM samples WHERE run = ? AND attack = ? AND "
                "eps = ? ORDER BY sample_id, target",
                (run, attack, float(eps)),
            ).fetchall()
            (seconds,) = self._db.execute(
                "SELECT COALESCE(SUM(seconds), 0) FROM batches WHERE run = ? AND attack = ? "
                "AND eps = ?",
                (run, attack, float(eps)),
            ).fetchone()
        if ids is not None:
            by_id = {int(r[0]): r for r in rows}
            missing = [int(i) for i in ids if int(i) not in by_id]
            if missing:
                raise InputError(
                    f"{len(missing)} samples (first id {missing[0]}) are not stored for eps="
                    f"{eps:g} in {self.path}"
                )
            rows = [by_id[int(i)] for i in ids]
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
            ids=torch.tensor(columns["sample_id"], dtype=torch.long),
            attack=str(columns["attack_name"][0]) if rows else "",
            norm="",
            criterion="",
            eps=float(eps),
            seconds=float(seconds),
            min_eps=torch.tensor(min_eps, dtype=torch.float64) if has_min_eps else None,
            **tensors,
        )

    def examples(self, run: str, attack: str, eps: float) -> tuple[list[int], Tensor, Tensor]:
        """The kept examples of ``(run, attack, eps)``: sample ids, clean and adversarial
        inputs, by sample id."""
        with self._storage_errors("read"):
            rows = self._db.execute(
                "SELECT sample_id, shape, clean, adversarial FROM examples "
                "WHERE run = ? AND attack = ? AND eps = ? ORDER BY sample_id",
                (run, attack, float(eps)),
            ).fetchall()
        if not rows:
            return [], torch.zeros(0), torch.zeros(0)
        shape = json.loads(rows[0][1])

        def stack(column: int) -> Tensor:
            arrays = [np.frombuffer(r[column], dtype=np.float32).reshape(shape) for r in rows]
            return torch.from_numpy(np.stack(arrays))

        return [int(r[0]) for r in rows], stack(2), stack(3)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a read-only query (for tables and exports)."""
        with self._storage_errors("read"):
            return list(self._db.execute(sql, tuple(args)).fetchall())

    def columns(self, sql: str, args: Sequence[Any] = ()) -> list[str]:
        """The column names of a query's result."""
        with self._storage_errors("read"):
            cursor = self._db.execute(sql, tuple(args))
            names = [d[0] for d in cursor.description]
            cursor.close()
        return names


def _refuse_foreign_bytes(path: Path) -> None:
    """Refuse a non-empty file that is not an SQLite database, before SQLite touches it."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_HEADER))
    except (FileNotFoundError, NotADirectoryError):  # a new store (or a bad folder: below)
        return
    except OSError as err:
        raise StorageError(
            f"cannot read the result store {path} ({err.strerror}); fix its permissions or "
            "choose another --out folder"
        ) from err
    if head and head != _HEADER:
        shown = head[:16].decode("ascii", "replace")
        shown = "".join(c if c.isprintable() else "." for c in shown)
        raise InputError(
            f"{path} is not a brittle result store: it is not an SQLite file at all (it starts "
            f"with {shown!r}); choose another --out folder, or move the file aside"
        )


def _row(cols: dict[str, Any], i: int) -> tuple[Any, ...]:
    """Row ``i`` of ``AttackResult.numpy()``'s arrays as the values of :data:`_COLUMNS`
    (``None`` where an optional field, ``target`` or ``min_eps``, is absent)."""
    values: list[Any] = []
    for c in _COLUMNS:
        column = cols[c]
        if column is None:  # target or min_eps, absent
            values.append(None)
        elif c in _BOOL_COLUMNS:
            values.append(int(bool(column[i])))
        elif c in _FLOAT_COLUMNS or c == "min_eps":
            values.append(float(column[i]))
        else:
            values.append(int(column[i]))
    return tuple(values)


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
