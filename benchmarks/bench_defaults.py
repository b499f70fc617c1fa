"""Are the attacks' defaults their strong setting? Each attack as a user gets it, on the zoo
LeNet trained on full MNIST (``common.trained_lenet``), next to a weaker or stronger setting.

    python benchmarks/bench_defaults.py            # first 200 MNIST test images
    python benchmarks/bench_defaults.py --n 500

A minimal-perturbation attack run without a budget should break every correctly classified
sample: whatever it leaves unbroken is its own weakness, not the model's robustness. For each
attack the table gives the success rate among correctly classified samples, the median L2 of
the successful examples, and the gradients and queries per sample; the rows marked "default"
are ``brittle attack --attack NAME`` with nothing else set (fixed-budget attacks in Linf at
``registry.DEFAULT_EPS``; SimBA, an L2 attack, needs an eps: 3). Writes ``benchmarks/results/defaults.md`` and ``defaults.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

RESULTS = Path(__file__).resolve().parent / "results"

SETTINGS: list[tuple[str, str, dict[str, Any]]] = [
    ("fgsm", "default", {}),
    ("bim", "default", {}),
    ("pgd", "default", {}),
    ("mifgsm", "default", {}),
    ("deepfool", "default", {}),
    ("cw", "default", {}),
    ("cw", "the previous defaults (lr 0.01, c0 1e-3)", {"lr": 0.01, "initial_const": 1e-3}),
    ("lbfgs", "default (targeted, random targets)", {}),
    ("lbfgs", "untargeted", {"targeted": False}),
    ("jsma", "default (untargeted: every other class, Upsilon 14.5%)", {}),
    ("jsma", "targeted, random targets, the paper's score", {"targeted": True}),
    ("jsma", "targeted, random targets, target-only score", {"targeted": True, "score": "target"}),
    ("jsma", "targeted, random targets, decreasing features", {"targeted": True, "theta": -1.0}),
    ("simba", "default, L2 eps 3", {"eps": 3.0}),
    ("simba", "Linf eps 0.25, pixel basis", {"norm": "linf"}),
    ("simba", "L2 eps 3, dct basis", {"eps": 3.0, "basis": "dct"}),
]


def run(
    name: str, params: dict[str, Any], x: torch.Tensor, y: torch.Tensor, clf: Any
) -> dict[str, Any]:
    """One setting over the images, in batches of 100: the summary of the joined result."""
    from brittle.attacks.registry import make_attack
    from brittle.attacks.result import AttackResult

    attack = make_attack(name, **params)
    target: Literal["random"] | None = "random" if attack.targeted else None
    start = time.perf_counter()
    parts = [
        attack(clf, xb, yb, target, ids=torch.arange(i * 100, i * 100 + len(xb)))
        for i, (xb, yb) in enumerate(zip(x.split(100), y.split(100), strict=True))
    ]
    seconds = time.perf_counter() - start
    result = AttackResult.concat(parts)
    s = result.summary()
    n = len(result)
    return {
        "attack": name,
        "params": attack.config(),
        "success_rate": s["success_rate"],
        "median_l2": s["median_l2"],
        "mean_l0": s["mean_l0"],
        "gradients_per_sample": int(result.gradients.sum()) / n,
        "queries_per_sample": int(result.queries.sum()) / n,
        "seconds": seconds,
    }


def _share(value: float | None) -> str:
    """A mean L0 as a percentage of the features (rows measured before it was kept: n/a)."""
    return "n/a" if value is None else f"{100 * value:.2f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--only", nargs="*", default=None, help="attacks to rerun; the other rows are kept"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    clf, test = common.trained_lenet()
    x, y = test.x[: args.n], test.y[: args.n]
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    previous = RESULTS / "defaults.json"
    if args.only and previous.is_file():
        old = json.loads(previous.read_text())
        if old["meta"]["n"] == args.n:
            kept = {(r["attack"], r["setting"]): r for r in old["rows"]}
    rows = []
    for name, label, params in SETTINGS:
        if args.only and name not in args.only and (name, label) in kept:
            rows.append(kept[(name, label)])
            continue
        row = {"setting": label, **run(name, params, x, y, clf)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": common.machine(),
        "torch": torch.__version__,
        "n": args.n,
        "model": "zoo LeNet trained on full MNIST (benchmarks/common.py RECIPE)",
    }
    (RESULTS / "defaults.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# Attack defaults on the zoo LeNet ({args.n} MNIST test images, {meta['date']})",
        "",
        "| attack | setting | success | median L2 | mean L0 | gradients/sample | queries/sample | s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['attack']} | {r['setting']} | {r['success_rate']:.3f} | {r['median_l2']:.3f} "
            f"| {_share(r.get('mean_l0'))} "
            f"| {r['gradients_per_sample']:.1f} | {r['queries_per_sample']:.1f} | {r['seconds']:.1f} |"
        )
    (RESULTS / "defaults.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
