"""``torchrun -m brittle evaluate``: the rows, the summary and the report of a job of 2 or 3
processes (gloo on the CPU) are those of one process, bit for bit; a job stopped by SIGKILL
resumes at another world size; ranks that disagree, or more ranks than samples, are refused.
"""

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

from brittle.cli import main

pytestmark = pytest.mark.slow

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
BRITTLE = [sys.executable, "-m", "brittle"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMEOUT = 240


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "softmax.pt"
    argv = [
        "train",
        "--arch",
        "softmax",
        "--dataset",
        "digits",
        "--epochs",
        "2",
        "--out",
        str(path),
    ]
    assert main([*argv, "--quiet"]) == 0
    return path


def _evaluate(
    out: Path, model: Path | str, *options: str, processes: int = 1
) -> subprocess.CompletedProcess[str]:
    command = ["evaluate", "--model", str(model), "--out", str(out), "--quiet", *options]
    launcher = (
        [*TORCHRUN, "--nproc-per-node", str(processes), "-m", "brittle"]
        if processes > 1
        else BRITTLE
    )
    return subprocess.run(
        [*launcher, *command], env=ENV, capture_output=True, text=True, timeout=TIMEOUT
    )


def _rows(store: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every per-sample row and kept image of a store, in a fixed order."""
    with closing(sqlite3.connect(store)) as db:
        return {
            "samples": db.execute(
                "SELECT * FROM samples ORDER BY run, attack, eps, sample_id"
            ).fetchall(),
            "examples": db.execute(
                "SELECT * FROM examples ORDER BY run, attack, eps, sample_id"
            ).fetchall(),
        }


def _figures(out: Path) -> list[dict[str, Any]]:
    report = json.loads((out / "report.json").read_text())
    drop = {"seconds"}
    return [{k: v for k, v in row.items() if k not in drop} for row in report["results"]]


ATTACKS = ["--attack", "fgsm", "--attack", "pgd:steps=5", "--eps", "0.05,0.2"]
SAMPLES = ["--num-samples", "60", "--batch-size", "8"]


@pytest.fixture(scope="module")
def one_process(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one")
    done = _evaluate(out, model, *ATTACKS, *SAMPLES)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("processes", [2, 3])
def test_the_rows_and_the_report_do_not_depend_on_the_number_of_processes(
    model: Path, one_process: Path, tmp_path: Path, processes: int
) -> None:
    done = _evaluate(tmp_path, model, *ATTACKS, *SAMPLES, processes=processes)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("report:") == 1  # rank 0 alone prints and writes the report
    assert _rows(tmp_path / "results.sqlite") == _rows(one_process / "results.sqlite")
    assert _figures(tmp_path) == _figures(one_process)


def test_a_suite_shared_by_two_processes_attacks_the_same_survivors(
    model: Path, tmp_path: Path
) -> None:
    suite = ["--suite", "standard", "--eps", "0.1", "--num-samples", "24", "--batch-size", "6"]
    one = _evaluate(tmp_path / "one", model, *suite)
    two = _evaluate(tmp_path / "two", model, *suite, processes=2)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert _rows(tmp_path / "two" / "results.sqlite") == _rows(tmp_path / "one" / "results.sqlite")
    assert _figures(tmp_path / "two") == _figures(tmp_path / "one")


SLOW_NET = '''
import time
import torch
from torch import nn


class Slow(nn.Module):
    """A linear model of the 8x8 digits that takes its time, so that a kill falls mid-run."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        time.sleep(0.003)
        return self.linear(x.flatten(1))
'''


def test_a_job_killed_mid_run_resumes_at_another_number_of_processes(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_NET)
    model = f"{tmp_path / 'slow.py'}:Slow"
    options = [*ATTACKS, "--dataset", "digits", "--num-samples", "60", "--batch-size", "4"]
    reference = _evaluate(tmp_path / "one", model, *options)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    command = ["evaluate", "--model", model, "--out", str(out), "--quiet", *options]
    job = subprocess.Popen(
        [*TORCHRUN, "--nproc-per-node", "2", "-m", "brittle", *command],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = out / "results.sqlite"
    deadline = time.monotonic() + TIMEOUT
    while _count(store) < 40:
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "the job stored nothing"
        time.sleep(0.01)
    workers = _children(job.pid)
    assert len(workers) == 2, workers
    os.kill(workers[-1], signal.SIGKILL)  # one rank dies: torchrun stops the others
    _, err = job.communicate(timeout=TIMEOUT)
    assert job.returncode != 0 and "brittle" in err
    assert 0 < _count(store) < 4 * 60
    done = _evaluate(out, model, *options, processes=3)
    assert done.returncode == 0, done.stderr
    assert _rows(store)["samples"] == _rows(tmp_path / "one" / "results.sqlite")["samples"]
    assert _figures(out) == _figures(tmp_path / "one")


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux's /proc), in the order of their ids."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return sorted(found)


def _count(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with closing(sqlite3.connect(store, timeout=5)) as db:
            return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_more_processes_than_samples_are_refused(model: Path, tmp_path: Path) -> None:
    done = _evaluate(tmp_path, model, "--num-samples", "2", "--eps", "0.1", processes=3)
    assert done.returncode != 0
    assert "3 processes for 2 samples" in done.stderr
    assert not (tmp_path / "results.sqlite").exists()


def test_ranks_that_see_other_data_are_refused(model: Path, tmp_path: Path) -> None:
    factory = tmp_path / "perrank.py"
    factory.write_text(
        "import os\nfrom brittle.data import load_dataset\nfrom torch.utils.data import TensorDataset\n\n"
        "def load(split):\n"
        "    d = load_dataset('digits', split)\n"
        "    x = d.x if os.environ.get('RANK', '0') == '0' else d.x.flip(0)\n"
        "    return TensorDataset(x, d.y)\n"
    )
    options = ["--dataset", f"python:{factory}:load", "--num-samples", "10", "--eps", "0.1"]
    done = _evaluate(tmp_path / "out", model, *options, processes=2)
    assert done.returncode != 0
    assert "disagree on the run (model, data, threat and seed)" in done.stderr
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_a_post_larger_than_the_boards_values_travels_in_parts() -> None:
    from datetime import timedelta

    import torch.distributed as dist

    from brittle.distributed import World
    from brittle.eval.sharing import PART, Share

    server = dist.TCPStore(
        "127.0.0.1", 0, None, True, timedelta(seconds=30), wait_for_workers=False
    )
    client = dist.TCPStore("127.0.0.1", server.port, None, False, timedelta(seconds=30))
    poster = Share(World(1, 2), client, [], [], "run", lambda ticket: [])
    reader = Share(World(0, 2), server, [], [], "run", lambda ticket: [])
    payload = bytes(range(256)) * (5 * PART // 256 + 7)  # more than the 8 MiB a value holds
    poster._post(payload)
    poster._post(b"")
    assert reader._take(0) == payload and reader._take(1) == b""
    assert not server.check(["post/0", "post/0/0"])  # taken off the board
