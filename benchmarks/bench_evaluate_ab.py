"""``brittle evaluate`` on the whole MNIST test set, by two versions of brittle in turn.

    .venv/bin/python benchmarks/bench_evaluate_ab.py --before REV [--rounds 2] [--n 10000]

The run of ``bench_evaluate.py`` without its kill-and-resume half (the zoo LeNet of
``common.trained_lenet``, FGSM and PGD-40 at eps 0.05, 0.1, 0.2 and 0.3, 2 torch threads, the
command line in a subprocess), by the checkout at ``REV`` ("before", a git worktree under
``runs/``) and by this checkout ("after"), alternating which goes first in each round so that
a drift of the machine's speed falls on both. The figures of the two must be identical;
the times are compared by their means and ranges.

Writes ``benchmarks/results/evaluate_ab.json`` and ``.md``. Needs an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from brittle.files import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
EPS = "0.05,0.1,0.2,0.3"
ATTACKS = ["--attack", "fgsm", "--attack", "pgd:steps=40"]
CLI = [sys.executable, "-c", "import sys; from brittle.cli import main; sys.exit(main())"]


def _worktree(rev: str) -> Path:
    """A checkout of ``rev`` under ``runs/`` (made once)."""
    path = ROOT / "runs" / f"before-{rev[:12]}"
    if not path.is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                       check=True, capture_output=True)  # fmt: skip
    return path


def _run(src: Path, model: Path, out: Path, n: int, threads: int) -> tuple[float, Any]:
    """One evaluation by the brittle in ``src``: seconds and the report's results."""
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    argv = [
        *CLI, "evaluate", "--model", str(model), "--dataset", "mnist", "--data-dir",
        str(common.mnist_dir()), "--n", str(n), "--eps", EPS, *ATTACKS, "--out", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, text=True, capture_output=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{src}: exit {done.returncode}\n{done.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    keep = ("eps", "clean_accuracy", "success_rate", "robust_accuracy")
    return seconds, [{k: row[k] for k in keep} for row in report["results"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="The git revision to compare with.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    classifier, _ = common.trained_lenet()
    model_path = Path(classifier.checkpoint)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.before], check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    sources = {"before": _worktree(rev) / "src", "after": ROOT / "src"}
    times: dict[str, list[float]] = {"before": [], "after": []}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        for r in range(args.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for which in order:
                out = Path(work) / f"{which}-{r}"
                seconds, figures = _run(sources[which], model_path, out, args.n, args.threads)
                times[which].append(seconds)
                results.setdefault(which, figures)
                print(f"round {r + 1} {which}: {seconds:.1f} s", flush=True)
    record = {
        "date": datetime.date.today().isoformat(),
        "machine": common.machine(),
        "before": rev,
        "after": head,
        "n": args.n,
        "threads": args.threads,
        "seconds": times,
        "mean": {k: statistics.fmean(v) for k, v in times.items()},
        "identical_figures": results["before"] == results["after"],
        "results": results["after"],
    }
    out = ROOT / "benchmarks" / "results"
    write_text_atomic(out / "evaluate_ab.json", json.dumps(record, indent=2) + "\n")
    write_text_atomic(out / "evaluate_ab.md", markdown(record))
    print(markdown(record))


def markdown(d: dict[str, Any]) -> str:
    lines = [
        f"# brittle evaluate, before and after ({d['date']})",
        "",
        f"Zoo LeNet, {d['n']} MNIST test images, FGSM and PGD-40 at eps {EPS}, "
        f"{d['threads']} torch threads, runs alternated. Machine: {d['machine']['cpu']} "
        f"({d['machine']['logical_cpus']} logical CPUs), torch {d['machine']['torch']}.",
        f"Before: `{d['before'][:12]}`; after: `{d['after'][:12]}`.",
        "",
        "| version | runs (s) | mean (s) |",
        "|---|---|---:|",
    ]
    for which in ("before", "after"):
        runs = ", ".join(f"{s:.1f}" for s in d["seconds"][which])
        lines.append(f"| {which} | {runs} | {d['mean'][which]:.1f} |")
    ratio = d["mean"]["after"] / d["mean"]["before"]
    lines += [
        "",
        f"after / before: {ratio:.3f}. Figures identical: "
        f"{'yes' if d['identical_figures'] else 'no'} (the draws of PGD's random start changed "
        "generator between the two versions; see the note of the run)."
        if not d["identical_figures"]
        else f"after / before: {ratio:.3f}. Figures identical: yes.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
