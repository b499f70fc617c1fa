"""The standard suite (``--suite standard``) against torchattacks' AutoAttack, side by side.

    python benchmarks/bench_suite.py             # first 200 MNIST test images, Linf eps 0.3
    python benchmarks/bench_suite.py --n 20      # a smoke run (writes suite_partial.*)

The issue's acceptance benchmark: on the first 200 MNIST test images of a PGD-trained LeNet
at Linf eps 0.3, the standard suite's robust accuracy is at most AutoAttack's (torchattacks,
``version="standard"``) on the same images plus 0.5 points, in at most half its time.

The network is ``common.pgd_trained_lenet``: the benchmark LeNet of ``common.trained_lenet``
fine-tuned one epoch by PGD-7 adversarial training at Linf 0.3 (alpha 0.5), the recipe of
``lenet_advtrained`` in ``brittle.reproduce.fawzi2018``, trained once and cached in
``runs/cache/`` (the data are found as in the other benchmarks, in ``$BRITTLE_DATA/mnist`` or
``../shared/data/mnist``). Both libraries attack that same ``nn.Module``, wrapped in
``common.CountingModule``, with ``torch.set_num_threads(2)``, on the same images in the same
batches (by default one batch of all the images):

- brittle: ``evaluate(classifier, suite_attacks("standard", "linf", Capability.WHITE_BOX, seed=0), x, y, [eps])`` into a
  temporary result store: APGD-CE on every image, APGD-T (DLR, 9 target classes) on the
  survivors, FAB-T (9 target classes, 100 iterations) on the survivors, Square (5,000
  queries) on the survivors; the whole call is timed;
- torchattacks: ``AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10,
  seed=0)``: APGD-CE, APGD-T, FAB-T and Square (5,000 queries), each on the survivors of the
  previous ones; its calls are timed, and its robust accuracy is the share of the images
  classified correctly clean and on the returned images (its own flags are not used);
- for context (``--aa-steps 100``, the default; 0 skips it): the same AutoAttack with its
  APGD-CE, APGD-T and FAB-T at Croce & Hein's 100 steps, as brittle's APGD runs. The target
  is against torchattacks' own "standard" (10 steps).

Each library gets an untimed warm-up on two images first. The returned images of
torchattacks are checked against the box [0, 1] and the budget (the largest Linf distance is
reported); brittle's evaluation holds every attack to the budget itself (its largest Linf
distance, from the result store, is reported too). The per-sample agreement says which
images one library broke and the other did not.

Writes ``<out-dir>/suite.md`` and ``suite.json`` for the full run (n = 200, eps 0.3); other
settings write ``suite_partial.*``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import common
from brittle.files import write_text_atomic

RESULTS = common.REPO / "benchmarks" / "results"
FULL = {"n": 200, "eps": 0.3}
MARGIN = 0.005
"""The robust-accuracy target: brittle's at most AutoAttack's plus 0.5 points."""
TIME_SHARE = 0.5
"""The time target: brittle's time at most half of AutoAttack's."""
AA_ATTACKS = ("APGD-CE", "APGD-T", "FAB-T", "Square (5,000 queries)")
"""The attacks of torchattacks' AutoAttack ``standard``, in order."""
RUN_KEY = "bench-suite"
SHOWN = ("steps", "restarts", "loss", "n_target_classes", "max_queries")
"""The parameters of brittle's plans the report shows."""


def load() -> float:
    return os.getloadavg()[0]


def run_brittle(
    classifier: Any, x: Tensor, y: Tensor, eps: float, batch: int, store_path: Path
) -> tuple[Any, float, dict[str, float], dict[str, int]]:
    """The standard suite on ``x`` into a new store at ``store_path``: the evaluation, the
    wall time of the whole ``evaluate`` call, and per attack the largest Linf distance over
    the samples it broke and how many of those are over ``eps`` (from the store)."""
    from brittle.eval import ResultStore, evaluate
    from brittle.eval.suite import suite_attacks
    from brittle.threat import Capability

    plans = suite_attacks("standard", "linf", Capability.WHITE_BOX, seed=0)
    with ResultStore(store_path) as store:
        start = time.perf_counter()
        evaluation = evaluate(
            classifier,
            plans,
            (x, y),
            [eps],
            batch_size=batch,
            store=store,
            run_key=RUN_KEY,
            progress=False,
        )
        seconds = time.perf_counter() - start
        linf: dict[str, float] = {}
        over: dict[str, int] = {}
        for plan in plans:
            done = sorted(store.done(RUN_KEY, plan.key, eps))
            rows = store.result(RUN_KEY, plan.key, eps, done)
            broke = rows.linf[rows.success & rows.correct_clean]
            linf[plan.label] = float(broke.max()) if len(broke) else 0.0
            over[plan.label] = int((broke > eps + 1e-6).sum())
    return evaluation, seconds, linf, over


