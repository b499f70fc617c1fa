"""The sandwich reproduction on MNIST at a reduced scale, its rows and timing as results.

Runs ``brittle reproduce sandwich`` (the zoo LeNet, its PGD-trained variant and the smoothed
classifier of a LeNet trained on Gaussian noise) into ``--out`` (checkpoints and evaluation
stores there are reused by a second run) and writes ``results/sandwich.json`` and
``results/sandwich.md``: per model the accuracy, the shares certified and not broken by an
attack at one budget, the count of samples certified beyond an attack (a bug if not 0), and
the wall time of each part on the machine named.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brittle import tasks
from brittle.files import write_text_atomic
from common import machine

RESULTS = Path(__file__).resolve().parent / "results"


def report(result: dict[str, Any]) -> str:
    """The Markdown page of ``result``."""
    lines = [
        "# The sandwich: certified, true and attacked robustness (reproduce sandwich)",
        "",
        f"Machine: {result['machine']['cpu']} ({result['machine']['logical_cpus']} logical CPUs, "
        f"shared with other jobs while it ran), torch {result['machine']['torch']}.",
        f"Sizes: {json.dumps(result['sizes'])}; data: {result['data']}; "
        f"wall time {result['seconds']:.0f} s.",
        "",
        "| row | quantity | ours |",
        "|---|---|---|",
    ]
    for row in result["rows"]:
        value = row["ours"]
        shown = f"{100 * value:.1f}%" if "violations" not in row["id"] else f"{value:g}"
        lines.append(f"| {row['id']} | {row['quantity']} | {shown} |")
    lines += ["", "Timing (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result["timing"].items())]
    lines += ["", *result["notes"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/sandwich"))
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--n-second", type=int, default=50)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = {
        "n_images": args.n_images,
        "n_second": args.n_second,
        "n_train": args.n_train,
        "epochs": args.epochs,
    }
    start = time.perf_counter()
    outcome = tasks.reproduce("sandwich", args.out, progress=False, log=print, **sizes)
    found = json.loads(outcome.paths.json.read_text())
    result = {
        "machine": machine(),
        "sizes": sizes,
        "data": found["setting"]["data"]["name"],
        "seconds": time.perf_counter() - start,
        "rows": found["rows"],
        "timing": found["timing"],
        "notes": found["notes"],
        "report": str(outcome.paths.html),
    }
    write_text_atomic(args.results / "sandwich.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.results / "sandwich.md", report(result))


if __name__ == "__main__":
    main()
