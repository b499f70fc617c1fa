"""``brittle evaluate`` on the MNIST test set in one process and in two (torchrun, gloo).

    .venv/bin/python benchmarks/bench_evaluate_ddp.py [--n 10000] [--processes 2]

The run of ``bench_evaluate.py`` (the zoo LeNet of ``common.trained_lenet``, FGSM and PGD-40 at
eps 0.05, 0.1, 0.2 and 0.3, batch 256), each process with one torch thread: first one process,
then ``torchrun --standalone --nproc-per-node P -m brittle evaluate``. The two stores are
compared row by row (every column of every per-sample row and kept image) and the reports'
figures are compared.

What to expect (a model of the cost, written into the result): a job's wall time is the
slowest rank's chunks plus what every rank pays once (start-up: importing torch, loading the
model and the data; the identity check) plus the leader's writes. Chunks are claimed from a
shared counter, so the ranks end within about one chunk of each other; the leader writes
every rank's rows (one SQLite transaction a piece, milliseconds) between its own chunks.
With one GPU per rank the attack time divides by the number of ranks as long as a chunk
keeps a GPU busy; on this machine two processes share two cores, so the ratio is bounded by
what one thread leaves of the second core.

Writes ``benchmarks/results/evaluate_ddp.json`` and ``.md``. Needs an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from brittle.files import write_text_atomic

EPS = "0.05,0.1,0.2,0.3"
ATTACKS = ["--attack", "fgsm", "--attack", "pgd:steps=40"]


def _run(launcher: list[str], model: Path, out: Path, n: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [
        *launcher, "evaluate", "--model", str(model), "--dataset", "mnist", "--data-dir",
        str(common.mnist_dir()), "--num-samples", str(n), "--eps", EPS, *ATTACKS,
        "--out", str(out), "--quiet",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the evaluation failed:\n{done.stderr[-3000:]}")
    return seconds


def _rows(store: Path) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(store)) as db:
        return {
            table: db.execute(
                f"SELECT * FROM {table} ORDER BY run, attack, eps, sample_id"
            ).fetchall()
            for table in ("samples", "examples")
        }


def _figures(out: Path) -> list[dict[str, Any]]:
    report = json.loads((out / "report.json").read_text())
    return [{k: v for k, v in row.items() if k != "seconds"} for row in report["results"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    classifier, _ = common.trained_lenet()
    model = Path(classifier.checkpoint)
    with tempfile.TemporaryDirectory() as work:
        one, many = Path(work) / "one", Path(work) / "many"
        print(f"1 process, {args.n} images ...", flush=True)
        t_one = _run([sys.executable, "-m", "brittle"], model, one, args.n)
        print(f"  {t_one:.1f} s\n{args.processes} processes ...", flush=True)
        launcher = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(args.processes), "-m", "brittle",
        ]  # fmt: skip
        t_many = _run(launcher, model, many, args.n)
        print(f"  {t_many:.1f} s", flush=True)
        rows_one, rows_many = _rows(one / "results.sqlite"), _rows(many / "results.sqlite")
        record = {
            "date": datetime.date.today().isoformat(),
            "machine": common.machine(),
            "n": args.n,
            "processes": args.processes,
            "threads_per_process": 1,
            "seconds": {"one": t_one, "many": t_many},
            "speedup": t_one / t_many,
            "rows": len(rows_one["samples"]),
            "identical_rows": rows_one == rows_many,
            "identical_figures": _figures(one) == _figures(many),
            "results": _figures(one),
        }
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "evaluate_ddp.json", json.dumps(record, indent=2) + "\n")
    write_text_atomic(args.results / "evaluate_ddp.md", markdown(record))
    print(markdown(record))


def markdown(d: dict[str, Any]) -> str:
    m = d["machine"]
    return "\n".join(
        [
            f"# brittle evaluate in 1 and {d['processes']} processes ({d['date']})",
            "",
            f"Zoo LeNet, {d['n']} MNIST test images, FGSM and PGD-40 at eps {EPS}, batch 256, "
            f"one torch thread per process, gloo. Machine: {m['cpu']} ({m['logical_cpus']} "
            "logical CPUs).",
            "",
            "| processes | seconds |",
            "|---:|---:|",
            f"| 1 | {d['seconds']['one']:.1f} |",
            f"| {d['processes']} | {d['seconds']['many']:.1f} |",
            "",
            f"Speed-up {d['speedup']:.2f}x. {d['rows']} per-sample rows; identical rows and kept "
            f"images: {'yes' if d['identical_rows'] else 'NO'}; identical report figures: "
            f"{'yes' if d['identical_figures'] else 'NO'}.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