def autoattack(module: torch.nn.Module, eps: float, steps: int | None = None) -> Any:
    """torchattacks' AutoAttack ``standard``, recording how many images survive each attack;
    with ``steps``, its APGD-CE, APGD-T and FAB-T run that many steps (Croce & Hein's 100)
    instead of torchattacks' default of 10."""
    import torchattacks

    attack = torchattacks.AutoAttack(
        common.torchattacks_model(module),
        norm="Linf",
        eps=eps,
        version="standard",
        n_classes=10,
        seed=0,
    )
    multi = attack._autoattack
    if steps is not None:
        for member in multi.attacks:
            if hasattr(member, "steps"):
                member.steps = steps
    multi._accumulate_multi_atk_records = True
    multi._multi_atk_records = [0.0] * (1 + len(AA_ATTACKS))
    return attack


def run_autoattack(
    module: torch.nn.Module, x: Tensor, y: Tensor, eps: float, batch: int, steps: int | None = None
) -> tuple[Tensor, float, list[int]]:
    """AutoAttack on ``x`` in batches: the returned images, the wall time of the calls and
    the images still standing before and after each of its attacks (clean errors included
    in the first count; summed over the batches)."""
    attack = autoattack(module, eps, steps)
    start = time.perf_counter()
    parts = [
        attack(xb.clone(), yb.clone()).detach()
        for xb, yb in zip(x.split(batch), y.split(batch), strict=True)
    ]
    seconds = time.perf_counter() - start
    records = [int(r) for r in attack._autoattack._multi_atk_records]
    return torch.cat(parts), seconds, records


