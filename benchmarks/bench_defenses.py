"""What a defence costs per epoch, against a plain epoch of the same model on the same data.

For each architecture (the zoo's maxout network and LeNet) and each objective (plain
cross-entropy, FGSM adversarial training (alpha 0.5), PGD-k adversarial training for each k
asked (Madry's objective, alpha 0), sign-noise training), this times ``train_model`` for one epoch on the first N MNIST training
images (batch 128, Adam, seed 0, 2 threads) and reports the seconds per epoch and the ratio to
the plain epoch, against the targets: FGSM at most 2.2x, PGD-k at most (k + 1.3)x. Each
setting is timed ``--repeat`` times, alternating their order, and the median is kept (this
machine's run-to-run noise is about 10-15%). Results go to ``results/defenses.md`` and
``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

import common
from brittle.data import load_dataset
from brittle.defenses import FGSMTraining, NoiseTraining, PGDTraining
from brittle.files import write_text_atomic
from brittle.zoo import build_model, train_model
from brittle.zoo.train import Objective, TrainingStep

FGSM_TARGET = 2.2
PGD_SLACK = 1.3


def objectives(steps: list[int]) -> dict[str, tuple[Objective | TrainingStep | None, float | None]]:
    """Each timed objective and its target ratio to the plain epoch (``None``: no target)."""
    chosen: dict[str, tuple[Objective | TrainingStep | None, float | None]] = {
        "plain": (None, None),
        "fgsm": (FGSMTraining(0.25), FGSM_TARGET),
        "noise-sign": (NoiseTraining(0.25, "sign"), None),
    }
    for k in steps:
        chosen[f"pgd-{k}"] = (PGDTraining(0.3, steps=k), k + PGD_SLACK)
    return chosen


def epoch_seconds(arch: str, x: torch.Tensor, y: torch.Tensor, objective: Any) -> float:
    model = build_model(arch, (1, 28, 28), 10, seed=0)
    start = time.perf_counter()
    train_model(model, x, y, epochs=1, seed=0, progress=False, objective=objective)
    return time.perf_counter() - start


def measure(arch: str, n: int, steps: list[int], repeat: int) -> dict[str, Any]:
    train = load_dataset("mnist", "train", data_dir=common.mnist_dir())
    x, y = train.x[:n], train.y[:n]
    chosen = objectives(steps)
    times: dict[str, list[float]] = {name: [] for name in chosen}
    for round_ in range(repeat):
        order = list(chosen) if round_ % 2 == 0 else list(reversed(chosen))
        for name in order:
            times[name].append(epoch_seconds(arch, x, y, chosen[name][0]))
            print(f"{arch} {name}: {times[name][-1]:.2f} s", flush=True)
    plain = statistics.median(times["plain"])
    rows = {}
    for name, (_, target) in chosen.items():
        seconds = statistics.median(times[name])
        ratio = seconds / plain
        rows[name] = {
            "seconds": seconds,
            "all_seconds": times[name],
            "ratio": ratio,
            "target": target,
            "met": None if target is None else ratio <= target,
        }
    return rows


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# The cost of a defence per epoch",
        "",
        f"`benchmarks/bench_defenses.py`, {data['when']}: one epoch of `train_model` on the first "
        f"{data['n']:,} MNIST training images (batch 128, Adam), median of {data['repeat']} "
        "runs alternating the order; ratio to the plain epoch of the same model. Targets: FGSM "
        "adversarial training at most 2.2x, PGD-k at most (k + 1.3)x.",
        "",
        f"Machine: {data['machine']['cpu']}, {data['machine']['logical_cpus']} logical CPUs, "
        f"torch {data['machine']['torch']}, 2 threads.",
        "",
        "| model | objective | s / epoch | ratio | target | met |",
        "|---|---|---:|---:|---:|---|",
    ]
    for arch, rows in data["models"].items():
        for name, row in rows.items():
            target = "–" if row["target"] is None else f"{row['target']:.1f}x"
            met = "–" if row["met"] is None else ("yes" if row["met"] else "**no**")
            lines.append(
                f"| {arch} | {name} | {row['seconds']:.2f} | {row['ratio']:.2f}x | {target} | {met} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12_800)
    parser.add_argument("--steps", type=int, nargs="+", default=[3, 7])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--archs", nargs="+", default=["maxout", "lenet"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = {
        "machine": common.machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "n": args.n,
        "repeat": args.repeat,
        "models": {arch: measure(arch, args.n, args.steps, args.repeat) for arch in args.archs},
    }
    out = common.REPO / "benchmarks" / "results"
    write_text_atomic(out / "defenses.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(out / "defenses.md", markdown(data))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
