"""Forward and input-gradient throughput of CPU networks stored NCHW and channels-last.

    .venv/bin/python benchmarks/bench_layout.py

Whether to attack a convolutional network on the CPU with channels-last weights
(``module.to(memory_format=torch.channels_last)``): brittle does not, because its results
would then depend on the batch size in the last bits (``results/evaluate_channels_last.md``).
Per network and batch size, the samples per second of a forward pass without gradient (a
score query) and of a forward and backward pass to the input (one loss gradient, parameters
frozen), in each layout, on random inputs, 2 torch threads, the median of 5 timings; and the
largest difference of the logits and of the input gradients between the two layouts.

Networks: the zoo LeNet on 1x28x28 (MNIST) and on 3x32x32 (CIFAR-10's shape), and a small
VGG-style network with batch norm on 3x32x32 (a user's network, not the zoo's).

Writes ``benchmarks/results/layout.json`` and ``layout.md``. Needs an idle machine.
"""

from __future__ import annotations

import datetime
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from brittle.files import write_text_atomic
from brittle.zoo.architectures import LeNet

BATCHES = (36, 256)
REPEATS = 5


def vgg_bn() -> nn.Module:
    """Two conv-BN-ReLU blocks with pooling and a linear head, on 3x32x32."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (32, 64):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(nn.MaxPool2d(2))
        channels = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 8 * 8, 10))


NETWORKS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "zoo LeNet, 1x28x28": (lambda: LeNet((1, 28, 28), 10), (1, 28, 28)),
    "zoo LeNet, 3x32x32": (lambda: LeNet((3, 32, 32), 10), (3, 32, 32)),
    "VGG-style with batch norm, 3x32x32": (vgg_bn, (3, 32, 32)),
}


def _frozen(build: Callable[[], nn.Module], channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    module = build().eval()
    for p in module.parameters():
        p.requires_grad_(False)
    if channels_last:
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


def _gradient(module: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    logits = module(x)
    loss = nn.functional.cross_entropy(logits, y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return logits.detach(), grad


def _rate(call: Callable[[], object], n: int) -> float:
    call()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def measure() -> list[dict[str, object]]:
    rows = []
    for name, (build, shape) in NETWORKS.items():
        plain, last = _frozen(build, False), _frozen(build, True)
        for batch in BATCHES:
            g = torch.Generator().manual_seed(batch)
            x = torch.rand(batch, *shape, generator=g)
            y = torch.randint(0, 10, (batch,), generator=g)
            row: dict[str, object] = {"network": name, "batch": batch}
            for label, module in (("nchw", plain), ("channels_last", last)):
                with torch.no_grad():
                    row[f"forward_{label}"] = _rate(partial(module, x), batch)
                row[f"gradient_{label}"] = _rate(partial(_gradient, module, x, y), batch)
            logits_a, grad_a = _gradient(plain, x, y)
            logits_b, grad_b = _gradient(last, x, y)
            row["logits_max_diff"] = float((logits_a - logits_b).abs().max())
            row["gradient_max_rel_diff"] = float(
                (grad_a - grad_b).abs().max() / grad_a.abs().max().clamp_min(1e-30)
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict[str, object]], meta: dict[str, object]) -> str:
    lines = [
        f"# NCHW against channels-last on the CPU ({meta['created']})",
        "",
        f"`benchmarks/bench_layout.py`: samples per second, median of {REPEATS} timings, "
        f"2 torch threads. Machine: {meta['cpu']} ({meta['logical_cpus']} logical CPUs), "
        f"torch {meta['torch']}.",
        "",
        "| network | batch | forward NCHW | forward channels-last | ratio | gradient NCHW "
        "| gradient channels-last | ratio | max logit diff | max gradient diff (relative) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f0, f1 = float(r["forward_nchw"]), float(r["forward_channels_last"])  # type: ignore[arg-type]
        g0, g1 = float(r["gradient_nchw"]), float(r["gradient_channels_last"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['network']} | {r['batch']} | {f0:,.0f} | {f1:,.0f} | {f1 / f0:.2f}x | "
            f"{g0:,.0f} | {g1:,.0f} | {g1 / g0:.2f}x | {r['logits_max_diff']:.1e} | "
            f"{r['gradient_max_rel_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    torch.set_num_threads(2)
    rows = measure()
    meta = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **common.machine(),
    }
    out = Path(__file__).resolve().parent / "results"
    write_text_atomic(out / "layout.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    write_text_atomic(out / "layout.md", markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
