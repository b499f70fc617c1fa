"""What the candidate cap of JSMA's pair search costs: ``max_candidates=K`` against the exact
search, on the benchmark LeNet and on 3x224x224 inputs.

The exact search scores every pair of the first two Pareto layers of the points
(alpha_i, -beta_i); ``max_candidates=K`` keeps the K of them with the largest upper bound on
a pair's score, and is no longer exact. For each K this measures, on the same inputs and
targets as ``bench_jsma.py`` (the first N MNIST test images, t = (y + 1) mod 10, theta 1,
Upsilon 14.5%), the success rate, the mean L0 over successes, the share of samples whose
result differs from the exact search, and samples/s; and on a seeded random CNN at 3x224x224
(batch 8, 10 pairs; the CNN of ``bench_jsma.py --sizes``) the mean number of Pareto
candidates per iteration and the time per iteration. Results go to
``results/jsma_pruned.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

import common
from bench_jsma import size_model
from brittle.attacks import JSMA
from brittle.attacks import jsma as jsma_module
from brittle.classifier import Classifier
from brittle.files import write_text_atomic

CAPS = (None, 64, 16, 4, 2)
UPSILON = 0.145
EXACT_CANDIDATES = jsma_module.pareto_candidates


def candidate_counter() -> tuple[list[tuple[float, float]], Any]:
    """A wrapper of :func:`pareto_candidates` recording, per call, the mean and the largest
    number of candidates per row."""
    seen: list[tuple[float, float]] = []

    def counting(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        keep = EXACT_CANDIDATES(a, b, domain)
        counts = keep.sum(1).float()
        seen.append((float(counts.mean()), float(counts.max())))
        return keep

    return seen, counting


def candidate_stats(seen: list[tuple[float, float]]) -> dict[str, float]:
    """The mean candidates per row over the iterations, and the most in any row."""
    return {
        "mean_pareto_candidates": sum(m for m, _ in seen) / max(1, len(seen)),
        "most_pareto_candidates": max((top for _, top in seen), default=0.0),
    }


def on_lenet(n: int) -> list[dict[str, Any]]:
    clf, test = common.trained_lenet()
    x, y = test.x[:n], test.y[:n]
    t = (y + 1) % 10
    rows, exact = [], None
    for cap in CAPS:
        attack = JSMA(UPSILON, targeted=True, max_candidates=cap)
        attack(clf, x[:2], y[:2], t[:2])  # warm-up
        seen, counting = candidate_counter()
        jsma_module.pareto_candidates = counting
        try:
            start = time.perf_counter()
            res = attack(clf, x, y, t)
            seconds = time.perf_counter() - start
        finally:
            jsma_module.pareto_candidates = EXACT_CANDIDATES
        exact = res if cap is None else exact
        assert exact is not None
        differs = (res.x_adv != exact.x_adv).flatten(1).any(1).float().mean()
        rows.append(
            {
                "max_candidates": cap,
                "samples_per_s": n / seconds,
                "success": float(res.success.float().mean()),
                "mean_l0": float(res.l0[res.success].mean()),
                "differs_from_exact": float(differs),
                **candidate_stats(seen),
            }
        )
    return rows


def on_large(iterations: int = 10) -> list[dict[str, Any]]:
    clf = Classifier(size_model(), bounds=(0, 1))
    x = torch.rand(8, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    y = clf.predict(x)
    t = (y + 1) % 10
    eps = (2 * iterations + 0.5) / x[0].numel()
    rows = []
    for cap in CAPS:
        seen, counting = candidate_counter()
        jsma_module.pareto_candidates = counting
        try:
            start = time.perf_counter()
            res = JSMA(eps, targeted=True, max_candidates=cap)(clf, x, y, t)
            seconds = time.perf_counter() - start
        finally:
            jsma_module.pareto_candidates = EXACT_CANDIDATES
        steps = int(res.queries.max())
        rows.append(
            {
                "max_candidates": cap,
                "iterations": steps,
                "seconds_per_iteration": seconds / max(1, steps),
                **candidate_stats(seen),
            }
        )
    return rows


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# JSMA: the candidate cap against the exact pair search",
        "",
        f"Machine: {data['machine']}. Written by `benchmarks/bench_jsma_pruned.py`, "
        f"{data['when']}.",
        "",
        f"## Benchmark LeNet, first {data['n']} MNIST test images, targets (y + 1) mod 10, "
        "theta 1, Upsilon 14.5%, paper's score",
        "",
        "| max_candidates | samples/s | success | mean L0 | results differing from exact "
        "| Pareto candidates per row: mean, most |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in data["lenet"]:
        cap = "exact" if r["max_candidates"] is None else r["max_candidates"]
        lines.append(
            f"| {cap} | {r['samples_per_s']:.1f} | {r['success']:.3f} | {100 * r['mean_l0']:.2f}% "
            f"| {100 * r['differs_from_exact']:.1f}% "
            f"| {r['mean_pareto_candidates']:.1f}, {r['most_pareto_candidates']:.0f} |"
        )
    lines += [
        "",
        "## 3x224x224, batch 8, seeded random CNN, 10 pairs",
        "",
        "| max_candidates | iterations | s/iteration | Pareto candidates per row: mean, most |",
        "|---|---:|---:|---:|",
    ]
    for r in data["large"]:
        cap = "exact" if r["max_candidates"] is None else r["max_candidates"]
        lines.append(
            f"| {cap} | {r['iterations']} | {r['seconds_per_iteration']:.3f} | "
            f"{r['mean_pareto_candidates']:.1f}, {r['most_pareto_candidates']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = {
        "machine": common.machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "n": args.n,
        "lenet": on_lenet(args.n),
        "large": on_large(),
    }
    out = common.REPO / "benchmarks" / "results"
    write_text_atomic(out / "jsma_pruned.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(out / "jsma_pruned.md", markdown(data))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
