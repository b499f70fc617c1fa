"""One epoch of PGD-7 adversarial training at 1 and 2 processes (``torchrun``), 1 thread each.

Runs ``brittle train --arch lenet --defense pgd --steps 7 --eps 0.3`` (Madry's objective,
Adam, global batch 128, seed 0) for one epoch on the MNIST training set (``--n-train`` for
a subset), once in one process and once under ``torchrun --nproc-per-node 2`` with the same
global batch, each process with ``OMP_NUM_THREADS=1``. Reports, per run: the wall time of
the command, the seconds of the training loop (the checkpoint's ``training.seconds``, rank
0's), the samples trained (under 2 processes the last, partial global batch of the epoch is
left out), samples per second, the speed-up over one process and the test accuracy; and how
far apart the two checkpoints' weights are (the same steps, up to the order of float sums).
Results go to ``results/train_ddp.json`` and ``.md`` (``--results`` elsewhere, e.g. for a
smoke test on ``--n-train 512``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import common
from brittle.files import write_text_atomic
from brittle.zoo import build_model, load_checkpoint

ARCH, STEPS, EPS, BATCH = "lenet", 7, 0.3, 128


def command(processes: int, n_train: int | None, out: Path) -> list[str]:
    """The command line of one run."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher = (
        [sys.executable, "-m", "brittle"]
        if processes == 1
        else [*torchrun, "--nproc-per-node", str(processes), "-m", "brittle"]
    )
    options = ["--arch", ARCH, "--dataset", "mnist", "--data-dir", str(common.mnist_dir())]
    options += ["--epochs", "1", "--batch-size", str(BATCH), "--seed", "0"]
    options += ["--defense", "pgd", "--steps", str(STEPS), "--eps", str(EPS)]
    if n_train is not None:
        options += ["--n-train", str(n_train)]
    return [*launcher, "train", *options, "--out", str(out), "--quiet"]


def run(processes: int, n_train: int | None, folder: Path) -> dict[str, Any]:
    """Train in ``processes`` processes; what it took and what it made."""
    out = folder / f"lenet-pgd7-{processes}.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        command(processes, n_train, out), env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{processes} process(es) failed:\n{done.stderr[-3000:]}")
    _, meta = load_checkpoint(out)
    n = int(meta["n_train"])
    trained = n if processes == 1 else n - n % BATCH
    seconds = float(meta["training"]["seconds"])
    print(f"{processes} process(es): {seconds:.1f} s training, {wall:.1f} s wall", flush=True)
    return {
        "processes": processes,
        "wall_seconds": wall,
        "train_seconds": seconds,
        "samples": n,
        "samples_trained": trained,
        "steps": -(-trained // BATCH),
        "samples_per_second": trained / seconds,
        "accuracy": meta["accuracy"],
        "checkpoint": out,
    }


def weight_gap(first: Path, second: Path) -> dict[str, float]:
    """The largest absolute difference between the two checkpoints' weights, and the
    largest weight."""
    a, b = (load_checkpoint(p)[0].state_dict() for p in (first, second))
    gap = max(float((a[k] - b[k]).abs().max()) for k in a)
    return {
        "max_abs_difference": gap,
        "max_abs_weight": max(float(v.abs().max()) for v in a.values()),
    }


def gradient_bytes() -> int:
    """The bytes of LeNet's gradient, what the processes average at every step."""
    model = build_model(ARCH, common.INPUT_SHAPE, common.NUM_CLASSES, seed=0)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def markdown(data: dict[str, Any]) -> str:
    one = data["runs"][0]
    lines = [
        "# Adversarial training on several processes",
        "",
        f"`benchmarks/bench_train_ddp.py`, {data['when']}: one epoch of PGD-{STEPS} adversarial "
        f"training (Madry's objective, eps {EPS}, Adam, global batch {BATCH}) of the zoo LeNet "
        f"on {one['samples']:,} MNIST training images, `brittle train` in one process and "
        "under `torchrun --nproc-per-node 2` (DistributedDataParallel, gloo), "
        "`OMP_NUM_THREADS=1` for every process.",
        "",
        f"Machine: {data['machine']['cpu']}, {data['machine']['logical_cpus']} logical CPUs, "
        f"torch {data['machine']['torch']}.",
        "",
        "| processes | samples trained | steps | training s | wall s | samples / s | "
        "speed-up | test accuracy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in data["runs"]:
        speedup = row["samples_per_second"] / one["samples_per_second"]
        lines.append(
            f"| {row['processes']} | {row['samples_trained']:,} | {row['steps']} | "
            f"{row['train_seconds']:.1f} | {row['wall_seconds']:.1f} | "
            f"{row['samples_per_second']:.0f} | {speedup:.2f}x | {row['accuracy']:.2%} |"
        )
    gap = data["weights"]
    lines += [
        "",
        f"Largest difference between the two checkpoints' weights: "
        f"{gap['max_abs_difference']:.3g} (largest weight {gap['max_abs_weight']:.3g}); the two "
        "runs take the same global batches (2 processes leave out the epoch's last, partial "
        "one) with the same PGD starts, so they differ by the order of float sums, amplified "
        "over the epoch.",
        "",
        f"The cost model of a step: each process runs {STEPS + 1} forward and backward passes "
        f"on its {BATCH // 2} rows (the PGD ascent and the training pass; no communication), "
        f"then the gradient ({data['gradient_bytes'] / 1024:.0f} KiB for LeNet) is averaged "
        "across processes by one all-reduce that DistributedDataParallel overlaps with the "
        "backward pass; the losses are all-reduced once an epoch. The examples are crafted "
        "on each process's rows alone, so the only per-step synchronisation is that one "
        "all-reduce: on CPU cores the speed-up is close to the number of cores given, less "
        "the all-reduce and the share of work that does not split (loading the data and the "
        "test accuracy, in the wall time). With one GPU per rank the all-reduce goes over "
        "NCCL (NVLink or PCIe) and stays small next to the PGD passes for any model worth a "
        "GPU, so the ratio approaches the number of GPUs when each GPU's share of the batch "
        "still fills it; for a model as small as LeNet at 64 rows a GPU, a step is bound by "
        "kernel launches rather than arithmetic, and halving the rows does not halve its "
        "time (raise the global batch with the number of GPUs there).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=None, help="Samples (default: all).")
    parser.add_argument(
        "--results",
        type=Path,
        default=common.REPO / "benchmarks" / "results",
        help="Folder of train_ddp.json and .md (default: benchmarks/results).",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = [run(processes, args.n_train, folder) for processes in (1, 2)]
        weights = weight_gap(runs[0]["checkpoint"], runs[1]["checkpoint"])
    data = {
        "machine": common.machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "torch_threads_per_process": 1,
        "gradient_bytes": gradient_bytes(),
        "runs": [{k: v for k, v in r.items() if k != "checkpoint"} for r in runs],
        "weights": weights,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "train_ddp.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(args.results / "train_ddp.md", markdown(data))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
