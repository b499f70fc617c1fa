"""EOT and BPDA on the benchmark LeNet (MNIST): robust accuracy with and without them.

Two defences that mask the gradient, each in front of the same trained LeNet
(:func:`common.trained_lenet`):

- **noise**: Gaussian noise of standard deviation ``SIGMA`` added to the input at every call
  (a randomised model). PGD with one draw per gradient against PGD with EOT (``EOT()``: 20
  draws per gradient, verdicts a strict majority of 9 draws); the one-draw run is judged by
  the same majority verdict, so the two differ only by their gradients;
- **quantise**: the input rounded to 8 levels (a step function: gradient zero almost
  everywhere). PGD through the exact gradient against PGD through BPDA (straight through).

Reports robust accuracy, gradients spent per sample and seconds. Writes
``benchmarks/results/eot.json`` and ``eot.md``. Run on a shared machine: the seconds are
wall-clock and noisy; the accuracies are deterministic given the seed.

    BRITTLE_DATA=/work/shared/data .venv/bin/python benchmarks/bench_eot.py [--n 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from brittle import EOT, Classifier
from brittle.attacks import PGD
from brittle.files import write_text_atomic
from common import machine, trained_lenet

RESULTS = Path(__file__).resolve().parent / "results"
SIGMA = 0.3
EPS = 0.1
STEPS = 40
LEVELS = 8


class InputNoise(nn.Module):
    """Adds N(0, sigma^2) to every input feature at every call, then runs ``net``."""

    def __init__(self, net: nn.Module, sigma: float) -> None:
        super().__init__()
        self.net, self.sigma = net, sigma

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x + self.sigma * torch.randn_like(x))
        return out


def quantise(x: Tensor) -> Tensor:
    """Round to 8 levels of [0, 1]."""
    return torch.round(x * (LEVELS - 1)) / (LEVELS - 1)


def run(model: Classifier, x: Tensor, y: Tensor) -> dict[str, Any]:
    """PGD-40 at Linf eps 0.1 (one random start, seed 0): robust accuracy, gradients per
    sample, seconds."""
    start = time.perf_counter()
    result = PGD(EPS, steps=STEPS, seed=0)(model, x, y)
    print(f"  robust {float(result.robust.float().mean()):.3f}", flush=True)
    return {
        "clean_accuracy": float(result.correct_clean.float().mean()),
        "robust_accuracy": float(result.robust.float().mean()),
        "gradients_per_sample": float(result.gradients.float().mean()),
        "verification_passes_per_sample": float(result.verification_queries.float().mean()),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="first test images attacked")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.manual_seed(0)
    lenet, test = trained_lenet(progress=False)
    x, y = test.x[: args.n], test.y[: args.n]
    shape = tuple(x.shape[1:])

    noisy = Classifier(InputNoise(lenet.module, SIGMA), input_shape=shape)
    noisy.eot = EOT(samples=1, draws=9)
    one_draw = run(noisy, x, y)
    noisy.eot = EOT()
    eot = run(noisy, x, y)

    exact = run(Classifier(lenet.module, input_shape=shape, preprocessing=quantise), x, y)
    bpda = run(
        Classifier(
            lenet.module,
            input_shape=shape,
            preprocessing=quantise,
            preprocessing_backward="identity",
        ),
        x,
        y,
    )
    plain = run(Classifier(lenet.module, input_shape=shape), x, y)

    out = {
        "machine": machine(),
        "n": args.n,
        "attack": {"name": "PGD", "eps": EPS, "norm": "linf", "steps": STEPS, "seed": 0},
        "noise": {
            "sigma": SIGMA,
            "one_draw": one_draw,
            "eot": eot,
            "eot_setting": EOT().describe(),
        },
        "quantise": {"levels": LEVELS, "exact": exact, "bpda": bpda, "undefended": plain},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "eot.json", json.dumps(out, indent=2) + "\n")
    rows = [
        ("noise, one draw per gradient (majority-of-9 verdict)", one_draw),
        ("noise, EOT (20 draws per gradient, majority-of-9 verdict)", eot),
        ("quantise, exact gradient", exact),
        ("quantise, BPDA (identity backward)", bpda),
        ("undefended LeNet", plain),
    ]
    lines = [
        "# EOT and BPDA on the benchmark LeNet (MNIST)",
        "",
        f"PGD-{STEPS} at Linf eps={EPS} (one random start, seed 0) on the first {args.n} MNIST "
        f"test images; noise: N(0, {SIGMA}^2) on the input at every call; quantise: {LEVELS} "
        "levels. Seconds are wall-clock on a shared, loaded machine "
        f"({out['machine']['cpu']}, {out['machine']['logical_cpus']} logical CPUs).",
        "",
        "| model and attack | clean acc. | robust acc. | gradients / sample | seconds |",
        "|---|---|---|---|---|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['clean_accuracy']:.3f} | {r['robust_accuracy']:.3f} | "
            f"{r['gradients_per_sample']:.0f} | {r['seconds']:.1f} |"
        )
    write_text_atomic(args.results / "eot.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
