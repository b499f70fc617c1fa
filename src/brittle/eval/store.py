"""Per-sample results in an embedded SQLite file, so a long evaluation can stop and resume.

Rows are keyed by ``(run_key, eps, idx)``: ``run_key`` identifies what was evaluated (see
:func:`run_key`), ``eps`` the budget and ``idx`` the sample's position in the evaluated set.
Each batch is written in one transaction, so a run killed mid-way loses at most the batch
in flight, and a rerun skips every sample already stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from brittle.attacks.result import AttackResult
from brittle.errors import InputError

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
    min_eps REAL,
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

_INT_COLUMNS = ("y", "pred_clean", "pred_adv", "gradients", "queries")
_FLOAT_COLUMNS = ("confidence_adv", "l0", "l1", "l2", "linf")


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
    """Per-sample attack results in an SQLite file (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"the result store {self.path} is a folder; give a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
            self._add_min_eps_column()
        except sqlite3.DatabaseError as err:
            raise InputError(
                f"{self.path} is not a brittle result store ({err}); choose another output "
                "folder or delete the file"
            ) from err

    def _add_min_eps_column(self) -> None:
        """Stores written before ``min_eps`` was kept get the column (NULL in old rows)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(samples)")}
        if "min_eps" not in columns:
            with self._db:
                self._db.execute("ALTER TABLE samples ADD COLUMN min_eps REAL")

    def close(self) -> None:
        """Close the database."""
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
        with self._db:  # commits on success, rolls back on any exception
            yield self._db

    # ------------------------------------------------------------------ runs
    def register(self, key: str, config: dict[str, Any]) -> None:
        """Record the configuration a run key stands for (kept for inspection)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_key, config) VALUES (?, ?)",
                (key, json.dumps(config, sort_keys=True)),
            )

    # ------------------------------------------------------------------ samples
    def done(self, key: str, eps: float) -> set[int]:
        """Indices of the samples already stored for ``(key, eps)``."""
        rows = self._db.execute(
            "SELECT idx FROM samples WHERE run_key = ? AND eps = ?", (key, float(eps))
        )
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
        is below ``examples`` are kept too, for the report's images.
        """
        if len(indices) != len(result):
            raise InputError(f"{len(indices)} indices for a result of {len(result)} samples")
        cols = result.numpy()
        clean = None if x is None else x.detach().cpu().numpy()
        target, min_eps = cols["target"], cols["min_eps"]
        rows = [
            (
                key,
                float(eps),
                int(idx),
                int(cols["y"][i]),
                None if target is None else int(target[i]),
                int(cols["pred_clean"][i]),
                int(cols["pred_adv"][i]),
                int(bool(cols["success"][i])),
                *(float(cols[c][i]) for c in _FLOAT_COLUMNS),
                int(cols["gradients"][i]),
                int(cols["queries"][i]),
                None if min_eps is None else float(min_eps[i]),
            )
            for i, idx in enumerate(indices)
        ]
        x_adv = cols["x_adv"]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO samples (run_key, eps, idx, y, target, pred_clean, "
                "pred_adv, success, confidence_adv, l0, l1, l2, linf, gradients, queries, "
                "min_eps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        ``seconds`` is the attack time summed over every stored batch; ``min_eps`` (from
        ``Minimize``, ``inf`` where the model was not fooled) is there when every row has one.
        """
        names = ("target", "success", "min_eps", *_INT_COLUMNS, *_FLOAT_COLUMNS)
        rows = self._db.execute(
            f"SELECT {', '.join(names)} FROM samples WHERE run_key = ? AND eps = ? ORDER BY idx",
            (key, float(eps)),
        ).fetchall()
        columns = {name: [row[j] for row in rows] for j, name in enumerate(names)}
        ints = {c: torch.tensor(columns[c], dtype=torch.long) for c in _INT_COLUMNS}
        floats = {c: torch.tensor(columns[c], dtype=torch.float32) for c in _FLOAT_COLUMNS}
        targets = columns["target"]
        has_target = bool(rows) and targets[0] is not None
        min_eps = columns["min_eps"]
        has_min_eps = bool(rows) and all(v is not None for v in min_eps)
        (seconds,) = self._db.execute(
            "SELECT COALESCE(SUM(seconds), 0) FROM batches WHERE run_key = ? AND eps = ?",
            (key, float(eps)),
        ).fetchone()
        return AttackResult(
            x_adv=torch.zeros(len(rows), 0),
            success=torch.tensor(columns["success"], dtype=torch.bool),
            target=torch.tensor(targets, dtype=torch.long) if has_target else None,
            attack="",
            norm="",
            eps=float(eps),
            seconds=float(seconds),
            min_eps=torch.tensor(min_eps, dtype=torch.float64) if has_min_eps else None,
            **ints,
            **floats,
        )

    def examples(self, key: str, eps: float) -> tuple[list[int], Tensor, Tensor]:
        """The kept examples of ``(key, eps)``: their indices, clean and adversarial inputs."""
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
