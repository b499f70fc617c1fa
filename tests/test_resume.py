"""kill -9 anywhere in a multi-attack evaluation, then --resume with another batch size: it
finishes without repeating a finished sample, and every per-sample row equals an
uninterrupted run's. Results do not depend on the batch size; two real processes on one
folder: the second is refused and the first loses nothing; --resume refuses contradictions."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import torch

from brittle.attacks.fgsm import FGSM
from brittle.attacks.iterative import PGD
from brittle.cli import main
from brittle.data import load_dataset
from brittle.eval import ResultStore, evaluate
from brittle.eval.runner import single_plan
from brittle.zoo import load_classifier

CLI = [sys.executable, "-c", "import sys; from brittle.cli import main; sys.exit(main())"]
DISCRETE = (
    "attack", "attack_name", "eps", "target", "sample_id", "y", "pred_clean", "pred_adv",
    "success", "gradients", "queries", "verification_queries", "nonfinite", "exhausted",
)  # fmt: skip
FLOATS = ("confidence_adv", "l0", "l1", "l2", "linf")
ROWS = f"SELECT {', '.join(DISCRETE + FLOATS)} FROM samples ORDER BY attack, eps, sample_id"
ARGS = ["--attack", "fgsm", "--attack", "pgd:steps=20:restarts=2", "--eps", "0.03,0.06"]
N = 60
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the CLI runs beside the test workers
TOTAL = 2 * 2 * N


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume") / "digits.pt"
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--out", str(path)]) == 0
    return path


def _stored(store: Path) -> list[tuple[Any, ...]]:
    if not store.exists():
        return []
    try:
        with closing(sqlite3.connect(store, timeout=30)) as db:
            return db.execute(ROWS).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def assert_same_rows(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    """Every row equal: the discrete fields exactly, the norms and confidence up to float32
    rounding (PyTorch's CPU kernels pick their algorithm by batch size: the same sample's
    logits differ in the last bits between a batch of 4 and one of 16)."""
    assert len(got) == len(want)
    k = len(DISCRETE)
    for a, b in zip(got, want, strict=True):
        assert a[:k] == b[:k]
        assert a[k:] == pytest.approx(b[k:], rel=1e-5, abs=1e-6)


def _start(model: Path, out: Path, batch: int, n: int = N) -> subprocess.Popen[bytes]:
    argv = ["evaluate", "--model", str(model), *ARGS, "--n", str(n), "--out", str(out)]
    return subprocess.Popen(
        [*CLI, *argv, "--batch-size", str(batch)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )


def _wait_for_rows(process: subprocess.Popen[bytes], store: Path, at_least: int) -> None:
    deadline = time.monotonic() + 120
    while len(_stored(store)) < at_least:
        assert process.poll() is None, "the evaluation ended before the test got to it"
        assert time.monotonic() < deadline, "no batch was stored in time"
        time.sleep(0.01)


def test_sigkill_then_resume_with_another_batch_size_equals_an_uninterrupted_run(
    model: Path, tmp_path: Path
) -> None:
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    process = _start(model, killed, 4)
    try:
        _wait_for_rows(process, killed / "results.sqlite", 12)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    before = _stored(killed / "results.sqlite")
    assert 12 <= len(before) < TOTAL, "killed mid-way"
    resumed = subprocess.run(
        [*CLI, "evaluate", "--resume", str(killed), "--batch-size", "7"],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(before)} of {TOTAL}" in resumed.stdout  # only the rest was attacked
    report = json.loads((killed / "report.json").read_text())
    assert report["timing"]["samples_attacked"] == TOTAL - len(before)
    assert report["timing"]["samples_reused"] == len(before)
    uninterrupted = subprocess.run(
        [*CLI, "evaluate", "--model", str(model), *ARGS, "--n", str(N), "--out", str(whole),
         "--batch-size", "16"],
        capture_output=True, text=True, timeout=600, env=ENV,
    )  # fmt: skip
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    after, want = _stored(killed / "results.sqlite"), _stored(whole / "results.sqlite")
    assert len(after) == TOTAL
    assert_same_rows(after, want)
    assert set(before) <= set(after)  # the rows stored before the kill were kept as they were
    full = json.loads((whole / "report.json").read_text())
    for a, b in zip(report["results"], full["results"], strict=True):
        assert a["robust_count"] == b["robust_count"] and a["broken_by"] == b["broken_by"]


def test_results_do_not_depend_on_the_batch_size(tmp_path: Path) -> None:
    """The same evaluation (random starts and restarts) at batch sizes 1, 7 and 60."""
    data = load_dataset("digits", "test").subset(60, 0)
    torch.manual_seed(0)
    from torch import nn

    from brittle import Classifier

    classifier = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(),
                                          nn.Linear(32, 10)))  # fmt: skip
    plans = [single_plan(FGSM, 0.1), single_plan(lambda e: PGD(e, steps=5, restarts=2), 0.1)]
    rows = []
    for batch in (1, 7, 60):
        path = tmp_path / f"b{batch}.sqlite"
        with ResultStore(path) as store:
            evaluate(
                classifier, plans, (data.x, data.y), [0.05, 0.1], batch_size=batch,
                store=store, run_key="r", ids=data.ids, progress=False,
            )  # fmt: skip
        rows.append(_stored(path))
    assert len(rows[0]) == 2 * 2 * 60
    assert_same_rows(rows[1], rows[0])
    assert_same_rows(rows[2], rows[0])


def test_two_processes_on_one_folder_the_second_is_refused_and_the_first_loses_nothing(
    model: Path, tmp_path: Path
) -> None:
    out, n = tmp_path / "eval", 240  # long enough for the second to start meanwhile
    first = _start(model, out, 4, n)
    try:
        _wait_for_rows(first, out / "results.sqlite", 4)
        second = subprocess.run(
            [*CLI, "evaluate", "--model", str(model), *ARGS, "--n", str(n), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            env=ENV,
        )
        assert first.poll() is None, "the first run ended before the second was tried"
    finally:
        first.wait(timeout=600)
    assert second.returncode == 3 and second.stderr.count("\n") == 1
    assert "in use by another evaluation" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.returncode == 0
    rows = _stored(out / "results.sqlite")
    assert len(rows) == 2 * 2 * n and len(set(rows)) == 2 * 2 * n


def test_resume_rereads_the_options_and_refuses_contradictions(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    base = ["evaluate", "--model", str(model), "--eps", "0.05", "--n", "20", "--out", str(out)]
    assert main([*base, "--attack", "fgsm"]) == 0
    first = json.loads((out / "report.json").read_text())
    assert main(["evaluate", "--resume", str(out), "--batch-size", "3"]) == 0
    assert "remaining 0" in capsys.readouterr().out
    for extra, flag in (
        (["--n", "21"], "--n 21"),
        (["--attack", "pgd"], "--attack pgd"),
        (["--eps", "0.1"], "--eps 0.1"),
        (["--seed", "1"], "--seed 1"),
        (["--attack", "fgsm", "--steps", "3"], "--params"),
    ):
        assert main(["evaluate", "--resume", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert flag in err and "contradicts the evaluation saved in" in err, err
    assert main(["evaluate", "--resume", str(out), "--n", "20", "--attack", "fgsm"]) == 0
    assert main(["evaluate", "--resume", str(tmp_path / "nothing")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    # adding an attack to the same run reuses the first attack's rows
    assert main([*base, "--attacks", "fgsm,pgd:steps=3"]) == 0
    both = json.loads((out / "report.json").read_text())
    assert both["timing"]["samples_reused"] == 20 and both["timing"]["samples_attacked"] == 20
    assert both["per_attack"]["fgsm"][0]["robust_count"] == first["results"][0]["robust_count"]
    # another model into the same folder is refused, the store untouched
    other = tmp_path / "other.pt"
    assert main(["train", "--dataset", "digits", "--arch", "softmax", "--epochs", "1",
                 "--out", str(other)]) == 0  # fmt: skip
    capsys.readouterr()
    before = _stored(out / "results.sqlite")
    assert main(["evaluate", "--model", str(other), "--eps", "0.05", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds the evaluation of another run" in err and "the model" in err
    assert _stored(out / "results.sqlite") == before


def test_the_classifier_of_the_fixture_is_batch_sensitive_only_in_the_last_bits(
    model: Path,
) -> None:
    """Why the float columns are compared up to rounding: the same inputs in batches of 4
    and of 16 give logits equal to ~1e-6, not always bit for bit."""
    classifier = load_classifier(model, torch.device("cpu"))
    x = load_dataset("digits", "test").x[:16]
    whole = classifier.predict_scores(x)
    parts = torch.cat([classifier.predict_scores(x[i : i + 4]) for i in range(0, 16, 4)])
    assert torch.allclose(whole, parts, rtol=1e-5, atol=1e-6)
