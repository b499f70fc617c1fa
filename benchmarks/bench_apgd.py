"""APGD-CE, APGD-DLR and APGD-T (Croce & Hein 2020): brittle against torchattacks.

    python benchmarks/bench_apgd.py            # first 1,000 MNIST test images, eps 0.3 and 0.1
    python benchmarks/bench_apgd.py --n 200 --eps 0.3

Both libraries attack the same ``nn.Module`` (the zoo LeNet of ``common.trained_lenet``,
trained once on full MNIST and cached; the data are found as in the other benchmarks, in
``$BRITTLE_DATA/mnist`` or ``../shared/data/mnist``), wrapped in ``common.CountingModule``,
on the same images in batches of 100 with ``torch.set_num_threads(2)``. The settings are the
same: Linf, 100 steps, one restart, rho 0.75, and for APGD-T the 9 classes of highest clean
logit after the label (torchattacks' ``n_classes=10``). Each library gets an untimed warm-up
on two images, then one timed run, its order alternating from row to row.

What is measured, the same way for both:
- robust accuracy: the share of the images the model still classifies correctly when run on
  the returned images (the libraries' own flags are not used; clean errors count as broken);
- wall time of the attack calls, and the ratio torchattacks / brittle;
- gradient evaluations per image (per-sample backward passes to the input, counted by the
  wrapper) and forward passes per image;
- returned images outside [0, 1] or over the budget (none expected).

Writes ``benchmarks/results/apgd.md`` and ``apgd.json`` for the full run (n = 1,000, both
budgets); another ``--n`` or ``--eps`` writes ``apgd_partial.*``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import common
from brittle.files import write_text_atomic

RESULTS = common.REPO / "benchmarks" / "results"
STEPS = 100
TARGETS = 9

Runner = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(images, labels, their indices in the test set) -> the returned images."""


def runners(
    variant: str, eps: float, counter: common.CountingModule, classifier: Any
) -> dict[str, Runner]:
    """The two libraries' calls for one attack (brittle seeds each image's random start by
    its index; torchattacks draws from its global generator)."""
    import torchattacks

    from brittle.attacks import APGD, APGDT
    from brittle.attacks.apgd import APGDLoss

    module = common.torchattacks_model(counter)
    if variant == "apgd-t":
        ours: Any = APGDT(eps, steps=STEPS, n_target_classes=TARGETS)
        theirs: Any = torchattacks.APGDT(
            module, norm="Linf", eps=eps, steps=STEPS, n_classes=TARGETS + 1
        )
    else:
        loss: APGDLoss = "dlr" if variant == "apgd-dlr" else "ce"
        ours = APGD(eps, steps=STEPS, loss=loss)
        theirs = torchattacks.APGD(module, norm="Linf", eps=eps, steps=STEPS, loss=loss)
    return {
        "brittle": lambda x, y, ids: ours(classifier, x, y, ids=ids).x_adv,
        "torchattacks": lambda x, y, ids: theirs(x, y),
    }


