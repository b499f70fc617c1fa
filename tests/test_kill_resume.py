"""kill -9 in the middle of ``brittle evaluate``, then the same command again: it finishes
without repeating finished samples, with results identical to an uninterrupted run."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brittle.cli import main

CLI = [sys.executable, "-c", "import sys; from brittle.cli import main; sys.exit(main())"]
ROWS = (
    "SELECT eps, sample_id, y, target, pred_clean, pred_adv, success, gradients, queries "
    "FROM samples ORDER BY eps, sample_id"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "digits.pt"
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--out", str(path)]) == 0
    return path


def _stored(store: Path) -> list[tuple[object, ...]]:
    if not store.exists():
        return []
    try:
        with sqlite3.connect(store, timeout=30) as db:
            return db.execute(ROWS).fetchall()
    except sqlite3.OperationalError:  # the table is not there yet
        return []


def test_sigkill_then_rerun_equals_an_uninterrupted_run(model: Path, tmp_path: Path) -> None:
    """PGD with random starts (the per-sample draws must not depend on what was done before),
    batches of 4, killed with SIGKILL once some batches are stored; the rerun uses batches of
    7 and only attacks what is missing."""
    args = [
        "evaluate",
        "--model",
        str(model),
        "--attack",
        "pgd",
        "--steps",
        "200",
        "--eps",
        "0.02,0.05",
        "--n",
        "60",
    ]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    process = subprocess.Popen(
        [*CLI, *args, "--out", str(killed), "--batch-size", "4"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while len(_stored(killed / "results.sqlite")) < 8:
            assert process.poll() is None, "the evaluation ended before it could be killed"
            assert time.monotonic() < deadline, "no batch was stored in time"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    before = _stored(killed / "results.sqlite")
    assert 8 <= len(before) < 120, "killed mid-way"
    resumed = subprocess.run(
        [*CLI, *args, "--out", str(killed), "--batch-size", "7"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(before)} of 120" in resumed.stdout  # it says what it found
    uninterrupted = subprocess.run(
        [*CLI, *args, "--out", str(whole), "--batch-size", "16"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    after = _stored(killed / "results.sqlite")
    assert after == _stored(whole / "results.sqlite")
    assert set(before) <= set(after)  # nothing finished before the kill was redone differently
