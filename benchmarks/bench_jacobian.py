"""Batched vector-Jacobian products of a classifier: which way of computing them is fastest.

    .venv/bin/python benchmarks/bench_jacobian.py [--repeats 9] [--warmup 2] [--threads 2]

The operation: for inputs ``x`` of shape ``(N, *shape)``, a model ``f`` with outputs ``(N, C)``
(the logits, or their softmax) and per-sample weight vectors ``V`` of shape ``(N, k, C)``,

    P[n, i] = V[n, i, :] @ d f(x_n) / d x_n,        P of shape (N, k, *shape).

JSMA needs k = 2 (``V[n] = [onehot(t), 1 - onehot(t)]``: dF_t/dX and sum_{j != t} dF_j/dX),
DeepFool k = C = 10 (``onehot(j) - onehot(y)`` for every class j), the full Jacobian k = C
with identity vectors (same shapes, so the same cost as DeepFool's; its values are checked
too). Methods:

- (a) ``loop``: one forward pass, then k calls of ``torch.autograd.grad(out, x, V[:, i],
  retain_graph=True)``;
- (b) ``batched``: one forward pass, then one ``torch.autograd.grad(out, x, V.transpose(0, 1),
  is_grads_batched=True)`` (autograd vmaps the backward over the k cotangents);
- (c) ``vmap_jacrev``: ``torch.func.vmap(torch.func.jacrev(f_one))(x)``, the full per-sample
  Jacobian ``(N, C, *shape)``, then contracted with V (``bmm``);
- (d) ``func_vjp_vmap``: ``out, pullback = torch.func.vjp(f, x)`` once for the batch, then
  ``torch.func.vmap(pullback)(V.transpose(0, 1))``;
- (e) ``naive``: k forward + backward passes (the forward recomputed for each row);
- (f) ``tiled`` (extra, not in the brief): each sample repeated k times, one forward and one
  backward pass on the batch of N * k (``grad_outputs = V.reshape(N * k, C)``).

The unit: one forward + backward of a scalar loss, ``torch.autograd.grad(CE(f(x), y,
reduction="sum"), x)`` on the same batch (one plain input gradient per sample); every method's
time is reported as a multiple of it, i.e. "a Jacobian of k classes costs so many gradients".
A forward pass under ``no_grad`` is timed for reference.

Models: the zoo LeNet and MLP (``build_model(arch, (1, 28, 28), 10, seed=0)``, random weights:
speed does not depend on training), eval mode, parameters ``requires_grad_(False)``; inputs
``torch.rand``; batches 1 and 100 (and 32 for k = 10). Before timing, every method's result
is compared with a float64 reference (method (e) on a float64 copy of the model): they must
agree up to float32 rounding, or the script stops. Warnings emitted by a method (e.g. a
missing vmap batching rule) and failures are recorded. A probe runs every method on small
networks with in-place ReLU, BatchNorm and Dropout, in eval and in train mode, and records
what fails and the error message.

Timing: ``time.perf_counter`` around one call; per configuration, warm-up rounds, then the
methods interleaved (unit, forward, a, b, c, ...) for each repeat, so that load from other
processes (the machine has 2 cores and is shared) hits them alike; the median of the repeats
is reported (and the minimum in the JSON), with the 1-minute load average before and after.

Writes ``benchmarks/results/jacobian.md`` and ``benchmarks/results/jacobian.json``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import functools
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

RESULTS = Path(__file__).resolve().parent / "results"
INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
# (batch, k): k = 2 is JSMA, k = 10 is DeepFool / the full Jacobian
CONFIGS: list[tuple[int, int]] = [(1, 2), (100, 2), (1, 10), (32, 10), (100, 10)]

Fn = Callable[[Tensor], Tensor]
Method = Callable[[Fn, Tensor, Tensor], Tensor]


# ---------------------------------------------------------------------------- the methods
def vjp_loop(f: Fn, x: Tensor, v: Tensor) -> Tensor:
    """(a) One forward pass, then one ``autograd.grad`` per row of V (graph retained)."""
    xr = x.detach().requires_grad_(True)
    out = f(xr)
    rows = [torch.autograd.grad(out, xr, v[:, i], retain_graph=True)[0] for i in range(v.shape[1])]
    return torch.stack(rows, dim=1)


def vjp_batched(f: Fn, x: Tensor, v: Tensor) -> Tensor:
    """(b) One forward pass, then one ``autograd.grad`` with ``is_grads_batched=True``."""
    xr = x.detach().requires_grad_(True)
    out = f(xr)
    (grads,) = torch.autograd.grad(out, xr, v.transpose(0, 1), is_grads_batched=True)
    return grads.transpose(0, 1)


def vmap_jacrev(f: Fn, x: Tensor, v: Tensor) -> Tensor:
    """(c) ``vmap`` over the samples of ``jacrev`` (full Jacobian per sample), then ``V @ J``."""

    def one(xi: Tensor) -> Tensor:
        return f(xi.unsqueeze(0)).squeeze(0)

    jac = torch.func.vmap(torch.func.jacrev(one))(x.detach())  # (N, C, *shape)
    return torch.bmm(v, jac.flatten(2)).view(*v.shape[:2], *x.shape[1:])


def func_vjp_vmap(f: Fn, x: Tensor, v: Tensor) -> Tensor:
    """(d) ``torch.func.vjp`` once for the batch, then ``vmap`` of the pullback over the k rows."""
    pullback = torch.func.vjp(f, x.detach())[1]
    (grads,) = torch.func.vmap(pullback)(v.transpose(0, 1))
    return grads.transpose(0, 1)


def naive(f: Fn, x: Tensor, v: Tensor) -> Tensor:
    """(e) k forward + backward passes, the forward recomputed for each row of V."""
    rows = []
    for i in range(v.shape[1]):
        xr = x.detach().requires_grad_(True)
        rows.append(torch.autograd.grad(f(xr), xr, v[:, i])[0])
    return torch.stack(rows, dim=1)


def tiled(f: Fn, x: Tensor, v: Tensor) -> Tensor:
    """(f) Each sample repeated k times: one forward + backward on a batch of N * k."""
    n, k = v.shape[:2]
    xr = x.detach().repeat_interleave(k, dim=0).requires_grad_(True)
    (grads,) = torch.autograd.grad(f(xr), xr, v.reshape(n * k, -1))
    return grads.view(n, k, *x.shape[1:])


METHODS: dict[str, Method] = {
    "a_loop": vjp_loop,
    "b_batched": vjp_batched,
    "c_vmap_jacrev": vmap_jacrev,
    "d_func_vjp_vmap": func_vjp_vmap,
    "e_naive": naive,
    "f_tiled": tiled,
}
LABELS = {
    "a_loop": "(a) forward + k x grad(retain_graph)",
    "b_batched": "(b) forward + grad(is_grads_batched)",
    "c_vmap_jacrev": "(c) vmap(jacrev) + contract",
    "d_func_vjp_vmap": "(d) func.vjp + vmap(pullback)",
    "e_naive": "(e) k x (forward + backward)",
    "f_tiled": "(f) tiled batch N*k, 1 fwd+bwd",
}


def unit_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """One forward + backward pass of a scalar loss: one plain input gradient per sample."""
    xr = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
    return grad


def forward_only(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        out: Tensor = model(x)
    return out


# ---------------------------------------------------------------------------- weight vectors
def jsma_vectors(target: Tensor, classes: int) -> Tensor:
    """``(N, 2, C)``: ``onehot(t)`` and ``1 - onehot(t)``."""
    hot = F.one_hot(target, classes).float()
    return torch.stack([hot, 1.0 - hot], dim=1)


def deepfool_vectors(label: Tensor, classes: int) -> Tensor:
    """``(N, C, C)``: ``onehot(j) - onehot(y)`` for every class j (row y is zero)."""
    hot = F.one_hot(label, classes).float()
    return torch.eye(classes).unsqueeze(0) - hot.unsqueeze(1)


def identity_vectors(n: int, classes: int) -> Tensor:
    """``(N, C, C)``: the full Jacobian."""
    return torch.eye(classes).expand(n, classes, classes).contiguous()


def output_fn(model: nn.Module, output: str) -> Fn:
    if output == "logits":
        return model
    return lambda x: torch.softmax(model(x), dim=-1)


# ---------------------------------------------------------------------------- checks
def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def run_recorded(method: Method, f: Fn, x: Tensor, v: Tensor) -> tuple[Tensor | None, dict]:
    """Run once; return the result (or None) and the error and warnings it raised."""
    info: dict[str, Any] = {"error": None, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = method(f, x, v)
        except Exception as err:
            info["error"] = first_line(err)
            out = None
    info["warnings"] = sorted({str(w.message).splitlines()[0] for w in caught})
    return out, info


def check(model: nn.Module, output: str, x: Tensor, vectors: dict[str, Tensor]) -> dict:
    """Compare every method with a float64 reference; stop if one disagrees."""
    f = output_fn(model, output)
    f64 = output_fn(copy.deepcopy(model).double(), output)
    refs = {kind: naive(f64, x.double(), v.double()) for kind, v in vectors.items()}
    report: dict[str, Any] = {}
    for name, method in METHODS.items():
        report[name] = {"max_abs_error": {}, "error": None, "warnings": []}
        for kind, v in vectors.items():
            ref = refs[kind]
            got, info = run_recorded(method, f, x, v)
            report[name]["error"] = report[name]["error"] or info["error"]
            report[name]["warnings"] = sorted({*report[name]["warnings"], *info["warnings"]})
            if got is None:
                continue
            scale = float(ref.abs().max())
            try:
                torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-5 * scale)
            except AssertionError as err:
                raise AssertionError(f"{name} on {kind} ({output}): {err}") from err
            report[name]["max_abs_error"][kind] = float((got.double() - ref).abs().max())
            report[name]["max_abs_error"][f"{kind}_scale"] = scale
    return report


def semantic_check(model: nn.Module, x: Tensor, target: Tensor) -> None:
    """P[:, 0] is dF_t/dX and P[:, 1] is sum_{j != t} dF_j/dX, computed one class at a time."""
    p = vjp_loop(model, x, jsma_vectors(target, NUM_CLASSES))
    xr = x.detach().requires_grad_(True)
    out = model(xr)
    rows = [torch.autograd.grad(out[:, j].sum(), xr, retain_graph=True)[0] for j in range(10)]
    jac = torch.stack(rows, dim=1)  # (N, C, *shape)
    hot = F.one_hot(target, NUM_CLASSES).bool()
    torch.testing.assert_close(p[:, 0], jac[hot])
    torch.testing.assert_close(p[:, 1], jac.sum(1) - jac[hot], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- timing
def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_config(
    model: nn.Module,
    output: str,
    n: int,
    k: int,
    repeats: int,
    warmup: int,
    usable: set[str],
) -> dict[str, Any]:
    g = torch.Generator().manual_seed(n * 100 + k)
    x = torch.rand(n, *INPUT_SHAPE, generator=g)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    v = jsma_vectors(y, NUM_CLASSES) if k == 2 else deepfool_vectors(y, NUM_CLASSES)
    f = output_fn(model, output)
    runs: dict[str, Callable[[], Any]] = {
        "unit_gradient": lambda: unit_gradient(model, x, y),
        "forward_no_grad": lambda: forward_only(model, x),
    }
    for name in METHODS:
        if name in usable:
            runs[name] = functools.partial(METHODS[name], f, x, v)
    load_before = os.getloadavg()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # recorded once by check()
        for _ in range(warmup):
            for fn in runs.values():
                fn()
        times: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(repeats):
            for key, fn in runs.items():
                times[key].append(seconds(fn))
    median = {key: statistics.median(t) for key, t in times.items()}
    unit = median["unit_gradient"]
    methods = [key for key in METHODS if key in median]
    return {
        "output": output,
        "batch": n,
        "k": k,
        "load_1min_before_after": [load_before, os.getloadavg()[0]],
        "median_ms": {key: 1000 * t for key, t in median.items()},
        "min_ms": {key: 1000 * min(t) for key, t in times.items()},
        "all_ms": {key: [1000 * s for s in t] for key, t in times.items()},
        "in_units_of_gradient": {key: t / unit for key, t in median.items()},
        "fastest": min(methods, key=lambda key: median[key]),
    }


# ---------------------------------------------------------------------------- probe
class SmallCNN(nn.Module):
    """Conv -> (BatchNorm) -> ReLU(inplace) -> Dropout -> Linear: the layers vmap may refuse."""

    def __init__(self, batchnorm: bool, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 5, stride=2)
        self.norm: nn.Module = nn.BatchNorm2d(8) if batchnorm else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(8 * 12 * 12, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(self.drop(self.relu(self.norm(self.conv(x)))).flatten(1))
        return out


def probe(build: Callable[..., nn.Module]) -> list[dict[str, Any]]:
    """Run every method once on networks with in-place ops, BatchNorm and Dropout."""
    torch.manual_seed(0)
    nets: dict[str, nn.Module] = {
        "ReLU(inplace=True), eval": SmallCNN(batchnorm=False, dropout=0.0).eval(),
        "BatchNorm2d + ReLU(inplace=True), eval": SmallCNN(batchnorm=True, dropout=0.0).eval(),
        "BatchNorm2d + ReLU(inplace=True), train": SmallCNN(batchnorm=True, dropout=0.0).train(),
        "Dropout(0.5), train": SmallCNN(batchnorm=False, dropout=0.5).train(),
        "zoo maxout (Dropout 0.2), eval": build("maxout", INPUT_SHAPE, NUM_CLASSES, seed=0).eval(),
        "zoo maxout (Dropout 0.2), train": build(
            "maxout", INPUT_SHAPE, NUM_CLASSES, seed=0
        ).train(),
    }
    x = torch.rand(4, *INPUT_SHAPE, generator=torch.Generator().manual_seed(1))
    v = jsma_vectors(torch.tensor([0, 3, 5, 9]), NUM_CLASSES)
    rows = []
    for label, net in nets.items():
        for p in net.parameters():
            p.requires_grad_(False)
        row: dict[str, Any] = {"network": label}
        reference, _ = run_recorded(vjp_loop, net, x, v)
        for name, method in METHODS.items():
            state = copy.deepcopy(net.state_dict())
            got, info = run_recorded(method, net, x, v)
            net.load_state_dict(state)  # undo running-stat updates of train-mode BatchNorm
            if got is not None and reference is not None:
                info["max_abs_diff_from_a"] = float((got - reference).abs().max())
            row[name] = info
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- report
def worst_error(report: dict[str, Any]) -> float:
    """The largest max-abs error of any checked method, relative to max |P| of the reference."""
    worst = 0.0
    for per_method in report["checks"].values():
        for info in per_method.values():
            errors = info["max_abs_error"]
            for kind in [k for k in errors if not k.endswith("_scale")]:
                worst = max(worst, errors[kind] / errors[f"{kind}_scale"])
    return worst


def markdown(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    lines = [
        "# Batched vector-Jacobian products: P[n, i] = V[n, i] @ df(x_n)/dx_n",
        "",
        f"- date: {report['date']}",
        f"- machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), {m['platform']}; shared "
        "with other processes (see the load averages in the JSON), hence medians",
        f"- torch {m['torch']}, python {m['python']}; {report['threads']} thread(s)",
        "- models: zoo lenet and mlp, (1, 28, 28) -> 10, random weights (seed 0), eval mode, "
        "parameters without grad; inputs torch.rand",
        f"- median of {report['repeats']} interleaved repeats after {report['warmup']} warm-up "
        "rounds; k = 2: JSMA vectors, k = 10: DeepFool vectors (same cost as the full "
        "Jacobian)",
        f"- wall time of the benchmark: {report['wall_seconds']:.0f} s",
        "- every method agrees with a float64 reference (asserted: |P - P64| <= 1e-5 max|P64| "
        f"+ 1e-4 |P64|; largest error seen {worst_error(report):.1e} x max|P64|; see `checks` "
        "in the JSON); unit = one forward + backward of a scalar loss (cross-entropy, sum) on "
        "the same batch",
        "",
        "Each cell: median ms per call (multiple of the unit). **Bold**: fastest method.",
        "",
    ]
    names = list(METHODS)
    head = "| model | output | N | k | unit ms | fwd ms | " + " | ".join(LABELS[n] for n in names)
    for model_name, rows in report["timings"].items():
        lines += [f"## {model_name}", "", head + " |", "|---" * (6 + len(names)) + "|"]
        for r in rows:
            ms, units = r["median_ms"], r["in_units_of_gradient"]
            cells = []
            for name in names:
                if name not in ms:
                    cells.append("failed")
                    continue
                cell = f"{ms[name]:.2f} ({units[name]:.2f}x)"
                cells.append(f"**{cell}**" if name == r["fastest"] else cell)
            lines.append(
                f"| {model_name} | {r['output']} | {r['batch']} | {r['k']} "
                f"| {ms['unit_gradient']:.2f} | {ms['forward_no_grad']:.2f} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    lines += ["## Fastest method per configuration", ""]
    for k, counts in report["fastest_counts"].items():
        text = ", ".join(f"{LABELS[n]}: {c}" for n, c in counts.items())
        lines.append(f"- k = {k}: {text}")
    lines += ["", "## Warnings and failures on the benchmark models", ""]
    for key, per_method in report["checks"].items():
        for name, info in per_method.items():
            if info["error"] or info["warnings"]:
                lines.append(
                    f"- {key}, {LABELS[name]}: "
                    + "; ".join([*([info["error"]] if info["error"] else []), *info["warnings"]])
                )
    if lines[-1] == "":
        lines.append("- none")
    lines += [
        "",
        "## Probe: in-place ops, BatchNorm, Dropout (N = 4, k = 2)",
        "",
        "ok = ran (max abs difference from (a)); train-mode BatchNorm couples the samples and "
        "Dropout draws masks per forward, so differences there are expected, not errors.",
        "",
        "| network | " + " | ".join(LABELS[n] for n in names) + " |",
        "|---" * (1 + len(names)) + "|",
    ]
    for row in report["probe"]:
        cells = []
        for name in names:
            info = row[name]
            if info["error"]:
                cells.append(f"FAILS: {info['error']}")
            else:
                diff = info.get("max_abs_diff_from_a")
                text = "ok" if diff is None else f"ok ({diff:.1e})"
                if info["warnings"]:
                    text += " [warning: " + "; ".join(info["warnings"]) + "]"
                cells.append(text)
        lines.append(f"| {row['network']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["lenet", "mlp"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from brittle.zoo import build_model

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    report: dict[str, Any] = {
        "benchmark": "jacobian",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": common.machine(),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "configs": CONFIGS,
        "methods": LABELS,
        "checks": {},
        "timings": {},
    }
    for arch in args.models:
        model = build_model(arch, INPUT_SHAPE, NUM_CLASSES, seed=0).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(5, *INPUT_SHAPE, generator=g)
        y = torch.randint(0, NUM_CLASSES, (5,), generator=g)
        semantic_check(model, x, y)
        vectors = {
            "jsma_k2": jsma_vectors(y, NUM_CLASSES),
            "deepfool_k10": deepfool_vectors(y, NUM_CLASSES),
            "identity_k10": identity_vectors(5, NUM_CLASSES),
        }
        rows = []
        for output in ("logits", "softmax"):
            checked = check(model, output, x, vectors)
            report["checks"][f"{arch}/{output}"] = checked
            usable = {name for name, info in checked.items() if not info["error"]}
            for n, k in CONFIGS:
                row = time_config(model, output, n, k, args.repeats, args.warmup, usable)
                rows.append(row)
                print(
                    f"{arch} {output} N={n} k={k}: "
                    + ", ".join(
                        f"{key} {ms:.2f} ms ({row['in_units_of_gradient'][key]:.2f}x)"
                        for key, ms in row["median_ms"].items()
                    ),
                    flush=True,
                )
        report["timings"][arch] = rows
    counts: dict[str, dict[str, int]] = {}
    for rows in report["timings"].values():
        for r in rows:
            per_k = counts.setdefault(str(r["k"]), {})
            per_k[r["fastest"]] = per_k.get(r["fastest"], 0) + 1
    report["fastest_counts"] = counts
    report["probe"] = probe(build_model)
    report["load_1min_start_end"] = [load_start, os.getloadavg()[0]]
    report["wall_seconds"] = time.perf_counter() - started

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "jacobian.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = markdown(report)
    (RESULTS / "jacobian.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
