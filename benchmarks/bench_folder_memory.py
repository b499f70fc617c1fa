"""Peak memory of ``brittle evaluate`` on 20,000 colour images in an image folder.

    .venv/bin/python benchmarks/bench_folder_memory.py [--n 20000] [--side 32]

Writes ``--n`` random 3 x side x side PNGs into ten class folders, saves a small CNN as
TorchScript, and runs ``brittle evaluate --dataset folder --n N`` (FGSM at 8/255, the command
line in a subprocess, 2 torch threads) twice: on all ``--n`` images and on 100 of them. Each
run's peak resident memory is the kernel's (``ru_maxrss`` of the finished child); what the
images cost is the difference, since the model, torch and the interpreter are in both. The
issue's target: under 1 GB beyond the model for 20,000 images. For scale, the same images
decoded whole as float32 would take ``n * 3 * side * side * 4`` bytes (246 MB at 20,000 x 32 x 32).

Writes ``benchmarks/results/folder_memory.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from brittle.files import write_text_atomic

CLASSES = 10
CLI = [sys.executable, "-c", "import sys; from brittle.cli import main; sys.exit(main())"]
TARGET_BYTES = 1 << 30


def write_folder(root: Path, n: int, side: int) -> None:
    """``n`` random RGB PNGs, spread over :data:`CLASSES` class folders."""
    rng = np.random.default_rng(0)
    for k in range(CLASSES):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"class{i % CLASSES}" / f"{i:05d}.png")


def save_model(path: Path, side: int) -> None:
    """A small CNN for 3 x side x side inputs, as TorchScript."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Linear(32 * 16, CLASSES),
    ).eval()  # fmt: skip
    torch.jit.save(torch.jit.script(net), path)


def peak_rss(argv: list[str], threads: int) -> tuple[int, float]:
    """The peak resident bytes and the seconds of the command ``argv`` (a fresh child)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the evaluation failed: {err.read()[-2000:]}")
    return usage.ru_maxrss * 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        root, model = Path(work) / "images", Path(work) / "cnn.pt"
        print(f"writing {args.n} PNGs of 3x{args.side}x{args.side} ...", flush=True)
        write_folder(root, args.n, args.side)
        save_model(model, args.side)
        runs: dict[str, Any] = {}
        for label, n in (("small", 100), ("full", args.n)):
            argv = [
                *CLI, "evaluate", "--model", str(model), "--dataset", "folder", "--data-dir",
                str(root), "--n", str(n), "--eps", "8/255", "--attack", "fgsm",
                "--out", str(Path(work) / f"out-{label}"), "--quiet",
            ]  # fmt: skip
            rss, seconds = peak_rss(argv, args.threads)
            report = json.loads((Path(work) / f"out-{label}" / "report.json").read_text())
            runs[label] = {"n": n, "peak_rss": rss, "seconds": seconds,
                           "evaluated": report["results"][0]["n"]}  # fmt: skip
            print(f"{label}: n={n} peak RSS {rss / 2**20:.0f} MiB in {seconds:.1f} s", flush=True)
    beyond = runs["full"]["peak_rss"] - runs["small"]["peak_rss"]
    record = {
        "date": datetime.date.today().isoformat(),
        "machine": common.machine(),
        "side": args.side,
        "threads": args.threads,
        "runs": runs,
        "beyond_small_run": beyond,
        "float32_whole": args.n * 3 * args.side * args.side * 4,
        "target": TARGET_BYTES,
        "met": beyond < TARGET_BYTES,
        "self_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    out = Path(__file__).resolve().parent / "results"
    write_text_atomic(out / "folder_memory.json", json.dumps(record, indent=2) + "\n")
    write_text_atomic(out / "folder_memory.md", markdown(record))
    print(markdown(record))


def markdown(d: dict[str, Any]) -> str:
    mib = 2**20
    small, full = d["runs"]["small"], d["runs"]["full"]
    return "\n".join(
        [
            f"# brittle evaluate on an image folder: peak memory ({d['date']})",
            "",
            f"{full['n']:,} random 3x{d['side']}x{d['side']} PNGs in 10 class folders, a small "
            f"CNN as TorchScript, FGSM at 8/255, {d['threads']} torch threads. Machine: "
            f"{d['machine']['cpu']} ({d['machine']['logical_cpus']} logical CPUs).",
            "",
            "| run | samples evaluated | peak RSS | seconds |",
            "|---|---:|---:|---:|",
            f"| --n {small['n']} | {small['evaluated']:,} | {small['peak_rss'] / mib:,.0f} MiB "
            f"| {small['seconds']:.1f} |",
            f"| --n {full['n']} | {full['evaluated']:,} | {full['peak_rss'] / mib:,.0f} MiB "
            f"| {full['seconds']:.1f} |",
            "",
            f"Beyond the 100-sample run (model, torch, interpreter): "
            f"{d['beyond_small_run'] / mib:,.0f} MiB, against a target of "
            f"{d['target'] / mib:,.0f} MiB: {'met' if d['met'] else 'not met'}. The images "
            f"decoded whole as float32 would take {d['float32_whole'] / mib:,.0f} MiB.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
