"""brittle's FAB-T against torchattacks' FAB (multi-targeted), on the same model and images.

    python benchmarks/bench_fab.py             # first 200 MNIST test images
    python benchmarks/bench_fab.py --n 20      # a smoke run (writes fab_partial.*)

The model is the suite benchmark's (``common.pgd_trained_lenet``: the benchmark LeNet after
one epoch of PGD-7 adversarial training at Linf 0.3), wrapped in ``common.CountingModule``;
``torch.set_num_threads(2)``; one batch of all the images; Linf, 100 iterations, 1 restart,
alpha_max 0.1, eta 1.05, beta 0.9 (AutoAttack's FAB-T) in both libraries. Two settings:

- **minimal distances**: torchattacks' ``FAB(multi_targeted=True, eps=1.0)`` (an eps of the
  box's diameter keeps every adversarial it finds; it runs each target class on the images
  no earlier target fooled, so most images get the first target only), against brittle's
  ``FABT()`` without a budget with 1 target (the same work for most images) and with 9
  (the smallest perturbation over all 9 targets, up to 9 times the work). Reported: the
  success rate, the median and mean Linf distance over the images both fooled, per-image
  comparisons, the time and the gradients;
- **at the suite's budget** eps = 0.3: torchattacks' ``FAB(multi_targeted=True, eps=0.3)``
  against brittle's ``FABT(eps=0.3)`` (which stops an image at its first adversarial point
  within 0.3): robust accuracy and time.

The two libraries alternate in each setting (torchattacks first), after an untimed warm-up on
two images, on a shared machine: the load average is recorded around each run.
Writes ``benchmarks/results/fab.md`` and ``fab.json`` (n = 200), else ``fab_partial.*``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import common
from brittle.files import write_text_atomic

RESULTS = common.REPO / "benchmarks" / "results"
FULL_N = 200
MODELS = {
    "pgd": "the suite benchmark's PGD-trained LeNet (`common.pgd_trained_lenet`)",
    "plain": "the plain benchmark LeNet (`common.trained_lenet`, no adversarial training)",
}
EPS = 0.3
STEPS = 100


def torchattacks_fab(module: torch.nn.Module, eps: float, steps: int) -> Any:
    import torchattacks

    return torchattacks.FAB(
        common.torchattacks_model(module),
        norm="Linf",
        eps=eps,
        steps=steps,
        n_restarts=1,
        alpha_max=0.1,
        eta=1.05,
        beta=0.9,
        seed=0,
        multi_targeted=True,
        n_classes=common.NUM_CLASSES,
    )


def timed(counter: common.CountingModule, fn: Any) -> tuple[Tensor, dict[str, Any]]:
    """Run ``fn()`` (returns adversarial images), with its wall and CPU time, load and counts."""
    counter.reset()
    load = [os.getloadavg()[0]]
    cpu, start = time.process_time(), time.perf_counter()
    x_adv = fn()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    load.append(os.getloadavg()[0])
    return x_adv.detach(), {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "load_1min": load,
        "gradients": counter.gradients,
        "forwards": counter.forwards,
    }


def measure(module: torch.nn.Module, x: Tensor, y: Tensor, x_adv: Tensor) -> dict[str, Any]:
    """Success (the model's label differs from y, images classified correctly clean) and Linf."""
    with torch.no_grad():
        clean = module(x).argmax(1) == y
        fooled = (module(x_adv).argmax(1) != y) & clean
    linf = (x_adv - x).flatten(1).abs().amax(1)
    return {"clean": clean, "fooled": fooled, "linf": linf}


def summary(row: dict[str, Any], m: dict[str, Any], n: int) -> dict[str, Any]:
    fooled, linf = m["fooled"], m["linf"]
    out = {
        **row,
        "fooled": int(fooled.sum()),
        "robust_accuracy": float((m["clean"] & ~fooled).float().mean()),
        "median_linf_fooled": float(linf[fooled].median()) if bool(fooled.any()) else None,
        "max_linf_fooled": float(linf[fooled].max()) if bool(fooled.any()) else None,
        "gradients_per_image": row["gradients"] / n,
        "forwards_per_image": row["forwards"] / n,
    }
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """On the images both fooled: median and mean Linf of each, and how often each is smaller."""
    both = a["fooled"] & b["fooled"]
    la, lb = a["linf"][both], b["linf"][both]
    return {
        "both_fooled": int(both.sum()),
        "median_a": float(la.median()) if len(la) else None,
        "median_b": float(lb.median()) if len(lb) else None,
        "mean_a": float(la.mean()) if len(la) else None,
        "mean_b": float(lb.mean()) if len(lb) else None,
        "a_smaller": int((la < lb - 1e-6).sum()),
        "b_smaller": int((lb < la - 1e-6).sum()),
    }


def fmt(v: float | None, spec: str = ".4f") -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    n = meta["n"]
    lines = [
        "# FAB-T: brittle against torchattacks' FAB (multi-targeted)",
        "",
        f"`benchmarks/bench_fab.py`, {meta['created']}. Model: {MODELS[meta['model']]} "
        f"({meta['test_accuracy']:.2%} clean accuracy); the first {n} MNIST test images ({meta['clean_correct']} classified "
        "correctly), one batch, Linf, 100 iterations, 1 restart, alpha_max 0.1, eta 1.05, beta "
        "0.9 in both libraries. torchattacks "
        f"{meta['torchattacks']}. Machine: {meta['machine']['cpu']}, "
        f"{meta['machine']['logical_cpus']} logical CPUs, torch {meta['machine']['torch']}, "
        f"{meta['threads']} threads, shared with other jobs (load averages below); the "
        "libraries alternate, torchattacks first.",
        "",
        "## Minimal distances (no budget)",
        "",
        "torchattacks' FAB with eps = 1 (the box's diameter: every adversarial kept) runs each "
        "target on the images earlier targets left unfooled; brittle's FAB-T without a budget "
        "runs every target on every image and keeps the closest point (and its final search).",
        "",
        "| run | fooled | median Linf (fooled) | seconds | CPU s | grads/img | "
        "forwards/img | load |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in data["minimal"]:
        lines.append(
            f"| {row['label']} | {row['fooled']}/{meta['clean_correct']} | "
            f"{fmt(row['median_linf_fooled'])} | {row['seconds']:.1f} | "
            f"{row['cpu_seconds']:.1f} | {row['gradients_per_image']:.0f} | "
            f"{row['forwards_per_image']:.0f} | {row['load_1min'][0]:.1f} → "
            f"{row['load_1min'][1]:.1f} |"
        )
    lines += [
        "",
        "On the images both fooled (brittle's row against torchattacks'):",
        "",
        "| brittle run | both fooled | median Linf brittle / torchattacks | mean Linf brittle / "
        "torchattacks | brittle smaller | torchattacks smaller |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, c in data["minimal_pairs"].items():
        lines.append(
            f"| {label} | {c['both_fooled']} | {fmt(c['median_a'])} / {fmt(c['median_b'])} | "
            f"{fmt(c['mean_a'])} / {fmt(c['mean_b'])} | {c['a_smaller']} | {c['b_smaller']} |"
        )
    lines += [
        "",
        f"## At the suite's budget, Linf eps = {meta['eps']:g}",
        "",
        "| run | robust accuracy | fooled | max Linf (fooled) | seconds | CPU s | grads/img | "
        "load |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in data["budget"]:
        lines.append(
            f"| {row['label']} | {row['robust_accuracy']:.3f} | {row['fooled']} | "
            f"{fmt(row['max_linf_fooled'])} | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} | "
            f"{row['gradients_per_image']:.0f} | {row['load_1min'][0]:.1f} → "
            f"{row['load_1min'][1]:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=FULL_N, help="first n MNIST test images")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--model",
        choices=("pgd", "plain"),
        default="pgd",
        help="the PGD-trained LeNet (default) or the plain benchmark LeNet",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import torchattacks

    from brittle.attacks import FABT
    from brittle.classifier import Classifier

    torch.set_num_threads(args.threads)
    load_model = common.pgd_trained_lenet if args.model == "pgd" else common.trained_lenet
    classifier, test = load_model()
    counter = common.CountingModule(classifier.module).eval()
    counted = Classifier(
        counter, bounds=(0.0, 1.0), num_classes=common.NUM_CLASSES, input_shape=common.INPUT_SHAPE
    )
    n, steps = args.n, args.steps
    x, y = test.x[:n].contiguous(), test.y[:n].contiguous()
    ids = torch.arange(n)

    def brittle(targets: int, eps: float | None) -> Any:
        attack = FABT(steps=steps, n_target_classes=targets, eps=eps)
        return lambda xs=x, ys=y: attack(counted, xs, ys, ids=ids[: len(xs)]).x_adv

    def theirs(eps: float) -> Any:
        attack = torchattacks_fab(counter, eps, steps)
        return lambda xs=x, ys=y: attack(xs.clone(), ys.clone())

    brittle(1, None)(x[:2], y[:2])  # untimed warm-ups
    theirs(1.0)(x[:2], y[:2])

    runs: dict[str, dict[str, Any]] = {}
    measured: dict[str, dict[str, Any]] = {}
    plan = [
        ("torchattacks FAB multi-targeted, eps 1", "minimal", theirs(1.0)),
        ("brittle FAB-T, 1 target, no eps", "minimal", brittle(1, None)),
        ("brittle FAB-T, 9 targets, no eps", "minimal", brittle(9, None)),
        (f"torchattacks FAB multi-targeted, eps {EPS:g}", "budget", theirs(EPS)),
        (f"brittle FAB-T, 9 targets, eps {EPS:g}", "budget", brittle(9, EPS)),
    ]
    for label, setting, fn in plan:
        x_adv, row = timed(counter, fn)
        m = measure(classifier.module, x, y, x_adv)
        measured[label] = m
        runs[label] = {"label": label, "setting": setting, **summary(row, m, n)}
        print(
            f"{label:45s} fooled {runs[label]['fooled']:4d} median "
            f"{fmt(runs[label]['median_linf_fooled'])} {row['seconds']:7.1f} s",
            flush=True,
        )
    reference = measured["torchattacks FAB multi-targeted, eps 1"]
    pairs = {
        label: compare(measured[label], reference)
        for label in ("brittle FAB-T, 1 target, no eps", "brittle FAB-T, 9 targets, no eps")
    }
    clean = measured[plan[0][0]]["clean"]
    data = {
        "meta": {
            "n": n,
            "eps": EPS,
            "steps": steps,
            "threads": args.threads,
            "clean_correct": int(clean.sum()),
            "model": args.model,
            "test_accuracy": float(classifier.meta["test_accuracy"]),
            "torchattacks": torchattacks.__version__,
            "machine": common.machine(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "minimal": [r for r in runs.values() if r["setting"] == "minimal"],
        "minimal_pairs": pairs,
        "budget": [r for r in runs.values() if r["setting"] == "budget"],
    }
    full = n == FULL_N and steps == STEPS and args.model == "pgd"
    stem = (
        "fab" if full else f"fab_{args.model}" if n == FULL_N and steps == STEPS else "fab_partial"
    )
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{stem}.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(out / f"{stem}.md", markdown(data))
    print(f"wrote {out / (stem + '.md')} and {out / (stem + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