def predict(module: torch.nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return torch.cat([module(b).argmax(1) for b in x.split(500)])


def markdown(data: dict[str, Any]) -> str:
    meta, b, t, agree, targets = (
        data["meta"],
        data["brittle"],
        data["torchattacks"],
        data["agreement"],
        data["targets"],
    )
    model = meta["model"]
    n = meta["n"]
    batching = (
        "one batch of all the images" if meta["batch"] >= n else f"batches of {meta['batch']}"
    )
    lines = [
        "# The standard suite against AutoAttack (torchattacks, standard)",
        "",
        f"`benchmarks/bench_suite.py`, {meta['created']}. Model: {model['description']}; "
        f"{model['test_accuracy']:.2%} clean accuracy on the 10,000 MNIST test images, "
        f"{model['pgd_robust_accuracy']:.1%} robust accuracy under brittle's PGD at Linf "
        f"{model['pgd_check']['eps']:g} ({model['pgd_check']['steps']} steps, "
        f"{model['pgd_check']['restarts']} random start) on the first "
        f"{model['pgd_check']['n']:,} test images. Images: the first {n} test images "
        f"({meta['clean_correct']} classified correctly), Linf eps {meta['eps']:g}, both "
        f"libraries on the same `nn.Module` in {batching}, after an untimed warm-up on two "
        "images. Robust accuracy = share of the images classified correctly clean and after "
        "the attacks (for torchattacks: the model run on its returned images).",
        "",
        f"brittle: `{meta['brittle_suite']}` ("
        + "; ".join(
            f"{p['label']}: "
            + ", ".join(f"{k} {v}" for k, v in p["params"].items() if k in SHOWN)
            + (", on the survivors" if p["survivors_only"] else "")
            for p in meta["brittle_plans"]
        )
        + "). "
        f"torchattacks: `{meta['autoattack']}`, whose APGD-CE, APGD-T and FAB-T run "
        "torchattacks' default of 10 steps (1 restart; Croce & Hein's AutoAttack runs 100), "
        "and Square 5,000 queries.",
        "",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['logical_cpus']} logical CPUs, "
        f"torch {meta['machine']['torch']}, {meta['threads']} threads; "
        f"torchattacks {meta['torchattacks']}. Load average (1 min): "
        f"{meta['load_start']:.2f} at the start, {b['load_1min'][0]:.2f} → "
        f"{b['load_1min'][1]:.2f} over brittle's run, {t['load_1min'][0]:.2f} → "
        f"{t['load_1min'][1]:.2f} over torchattacks', {meta['load_end']:.2f} at the end.",
        "",
        "| attack | robust acc. | robust | seconds | ratio AA time / this time | "
        "grads/img | forwards/img | max Linf |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| brittle `--suite standard` (APGD-CE, APGD-T, FAB-T, Square 5,000) | "
        f"{b['robust_accuracy']:.3f} | {b['robust']}/{n} | {b['seconds']:.1f} | "
        f"{t['seconds'] / b['seconds']:.2f}x | {b['gradients_per_image']:.1f} | "
        f"{b['forwards_per_image']:.1f} | {b['max_linf']:.4f} |",
        f"| torchattacks AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square 5,000) | "
        f"{t['robust_accuracy']:.3f} | {t['robust']}/{n} | {t['seconds']:.1f} | 1.00x | "
        f"{t['gradients_per_image']:.1f} | {t['forwards_per_image']:.1f} | "
        f"{t['max_linf']:.4f} |",
    ]
    full_aa = data.get("autoattack_100")
    if full_aa:
        lines.append(
            f"| torchattacks AutoAttack standard at Croce & Hein's {full_aa['steps']} steps "
            f"(context, not the target) | {full_aa['robust_accuracy']:.3f} | "
            f"{full_aa['robust']}/{n} | {full_aa['seconds']:.1f} | "
            f"{t['seconds'] / full_aa['seconds']:.2f}x | {full_aa['gradients_per_image']:.1f} | "
            f"{full_aa['forwards_per_image']:.1f} | {full_aa['max_linf']:.4f} |"
        )
    lines += [
        "",
        f"Seconds are wall time: brittle's of the whole `evaluate` call (its attack loop "
        f"alone: {b['attack_seconds']:.1f} s), torchattacks' of its attack calls. CPU time "
        f"of the process (both threads): brittle {b['cpu_seconds']:.1f} s, torchattacks "
        f"{t['cpu_seconds']:.1f} s (ratio {t['cpu_seconds'] / b['cpu_seconds']:.2f}x).",
        "",
        "## brittle, per attack",
        "",
        f"{meta['clean_correct']} images classified correctly; each attack runs on the "
        "images the earlier ones left standing (APGD-CE on all).",
        "",
        "| attack | images attacked | broken (first) | broken alone | seconds | "
        "gradient evaluations | queries |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in b["per_attack"]:
        lines.append(
            f"| {row['label']} | {row['n']} | {row['broken_by']} | {row['broken_alone']} | "
            f"{row['seconds']:.1f} | {row['gradient_evaluations']:,} | {row['queries']:,} |"
        )
    lines += [
        "",
        "## torchattacks, per attack",
        "",
        "| attack | images standing before | broken |",
        "|---|---:|---:|",
    ]
    for row in t["per_attack"]:
        lines.append(f"| {row['label']} | {row['before']} | {row['broken']} |")
    lines += [
        "",
        "(APGD-CE's count includes the clean errors, which torchattacks attacks too.)",
        "",
        "## Per-sample agreement",
        "",
        f"- robust for both: {agree['both_robust']}; broken (or misclassified) for both: "
        f"{agree['both_broken']}",
        f"- broken by brittle, not by AutoAttack: {agree['brittle_only']} "
        f"(test ids {agree['brittle_only_ids']})",
        f"- broken by AutoAttack, not by brittle: {agree['aa_only']} "
        f"(test ids {agree['aa_only_ids']})",
        "",
        "## Targets",
        "",
    ]
    acc, time_ = targets["robust_accuracy"], targets["time"]
    lines += [
        f"- robust accuracy, brittle ≤ AutoAttack + 0.5 points: {acc['brittle']:.3f} ≤ "
        f"{acc['autoattack']:.3f} + 0.005 = {acc['bound']:.3f}: "
        f"**{'met' if acc['met'] else 'not met'}**",
        f"- time, brittle ≤ 0.5 × AutoAttack: {time_['brittle']:.1f} s ≤ 0.5 × "
        f"{time_['autoattack']:.1f} s = {time_['bound']:.1f} s: "
        f"**{'met' if time_['met'] else 'not met'}** (AutoAttack / brittle = "
        f"{time_['ratio']:.2f}x)",
    ]
    if full_aa:
        lines.append(
            f"- context: AutoAttack with its APGD-CE, APGD-T and FAB-T at {full_aa['steps']} "
            f"steps (the paper's setting, as brittle's APGD runs) took {full_aa['seconds']:.1f} "
            f"s: brittle / that = {b['seconds'] / full_aa['seconds']:.2f}"
        )
    lines += [
        "",
        f"Returned images over the budget or outside [0, 1]: torchattacks "
        f"{t['over_budget']} over the budget, {t['out_of_box']} outside the box; brittle "
        f"{b['over_budget']} over the budget.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=FULL["n"], help="first n MNIST test images")
    parser.add_argument("--eps", type=float, default=FULL["eps"], help="the Linf budget")
    parser.add_argument(
        "--batch", type=int, default=0, help="images per batch, both libraries (0: all at once)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--aa-steps",
        type=int,
        default=100,
        help="also run AutoAttack with its APGD and FAB at this many steps (0: skip)",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import torchattacks

    from brittle.classifier import Classifier
    from brittle.eval.suite import suite_attacks
    from brittle.threat import Capability

    torch.set_num_threads(args.threads)
    load_start = load()
    classifier, test = common.pgd_trained_lenet()
    counter = common.CountingModule(classifier.module).eval()
    counted = Classifier(
        counter, bounds=(0.0, 1.0), num_classes=common.NUM_CLASSES, input_shape=common.INPUT_SHAPE
    )
    n, eps = args.n, args.eps
    batch = args.batch if args.batch > 0 else n
    x, y = test.x[:n].contiguous(), test.y[:n].contiguous()
    clean = predict(classifier.module, x) == y

    with tempfile.TemporaryDirectory(prefix="bench_suite_") as tmp:
        # untimed warm-ups on two images
        run_brittle(counted, x[:2], y[:2], eps, batch, Path(tmp) / "warmup.sqlite")
        run_autoattack(counter, x[:2], y[:2], eps, batch)

        counter.reset()
        b_load = [load()]
        b_cpu = time.process_time()
        evaluation, b_seconds, b_linf, b_over = run_brittle(
            counted, x, y, eps, batch, Path(tmp) / "suite.sqlite"
        )
        b_cpu = time.process_time() - b_cpu
        b_load.append(load())
    b_grads, b_forwards = counter.gradients, counter.forwards
    summary = evaluation.summaries[0]
    worst = evaluation.worst[0]
    b_robust = worst.robust.clone()
    per_attack = []
    for label in evaluation.attacks:
        own = evaluation.per_attack[label][0]
        per_attack.append(
            {
                "label": label,
                "n": own["n"],
                "broken_by": summary["broken_by"][label],
                "broken_alone": summary["broken_alone"][label],
                "seconds": own["seconds"],
                "gradient_evaluations": own["gradient_evaluations"],
                "queries": own["queries"],
                "robust_accuracy_on_attacked": own["robust_accuracy"],
                "max_linf": b_linf[label],
            }
        )
    b_max = max(b_linf.values())
    brittle = {
        "robust": int(b_robust.sum()),
        "robust_accuracy": float(b_robust.float().mean()),
        "robust_accuracy_reported": summary["robust_accuracy"],
        "robust_count_reported": summary["robust_count"],
        "robust_ci": [summary["robust_ci_low"], summary["robust_ci_high"]],
        "seconds": b_seconds,
        "cpu_seconds": b_cpu,
        "attack_seconds": evaluation.seconds,
        "gradients_per_image": b_grads / n,
        "forwards_per_image": b_forwards / n,
        "max_linf": b_max,
        "over_budget": sum(b_over.values()),
        "broken_by": summary["broken_by"],
        "broken_alone": summary["broken_alone"],
        "per_attack": per_attack,
        "load_1min": b_load,
    }
    print(
        f"brittle      robust {brittle['robust_accuracy']:.3f} {b_seconds:7.1f} s "
        f"broken_by {summary['broken_by']}",
        flush=True,
    )

    counter.reset()
    t_load = [load()]
    t_cpu = time.process_time()
    x_adv, t_seconds, records = run_autoattack(counter, x, y, eps, batch)
    t_cpu = time.process_time() - t_cpu
    t_load.append(load())
    t_grads, t_forwards = counter.gradients, counter.forwards
    adv_correct = predict(classifier.module, x_adv) == y
    t_robust = clean & adv_correct
    delta = (x_adv - x).flatten(1).abs().amax(1)
    records += [records[-1]] * (1 + len(AA_ATTACKS) - len(records))  # it stops when none stand
    torchattacks_row = {
        "robust": int(t_robust.sum()),
        "robust_accuracy": float(t_robust.float().mean()),
        "clean_errors_classified_correctly_after": int((~clean & adv_correct).sum()),
        "seconds": t_seconds,
        "cpu_seconds": t_cpu,
        "gradients_per_image": t_grads / n,
        "forwards_per_image": t_forwards / n,
        "max_linf": float(delta.max()),
        "over_budget": int((delta > eps + 1e-6).sum()),
        "out_of_box": int(((x_adv < 0) | (x_adv > 1)).flatten(1).any(1).sum()),
        "standing": records,
        "per_attack": [
            {"label": label, "before": records[i], "broken": records[i] - records[i + 1]}
            for i, label in enumerate(AA_ATTACKS)
        ],
        "load_1min": t_load,
    }
    print(
        f"torchattacks robust {torchattacks_row['robust_accuracy']:.3f} {t_seconds:7.1f} s "
        f"standing {records}",
        flush=True,
    )

    full_aa = None
    if args.aa_steps:
        counter.reset()
        x_full, f_seconds, _ = run_autoattack(counter, x, y, eps, batch, args.aa_steps)
        f_delta = (x_full - x).flatten(1).abs().amax(1)
        f_robust = clean & (predict(classifier.module, x_full) == y)
        full_aa = {
            "steps": args.aa_steps,
            "robust": int(f_robust.sum()),
            "robust_accuracy": float(f_robust.float().mean()),
            "seconds": f_seconds,
            "gradients_per_image": counter.gradients / n,
            "forwards_per_image": counter.forwards / n,
            "max_linf": float(f_delta.max()),
            "over_budget": int((f_delta > eps + 1e-6).sum()),
        }
        print(f"AutoAttack {args.aa_steps} steps robust {full_aa['robust_accuracy']:.3f} "
              f"{f_seconds:7.1f} s", flush=True)  # fmt: skip

    ids = evaluation.ids
    assert torch.equal(ids, torch.arange(n)), "the evaluation's samples are the first n"
    brittle_only = ~b_robust & t_robust
    aa_only = b_robust & ~t_robust
    agreement = {
        "both_robust": int((b_robust & t_robust).sum()),
        "both_broken": int((~b_robust & ~t_robust).sum()),
        "brittle_only": int(brittle_only.sum()),
        "aa_only": int(aa_only.sum()),
        "brittle_only_ids": ids[brittle_only].tolist(),
        "aa_only_ids": ids[aa_only].tolist(),
    }
    bound = torchattacks_row["robust_accuracy"] + MARGIN
    targets = {
        "robust_accuracy": {
            "brittle": brittle["robust_accuracy"],
            "autoattack": torchattacks_row["robust_accuracy"],
            "bound": bound,
            "met": brittle["robust_accuracy"] <= bound + 1e-12,
        },
        "time": {
            "brittle": b_seconds,
            "autoattack": t_seconds,
            "bound": TIME_SHARE * t_seconds,
            "ratio": t_seconds / b_seconds,
            "met": b_seconds <= TIME_SHARE * t_seconds,
        },
    }
    meta = {
        "n": n,
        "eps": eps,
        "batch": batch,
        "threads": args.threads,
        "clean_correct": int(clean.sum()),
        "model": {
            "description": "the benchmark LeNet (`common.trained_lenet`) fine-tuned one epoch "
            "by PGD-7 adversarial training at Linf 0.3, alpha 0.5 (`common.pgd_trained_lenet`, "
            "the recipe of fawzi2018's `lenet_advtrained`)",
            "checkpoint": str(classifier.checkpoint.relative_to(common.REPO)),
            "test_accuracy": float(classifier.meta["test_accuracy"]),
            "pgd_robust_accuracy": float(classifier.meta["pgd_robust_accuracy"]),
            "pgd_check": classifier.meta["pgd_check"],
            "recipe": common.ADV_RECIPE,
            "base_recipe": common.RECIPE,
        },
        "brittle_suite": "suite_attacks('standard', 'linf', WHITE_BOX, seed=0): "
        + ", ".join(evaluation.attacks),
        "brittle_plans": [
            {"label": p.label, **p.spec, "survivors_only": p.survivors_only}
            for p in suite_attacks("standard", "linf", Capability.WHITE_BOX, seed=0)
        ],
        "autoattack": "torchattacks.AutoAttack(model, norm='Linf', eps=eps, "
        "version='standard', n_classes=10, seed=0)",
        "machine": common.machine(),
        "torchattacks": torchattacks.__version__,
        "load_start": load_start,
        "load_end": load(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    data = {
        "meta": meta,
        "brittle": brittle,
        "torchattacks": torchattacks_row,
        "agreement": agreement,
        "targets": targets,
        "autoattack_100": full_aa,
    }
    full = n == FULL["n"] and eps == FULL["eps"] and batch == n
    stem = "suite" if full else "suite_partial"
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{stem}.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(out / f"{stem}.md", markdown(data))
    print(f"wrote {out / (stem + '.md')} and {out / (stem + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