def measure(
    run: Runner, counter: common.CountingModule, x: Tensor, y: Tensor, eps: float, batch: int
) -> dict[str, Any]:
    """One timed pass over ``x`` in batches; the model's verdict on what came back."""
    index = torch.arange(len(x))
    counter.reset()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    parts = [run(x[ids].clone(), y[ids].clone(), ids).detach() for ids in index.split(batch)]
    seconds = time.perf_counter() - start
    gradients, forwards = counter.gradients, counter.forwards
    x_adv = torch.cat(parts)
    with torch.no_grad():
        correct = torch.cat([counter.module(b).argmax(1) for b in x_adv.split(500)]) == y
    delta = (x_adv - x).flatten(1)
    return {
        "robust": int(correct.sum()),
        "robust_accuracy": float(correct.float().mean()),
        "seconds": seconds,
        "gradients_per_image": gradients / len(x),
        "forwards_per_image": forwards / len(x),
        "over_budget": int((delta.abs().amax(1) > eps + 1e-6).sum()),
        "out_of_box": int(((x_adv < 0) | (x_adv > 1)).flatten(1).any(1).sum()),
        "load_1min": [load, os.getloadavg()[0]],
    }


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    lines = [
        "# APGD: brittle vs torchattacks",
        "",
        f"`benchmarks/bench_apgd.py`, {meta['created']}: the zoo LeNet trained on MNIST "
        f"({meta['test_accuracy']:.4f} test accuracy), the first {meta['n']} test images "
        f"({meta['clean_correct']} classified correctly), batches of {meta['batch']}, Linf, "
        f"{STEPS} steps, 1 restart, rho 0.75; APGD-T over the {TARGETS} classes of highest "
        "clean logit after the label. Robust accuracy = share of the images the model still "
        "classifies correctly on the returned images. Ratio = torchattacks' time / brittle's.",
        "",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['logical_cpus']} logical CPUs, "
        f"torch {meta['machine']['torch']}, {meta['threads']} threads, run under nice 19; "
        f"load average (1 min) {meta['load_start']:.2f} at the start, {meta['load_end']:.2f} "
        f"at the end. Versions: torchattacks {meta['torchattacks']}.",
        "",
        "| eps | attack | brittle robust acc. | torchattacks robust acc. | brittle s | "
        "torchattacks s | ratio | brittle grads/img | torchattacks grads/img |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        b, t = r["brittle"], r["torchattacks"]
        lines.append(
            f"| {r['eps']:g} | {r['label']} | {b['robust_accuracy']:.3f} | "
            f"{t['robust_accuracy']:.3f} | {b['seconds']:.1f} | {t['seconds']:.1f} | "
            f"{t['seconds'] / b['seconds']:.2f}x | {b['gradients_per_image']:.1f} | "
            f"{t['gradients_per_image']:.1f} |"
        )
    bad = [
        f"{lib} {r['label']} eps {r['eps']:g}: {r[lib]['over_budget']} over budget, "
        f"{r[lib]['out_of_box']} outside [0, 1]"
        for r in data["rows"]
        for lib in ("brittle", "torchattacks")
        if r[lib]["over_budget"] or r[lib]["out_of_box"]
    ]
    found = "; ".join(bad) or "none"
    lines += ["", f"Returned images over the budget or outside the box: {found}."]
    return "\n".join(lines) + "\n"


LABELS = {"apgd-ce": "APGD-CE", "apgd-dlr": "APGD-DLR", "apgd-t": "APGD-T"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="first n MNIST test images")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.3, 0.1])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torchattacks

    torch.set_num_threads(args.threads)
    classifier, test = common.trained_lenet()
    counter = common.CountingModule(classifier.module).eval()
    from brittle.classifier import Classifier

    counted = Classifier(counter, bounds=(0.0, 1.0), num_classes=10, input_shape=(1, 28, 28))
    x, y = test.x[: args.n].contiguous(), test.y[: args.n].contiguous()
    load_start = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for eps in args.eps:
        for variant, label in LABELS.items():
            calls = runners(variant, eps, counter, counted)
            order = list(calls) if len(rows) % 2 == 0 else list(reversed(calls))
            row: dict[str, Any] = {"eps": eps, "attack": variant, "label": label}
            for lib in order:
                calls[lib](x[:2].clone(), y[:2].clone(), torch.arange(2))  # untimed warm-up
                row[lib] = measure(calls[lib], counter, x, y, eps, args.batch)
                print(
                    f"eps {eps:g} {label:9s} {lib:12s} robust {row[lib]['robust_accuracy']:.3f} "
                    f"{row[lib]['seconds']:7.1f} s grads/img {row[lib]['gradients_per_image']:.1f}",
                    flush=True,
                )
            rows.append(row)
    with torch.no_grad():
        clean_correct = int((classifier.module(x).argmax(1) == y).sum())
    meta = {
        "n": args.n,
        "batch": args.batch,
        "threads": args.threads,
        "steps": STEPS,
        "target_classes": TARGETS,
        "clean_correct": clean_correct,
        "test_accuracy": float(classifier.meta.get("test_accuracy", float("nan"))),
        "checkpoint": str(classifier.checkpoint.relative_to(common.REPO)),
        "recipe": common.RECIPE,
        "machine": common.machine(),
        "torchattacks": torchattacks.__version__,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    data = {"meta": meta, "rows": rows}
    full = args.n == 1000 and sorted(args.eps) == [0.1, 0.3]
    stem = "apgd" if full else "apgd_partial"
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS / f"{stem}.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(RESULTS / f"{stem}.md", markdown(data))
    print(f"wrote {RESULTS / (stem + '.md')} and {RESULTS / (stem + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
