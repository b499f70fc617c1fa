"""``brittle evaluate`` on the whole MNIST test set, and the same run killed and resumed.

    .venv/bin/python benchmarks/bench_evaluate.py [--n 10000] [--kill-at 0.4] [--batch 256]

The zoo LeNet trained on full MNIST (``common.trained_lenet``, cached in ``runs/cache``), the
command line exactly as a user runs it (a subprocess, 2 torch threads): FGSM and PGD-40 at eps
0.05, 0.1, 0.2 and 0.3 (Linf) on the first ``--n`` test images drawn with seed 0 (all 10,000 by
default). The issue's target: the whole run under 15 minutes on 2 CPU cores.

Then the same evaluation into another folder, killed with SIGKILL once ``--kill-at`` of its
per-sample rows are stored, and finished with ``brittle evaluate --resume DIR`` at another
batch size. Every per-sample row of the resumed store is compared with the uninterrupted
run's: the discrete fields (predictions, success, counts, targets) must be identical, the
norms and confidence are reported by their largest difference (float rounding of batches of
other sizes).

Writes ``benchmarks/results/evaluate.json`` and ``benchmarks/results/evaluate.md``. Needs an
idle machine for the timing to mean anything; ``--n 200`` checks that the script works.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
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
TARGET_SECONDS = 15 * 60
DISCRETE = (
    "attack", "eps", "target", "sample_id", "y", "pred_clean", "pred_adv", "success",
    "gradients", "queries", "verification_queries", "nonfinite", "exhausted",
)  # fmt: skip
FLOATS = ("confidence_adv", "l0", "l1", "l2", "linf")
ROWS = f"SELECT {', '.join(DISCRETE + FLOATS)} FROM samples ORDER BY attack, eps, sample_id"
RESULT_KEYS = ("eps", "robust_accuracy", "robust_ci_low", "robust_ci_high", "broken_by")
CLI = [sys.executable, "-c", "import sys; from brittle.cli import main; sys.exit(main())"]


def _rows(store: Path) -> list[tuple[Any, ...]]:
    if not store.exists():
        return []
    try:
        with closing(sqlite3.connect(store, timeout=30)) as db:
            return db.execute(ROWS).fetchall()
    except sqlite3.OperationalError:
        return []


def _count(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with closing(sqlite3.connect(store, timeout=30)) as db:
            return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _argv(model: Path, out: Path, n: int, batch: int) -> list[str]:
    return [
        *CLI, "evaluate", "--model", str(model), "--dataset", "mnist", "--data-dir",
        str(common.mnist_dir()), *ATTACKS, "--eps", EPS, "--n", str(n), "--out", str(out),
        "--batch-size", str(batch),
    ]  # fmt: skip


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="Test images (default: all).")
    parser.add_argument("--batch", type=int, default=256, help="Batch of the uninterrupted run.")
    parser.add_argument(
        "--resume-batch", type=int, default=100, help="Batch of the resumed run (default 100)."
    )
    parser.add_argument(
        "--kill-at", type=float, default=0.4, help="Share of rows stored before the SIGKILL."
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="Folder of the runs (temp).")
    args = parser.parse_args()

    classifier, _ = common.trained_lenet()
    model = Path(classifier.checkpoint)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    whole, killed = work / "whole", work / "killed"
    total = 2 * 4 * args.n
    env = _env(args.threads)

    print(f"uninterrupted: {args.n} images, FGSM + PGD-40 at {EPS} ({total} rows) ...", flush=True)
    start = time.perf_counter()
    done = subprocess.run(_argv(model, whole, args.n, args.batch), env=env, text=True,
                          capture_output=True)  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the evaluation failed: {done.stderr}")
    print(done.stdout, flush=True)

    print(f"killed at {args.kill_at:.0%} of the rows, then --resume ...", flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(
        _argv(model, killed, args.n, args.batch),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while _count(killed / "results.sqlite") < args.kill_at * total:
        if process.poll() is not None:
            raise SystemExit("the run to kill ended before it was killed; lower --kill-at")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before_kill = time.perf_counter() - start
    stored = _count(killed / "results.sqlite")
    start = time.perf_counter()
    resumed = subprocess.run(
        [*CLI, "evaluate", "--resume", str(killed), "--batch-size", str(args.resume_batch)],
        env=env,
        text=True,
        capture_output=True,
    )
    resume_wall = time.perf_counter() - start
    if resumed.returncode != 0:
        raise SystemExit(f"the resume failed: {resumed.stderr}")

    got, want = _rows(killed / "results.sqlite"), _rows(whole / "results.sqlite")
    k = len(DISCRETE)
    differing = sum(a[:k] != b[:k] for a, b in zip(got, want, strict=True))
    float_diff = max(
        (abs(x - y) for a, b in zip(got, want, strict=True) for x, y in zip(a[k:], b[k:],
                                                                            strict=True)),
        default=0.0,
    )  # fmt: skip
    report = json.loads((whole / "report.json").read_text())
    data = {
        "date": datetime.date.today().isoformat(),
        "machine": common.machine(),
        "threads": args.threads,
        "n": args.n,
        "attacks": ["fgsm", "pgd:steps=40"],
        "eps": [float(e) for e in EPS.split(",")],
        "batch": args.batch,
        "resume_batch": args.resume_batch,
        "rows": total,
        "wall_seconds": wall,
        "target_seconds": TARGET_SECONDS,
        "meets_target": wall < TARGET_SECONDS,
        "killed_after_seconds": before_kill,
        "rows_before_kill": stored,
        "resume_wall_seconds": resume_wall,
        "rows_compared": len(got),
        "rows_expected": len(want),
        "discrete_rows_differing": differing,
        "largest_float_difference": float_diff,
        "identical": len(got) == len(want) == total and differing == 0,
        "results": [{k: row[k] for k in RESULT_KEYS} for row in report["results"]],
        "per_attack": {
            label: [row["robust_accuracy"] for row in rows]
            for label, rows in report["per_attack"].items()
        },
        "work": str(work),
    }
    out = common.REPO / "benchmarks" / "results"
    write_text_atomic(out / "evaluate.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(out / "evaluate.md", markdown(data))
    print(markdown(data))


def markdown(d: dict[str, Any]) -> str:
    lines = [
        f"# brittle evaluate on MNIST test ({d['date']})",
        "",
        f"Zoo LeNet (benchmarks/common.py), {d['n']} test images, FGSM and PGD-40 at eps "
        f"{', '.join(f'{e:g}' for e in d['eps'])}, {d['threads']} torch threads, batch "
        f"{d['batch']}: {d['rows']} per-sample rows. Machine: {d['machine']['cpu']} "
        f"({d['machine']['logical_cpus']} logical CPUs), torch {d['machine']['torch']}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| wall time, uninterrupted | {d['wall_seconds']:.1f} s |",
        f"| target | < {d['target_seconds']} s: {'met' if d['meets_target'] else 'NOT met'} |",
        f"| killed (SIGKILL) after | {d['killed_after_seconds']:.1f} s, "
        f"{d['rows_before_kill']} rows stored |",
        f"| `--resume` (batch {d['resume_batch']}) | {d['resume_wall_seconds']:.1f} s |",
        f"| rows compared | {d['rows_compared']} of {d['rows_expected']} |",
        f"| rows whose discrete fields differ | {d['discrete_rows_differing']} |",
        f"| largest difference of a norm or confidence | {d['largest_float_difference']:.3g} |",
        f"| identical | {'yes' if d['identical'] else 'NO'} |",
        "",
        "| eps | robust (worst case) | 95% CI | broken first by | "
        + " | ".join(d["per_attack"])
        + " |",
        "|---:|---:|---:|---|" + "---:|" * len(d["per_attack"]),
    ]
    for i, row in enumerate(d["results"]):
        first = ", ".join(f"{k} {v}" for k, v in row["broken_by"].items())
        alone = " | ".join(f"{100 * v[i]:.2f}%" for v in d["per_attack"].values())
        lines.append(
            f"| {row['eps']:g} | {100 * row['robust_accuracy']:.2f}% | "
            f"[{100 * row['robust_ci_low']:.2f}, {100 * row['robust_ci_high']:.2f}] | {first} | "
            f"{alone} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
