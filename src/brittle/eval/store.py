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
to do: it is never upgraded, changed or overwritten. Rows are checked as they are read
(:mod:`.integrity`: types, ranges, fields that contradict each other, such as a flipped
``success``), records when the store is opened: a damaged store is a
:class:`~brittle.errors.StorageError` naming the file and the first bad row and saying to
move the file aside, and from then on the store refuses every write. A reader (``create``
false) opens the file read-only (SQLite's ``mode=ro``), so a store on a read-only disk or in
a read-only folder can be compared and exported.

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
import math
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from brittle.attacks.result import AttackResult
from brittle.errors import InputError, StorageError
from brittle.eval.integrity import JUDGED_GOALS, Violation, check_rows, typed
from brittle.version import __version__

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
    confidence_adv REAL,
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
_CERTIFICATES = """
CREATE TABLE IF NOT EXISTS certificates (
    run TEXT NOT NULL,
    method TEXT NOT NULL,
    norm TEXT NOT NULL,
    sample_id INTEGER NOT NULL,
    label INTEGER NOT NULL,
    radius REAL NOT NULL,
    PRIMARY KEY (run, method, norm, sample_id)
)
"""
"""Certified radii per sample (:mod:`brittle.certify`), made by the first evaluation that
certifies: older stores without it stay readable."""
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
    must be a store already). ``read_only`` (default: when ``create`` is false) opens the
    file for reading only: nothing is ever written to it, and it may be on a read-only disk
    or in a read-only folder. ``busy_timeout`` is how long, in seconds, a write waits for
    another process's write transaction to end. ``classes``: the number of classes of the
    model whose results the store holds, when known; a stored class index beyond it is
    damage. A file that is not a store of this schema is refused
    (:class:`~brittle.errors.InputError`) and left as it is; a damaged record (when the
    store is opened) or row (when it is read, :mod:`.integrity`) is a :class:`StorageError`
    naming it, after which every write is refused. Failures of the file or the disk raise
    :class:`StorageError`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        create: bool = True,
        read_only: bool | None = None,
        classes: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.read_only = not create if read_only is None else read_only
        self.classes = classes
        self._damage: str | None = None  # what is wrong with the store, once found damaged
        if self.read_only and create:
            raise InputError(f"the result store {self.path} cannot be created read-only")
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
        self._db = self._connect()
        try:
            tables = self._tables()
            if not tables and not create:
                raise InputError(f"{self.path} is an empty SQLite file, not a result store yet")
            if tables:  # an existing store: check it without writing anything
                self._check_schema(tables)
                self._check_records()
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

    def _connect(self) -> sqlite3.Connection:
        """A connection for reading and writing, or for reading only (:attr:`read_only`).

        A read-only connection uses SQLite's ``mode=ro``. In WAL mode even a reader needs to
        create the ``-shm`` index beside the file, which a read-only folder forbids; there,
        when no write is pending in a ``-wal`` file, the file is opened ``immutable``: no
        process can write to it while its folder is read-only, so nothing can change under
        the reader.
        """
        if not self.read_only:
            return sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        uri = self.path.absolute().as_uri()

        def connect(mode: str) -> sqlite3.Connection:
            return sqlite3.connect(
                f"{uri}?{mode}", uri=True, timeout=self.busy_timeout, isolation_level=None
            )

        db = connect("mode=ro")
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as err:
            db.close()
            wal = Path(f"{self.path}-wal")
            if _kind(err) != _READ_ONLY or (wal.exists() and wal.stat().st_size > 0):
                raise
        return connect("immutable=1")

    def _check_records(self) -> None:
        """Refuse a store with a record that is not a JSON object (a few rows: read whole),
        before anything reads or writes it."""
        for kind, key, text in self._db.execute("SELECT kind, key, json FROM records"):
            try:
                record = json.loads(text)
            except (TypeError, ValueError):
                record = None
            if not isinstance(record, dict):
                raise self._damaged(f"its {kind!r} record {key!r} is not a JSON object")

    def _damaged(self, what: str) -> StorageError:
        """The error of a store found damaged, ``what`` being what is wrong; from now on the
        store refuses every write with it (:meth:`_transaction`)."""
        self._damage = (
            f"the result store {self.path} is damaged: {what}. Its results cannot be trusted "
            "and brittle writes nothing more to it: move the file aside (a new run then starts "
            "over), then run the same command again"
        )
        return StorageError(self._damage)

    def _identity(self, run: str) -> tuple[bool, int | None]:
        """What ``run``'s identity (its ``run`` record, when there is one) says of its rows:
        whether they were judged by (targeted) misclassification with kappa = 0 (the goal is
        in :data:`~.integrity.JUDGED_GOALS`), and the number of the data's classes."""
        identity = self.record("run", run) or {}
        threat, data = identity.get("threat"), identity.get("data")
        judged = isinstance(threat, dict) and threat.get("goal") in JUDGED_GOALS
        names = data.get("classes") if isinstance(data, dict) else None
        return judged, len(names) if isinstance(names, list) and names else None

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
            "brittle_version": __version__,
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

    def _has_not_null(self, column: str) -> bool:
        """Whether ``samples.column`` refuses NULL (the confidence in stores made before it
        could be absent)."""
        rows = self._db.execute("PRAGMA table_info(samples)")
        return any(row[1] == column and row[3] for row in rows)

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
        if self._damage is not None:
            raise StorageError(self._damage)
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
        if not rows:
            return set()
        ids = typed("sample_id", [r[0] for r in rows], "integer")
        if isinstance(ids, Violation):
            raise self._damaged(f"a row of samples at eps {eps:g} {ids.describe()}")
        return set(ids.tolist())

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
        images: Mapping[int, tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        """Store one batch in one transaction: its rows, its time, and the kept examples.

        ``ids[i]`` is the sample id of the result's row ``i``. With the batch's clean inputs
        ``x``, the clean and adversarial inputs of the samples whose id is in ``keep`` are
        stored too, for the report's images; or, given as ``images`` (sample id to clean and
        adversarial input: a batch that travelled without its other inputs), those. If the
        write fails (:class:`StorageError`), nothing of the batch is stored.
        """
        if len(ids) != len(result):
            raise InputError(f"{len(ids)} sample ids for a result of {len(result)} samples")
        cols = result.numpy()
        if np.isnan(cols["confidence_adv"]).any() and self._has_not_null("confidence_adv"):
            raise InputError(
                f"the result store {self.path} was made by an older brittle whose samples "
                "table needs a confidence for every row, but this model gives none for some "
                "(a label-only oracle, or a non-finite output); evaluate into a new --out folder"
            )
        name = result.attack if attack_name is None else attack_name
        clean = None if x is None else x.detach().cpu().numpy()
        head = (run, attack, name, float(eps))
        rows = []
        for i, sid in enumerate(ids):
            target_i, *values = _row(cols, i)
            rows.append((*head, target_i, int(sid), *values))
        target = cols["target"]
        row_of = {int(sid): i for i, sid in enumerate(ids)}
        if images is None:
            kept = [] if clean is None else [i for i, sid in enumerate(ids) if int(sid) in keep]
            pictures = [(i, clean[i], cols["x_adv"][i]) for i in kept]  # type: ignore[index]
        else:
            pictures = [(row_of[int(sid)], c.numpy(), a.numpy()) for sid, (c, a) in images.items()]
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
            for i, clean_i, adversarial_i in pictures:
                db.execute(
                    "INSERT OR REPLACE INTO examples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run,
                        attack,
                        float(eps),
                        None if target is None else int(target[i]),
                        int(ids[i]),
                        json.dumps(list(adversarial_i.shape)),
                        np.ascontiguousarray(clean_i, dtype=np.float32).tobytes(),
                        np.ascontiguousarray(adversarial_i, dtype=np.float32).tobytes(),
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

        Every row of ``(run, attack, eps)`` is checked as it is read (:mod:`.integrity`:
        types, ranges, the invariants of the run's goal, class indices below
        :attr:`classes` when known): a damaged row raises a :class:`StorageError` naming it,
        and the store then refuses every write.
        """
        names = ("rowid", "attack_name", "sample_id", *_COLUMNS)
        with self._storage_errors("read"):
            rows = self._db.execute(
                f"SELECT {', '.join(names)} FROM samples WHERE run = ? AND attack = ? AND "
                "eps = ? ORDER BY sample_id, target",
                (run, attack, float(eps)),
            ).fetchall()
            seconds, bad_batches = self._db.execute(
                "SELECT COALESCE(SUM(seconds), 0), COUNT(*) - COUNT(CASE WHEN typeof(seconds) "
                "IN ('real', 'integer') AND seconds >= 0 THEN 1 END) FROM batches "
                "WHERE run = ? AND attack = ? AND eps = ?",
                (run, attack, float(eps)),
            ).fetchone()
        columns = {name: [row[j] for row in rows] for j, name in enumerate(names)}
        judged, labels = self._identity(run)
        arrays, violation = check_rows(columns, classes=self.classes, labels=labels, judged=judged)
        if violation is not None:
            i = violation.row
            raise self._damaged(
                f"row {columns['rowid'][i]} of samples (attack {columns['attack_name'][i]!r}, "
                f"eps {eps:g}, sample {columns['sample_id'][i]!r}) {violation.describe()}"
            )
        if bad_batches:
            raise self._damaged(
                f"{bad_batches} batch(es) of eps {eps:g} record seconds that are not a number >= 0"
            )
        order = np.arange(len(rows))
        if ids is not None:
            stored = arrays["sample_id"]
            assert stored is not None  # a required column
            by_id = {sid: i for i, sid in enumerate(stored.tolist())}
            missing = [int(i) for i in ids if int(i) not in by_id]
            if missing:
                raise InputError(
                    f"{len(missing)} samples (first id {missing[0]}) are not stored for eps="
                    f"{eps:g} in {self.path}"
                )
            order = np.array([by_id[int(i)] for i in ids], dtype=np.int64)

        def column(name: str, dtype: type) -> Tensor:
            """The column in the order asked for, cast by numpy (faster than torch's cast)."""
            array = arrays[name]
            assert array is not None
            return torch.from_numpy(array[order].astype(dtype))

        target, min_eps = arrays["target"], arrays["min_eps"]
        return AttackResult(
            x_adv=torch.zeros(len(order), 0),
            target=None if target is None else column("target", np.int64),
            ids=column("sample_id", np.int64),
            attack=str(columns["attack_name"][0]) if rows else "",
            norm="",
            criterion="",
            eps=float(eps),
            seconds=float(seconds),
            min_eps=None if min_eps is None else column("min_eps", np.float64),
            **{c: column(c, np.int64) for c in _INT_COLUMNS},
            **{c: column(c, np.bool_) for c in _BOOL_COLUMNS},
            **{c: column(c, np.float32) for c in _FLOAT_COLUMNS},
        )

    # ------------------------------------------------------------------ certificates
    def put_certificates(
        self, run: str, method: str, norm: str, ids: Sequence[int], label: Tensor, radius: Tensor
    ) -> None:
        """Store certified radii of ``run``'s samples (the table ``certificates``, made on
        first use, keyed by run, method, norm and sample id; a stored sample is replaced)."""
        rows = [
            (run, method, norm, int(i), int(k), float(r))
            for i, k, r in zip(ids, label.tolist(), radius.tolist(), strict=True)
        ]
        with self._storage_errors("write to"), self._transaction() as db:
            db.execute(_CERTIFICATES)
            db.executemany(
                "INSERT OR REPLACE INTO certificates (run, method, norm, sample_id, label, "
                "radius) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def certificates(self, run: str, method: str, norm: str) -> dict[int, tuple[int, float]]:
        """The stored certificates of ``run`` by ``method`` in ``norm``: sample id ->
        (label, radius); empty when none are stored. A row whose label is not an integer
        or whose radius is not a number >= 0 is a damaged store."""
        if "certificates" not in self._tables():
            return {}
        with self._storage_errors("read"):
            rows = self._db.execute(
                "SELECT sample_id, label, radius FROM certificates WHERE run = ? AND method = ? "
                "AND norm = ?",
                (run, method, norm),
            ).fetchall()
        found: dict[int, tuple[int, float]] = {}
        for sample, label, radius in rows:
            if (
                not isinstance(sample, int)
                or not isinstance(label, int)
                or not isinstance(radius, int | float)
                or not radius >= 0
            ):
                raise self._damaged(
                    f"a row of certificates (sample {sample!r}) holds label {label!r} and radius "
                    f"{radius!r}: a certificate is an integer label and a radius >= 0"
                )
            found[sample] = (label, float(radius))
        return found

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
        shape = _example_shape(rows[0][1])
        size = 4 * math.prod(shape) if shape else -1
        for sid, text, clean, adversarial in rows:
            if text != rows[0][1] or shape is None or not isinstance(sid, int):
                what = f"its shape {text!r} is not the list of sizes of the first, {rows[0][1]!r}"
            elif not (isinstance(clean, bytes) and isinstance(adversarial, bytes)):
                what = "its inputs are not blobs"
            elif len(clean) != size or len(adversarial) != size:
                what = f"its inputs are not float32 arrays of shape {shape}"
            else:
                continue
            raise self._damaged(f"the kept example of sample {sid!r} at eps {eps:g}: {what}")

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


def _example_shape(text: Any) -> list[int] | None:
    """The shape a kept example's ``shape`` column gives (JSON list of positive sizes), or
    ``None`` when it gives none."""
    try:
        shape = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    valid = isinstance(shape, list) and all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    )
    return shape if valid else None


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
