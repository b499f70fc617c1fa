"""C&W L2 variants against Foolbox: what warm start and abort-early cost and buy.

Runs brittle's ``CarliniWagnerL2`` (9 x 100 steps, lr 0.1, c0 0.01) as shipped, restarting
from x each round (``warm_start=False``) and without abort-early, and Foolbox's
``L2CarliniWagnerAttack`` with the same settings, on the benchmark LeNet and the first ``--n``
MNIST test images (batch 100, 2 threads). Writes gradients per sample, median L2 over the
correctly classified images and samples/s to ``benchmarks/results/cw_variants.{md,json}``.
Foolbox's gradients are counted by :class:`common.CountingModule`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS: dict[str, Any] = {"steps": 100, "binary_steps": 9, "lr": 0.1, "initial_const": 0.01}
VARIANTS: dict[str, dict[str, Any]] = {
    "brittle (default: warm start, abort-early)": {},
    "brittle, warm_start=False": {"warm_start": False},
    "brittle, abort_early=False": {"abort_early": False},
}


def row(
    name: str,
    x: Tensor,
    y: Tensor,
    x_adv: Tensor,
    grads: float,
    seconds: float,
    module: torch.nn.Module,
) -> dict[str, Any]:
    with torch.no_grad():
        correct = module(x).argmax(1) == y
        fooled = correct & (module(x_adv).argmax(1) != y)
    fooled &= x_adv.flatten(1).abs().amax(1) > 0  # Foolbox's all-black "not found"
    l2 = (x_adv - x).flatten(1).norm(dim=1)
    return {
        "variant": name,
        "success": float(fooled.sum()) / int(correct.sum()),
        "median_l2": float(l2[fooled].median()),
        "gradients_per_sample": grads / len(x),
        "samples_per_s": len(x) / seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(2)
    clf, test = common.trained_lenet()
    x, y = test.x[: args.n], test.y[: args.n]
    from brittle.attacks.cw import CarliniWagnerL2

    rows = []
    for name, extra in VARIANTS.items():
        attack = CarliniWagnerL2(**SETTINGS, **extra)
        start, outs, grads = time.perf_counter(), [], 0
        for xb, yb in zip(x.split(100), y.split(100), strict=True):
            result = attack(clf, xb, yb)
            outs.append(result.x_adv)
            grads += int(result.gradients.sum())
        rows.append(
            row(name, x, y, torch.cat(outs), grads, time.perf_counter() - start, clf.module)
        )
        print(rows[-1], flush=True)

    import foolbox as fb

    counter = common.CountingModule(clf.module).eval()
    fmodel = common.foolbox_model(counter)
    peer = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=SETTINGS["binary_steps"],
        steps=SETTINGS["steps"],
        stepsize=SETTINGS["lr"],
        confidence=0.0,
        initial_const=SETTINGS["initial_const"],
        abort_early=True,
    )
    start, outs = time.perf_counter(), []
    for xb, yb in zip(x.split(100), y.split(100), strict=True):
        _, clipped, _ = peer(fmodel, xb, yb, epsilons=None)
        outs.append(clipped)
    rows.append(
        row(
            "foolbox",
            x,
            y,
            torch.cat(outs),
            counter.gradients,
            time.perf_counter() - start,
            clf.module,
        )
    )
    print(rows[-1], flush=True)

    lines = [
        "# C&W L2 variants (9 x 100 steps, lr 0.1, c0 0.01)",
        "",
        f"Benchmark LeNet, first {args.n} MNIST test images, batch 100, 2 threads. Success and "
        "median L2 over the correctly classified images (Foolbox's all-black returns count as "
        "failures).",
        "",
        "| variant | success | median L2 | gradients/sample | samples/s |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r['variant']} | {r['success']:.3f} | {r['median_l2']:.4f} | "
            f"{r['gradients_per_sample']:.1f} | {r['samples_per_s']:.2f} |"
            for r in rows
        ),
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cw_variants.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "cw_variants.json").write_text(json.dumps({"n": args.n, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
