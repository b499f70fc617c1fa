"""JSMA (Papernot et al. 2016): brittle against torchattacks, ART and advertorch, side by side.

    python benchmarks/bench_jsma.py                     # the attack table, first 100 test images
    python benchmarks/bench_jsma.py --only brittle      # rerun brittle; the peers' rows are kept
    python benchmarks/bench_jsma.py --sizes             # memory and time per iteration by size

Part one: every library attacks the same ``nn.Module`` (the zoo LeNet of
``common.trained_lenet``, wrapped in ``common.CountingModule``) on the first ``--n`` MNIST test
images in one batch, ``torch.set_num_threads(2)``, targets t = (y + 1) mod 10, theta = 1
(increase features, to the box max), Upsilon = 0.145. brittle runs twice, with the paper's
saliency alpha |beta| (``score="paper"``) and with the target-only score that ART implements
(``score="target"``). Each call is timed whole (conversions included) after an untimed
warm-up on two images. Judged the same way for everyone, by running the model on the returned
images: success = prediction == t with the images finite and inside [0, 1]; L0 = features
with x_adv != x, out of 784; the budget is ``brittle.perturbation.max_features(0.145, 784)``
features and returns above it are counted; gradients = per-sample backward passes to the
input, counted by ``CountingModule``. torchattacks attacks one image at a time (its rate does
not depend on the batch), so by default it runs on the first ``--torchattacks-n`` images only.

Part two (``--sizes``): peak memory and time per iteration of brittle's JSMA (both scores) on
a small seeded random CNN at 3x32x32 and 3x224x224, batch 8, with a budget that allows a fixed
number of pairs and least-likely targets; each configuration in a fresh subprocess (peak RSS
from ``getrusage`` minus the baseline after imports, model and inputs), with a time limit.
The peers are tried at 3x32x32 (and ART, whose search is linear in M, at 3x224x224).

Both parts write ``benchmarks/results/jsma.md`` and ``jsma.json``; a run keeps the other
part's results and, with ``--only``, the other libraries' rows (if they were measured on the
same ``--n``), each row stamped with the run that measured it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

RESULTS = Path(__file__).resolve().parent / "results"
OUT_JSON = RESULTS / "jsma.json"
OUT_MD = RESULTS / "jsma.md"
UPSILON = 0.145
THETA = 1.0
LIBRARIES = ("brittle", "torchattacks", "art", "advertorch")
FAITHFUL = ("torchattacks", "advertorch")
"""Peers that implement the paper's pair saliency alpha |beta| (ART ranks by alpha alone)."""

Runner = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, dict[str, Any]]]
"""``run(x, y, t) -> (x_adv, extra)``; ``extra`` holds what a library reports itself."""


# ------------------------------------------------------------------------------ runners
def brittle_runner(clf: Any, score: str, eps: float = UPSILON) -> Runner:
    from brittle.attacks import JSMA

    attack = JSMA(eps, theta=THETA, targeted=True, score=score)

    def run(x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Any]]:
        res = attack(clf, x, y, t)
        return res.x_adv, {
            "own_success": res.success.detach().cpu(),
            "own_gradients": int(res.gradients.sum()),
            "own_queries": res.queries.detach().cpu(),
        }

    return run


def torchattacks_runner(module: nn.Module, gamma: float = UPSILON) -> Runner:
    import torchattacks as ta

    attack = ta.JSMA(common.torchattacks_model(module), theta=THETA, gamma=gamma)
    attack.set_mode_targeted_by_label(quiet=True)  # the labels passed are the targets
    return lambda x, y, t: (attack(x, t), {})


def art_runner(module: nn.Module, batch: int, input_shape: tuple[int, ...], gamma: float) -> Runner:
    from art.attacks.evasion import SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=module.eval(),
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=common.NUM_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    attack = SaliencyMapMethod(
        classifier=classifier, theta=THETA, gamma=gamma, batch_size=batch, verbose=False
    )

    def run(x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Any]]:
        onehot = np.eye(common.NUM_CLASSES, dtype=np.float32)[t.numpy()]
        out = attack.generate(x=x.numpy(), y=onehot)
        return torch.from_numpy(np.asarray(out, dtype=np.float32)), {}

    return run


def advertorch_runner(module: nn.Module, gamma: float = UPSILON) -> Runner:
    import advertorch_stub

    attacks, _ = advertorch_stub.import_advertorch()
    attack = attacks.JacobianSaliencyMapAttack(
        module.eval(),
        num_classes=common.NUM_CLASSES,
        clip_min=0.0,
        clip_max=1.0,
        gamma=gamma,
        theta=THETA,
    )
    # advertorch changes its input in place: give it a copy
    return lambda x, y, t: (attack.perturb(x.clone(), t), {})


def versions() -> dict[str, str]:
    import platform

    out = {"python": platform.python_version(), "torch": torch.__version__}
    try:  # read-only: which brittle was measured
        head = subprocess.run(
            ["git", "-C", str(common.REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(common.REPO), "status", "--porcelain", "--", "src/brittle/attacks"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        out["brittle_commit"] = head + (" (src/brittle/attacks modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        out["brittle_commit"] = "unknown"
    for name in ("brittle", "torchattacks", "art", "advertorch"):
        try:
            if name == "advertorch":
                import advertorch_stub

                advertorch_stub.install()
            out[name] = str(__import__(name).__version__)
        except Exception as err:  # reported, not fatal
            out[name] = f"unavailable ({type(err).__name__})"
    return out


# ------------------------------------------------------------------------------ part one
METHODS: dict[str, tuple[str, str]] = {
    # key: (library, label)
    "brittle_paper": ("brittle", 'brittle JSMA(score="paper")'),
    "brittle_target": ("brittle", 'brittle JSMA(score="target")'),
    "torchattacks": ("torchattacks", "torchattacks.JSMA"),
    "advertorch": ("advertorch", "advertorch JacobianSaliencyMapAttack"),
    "art": ("art", "ART SaliencyMapMethod"),
}
NOTES = {
    "brittle_paper": "the paper's pair saliency alpha |beta|, exact pair search",
    "brittle_target": "target-only score (alpha alone), as ART",
    "torchattacks": "paper's saliency; one image at a time; Jacobian by 10 backward passes",
    "advertorch": "paper's saliency, batched M x M search; Jacobian by 10 backward passes; "
    "runs until every sample is done or int(M Upsilon / 2) iterations; imported through "
    "benchmarks/advertorch_stub.py",
    "art": "target-only score (the two largest dF_t/dx_i), not the paper's alpha |beta|; "
    "stops once the changed share exceeds Upsilon",
}


def build_runner(key: str, counter: common.CountingModule, clf: Any, n: int) -> Runner:
    if key == "brittle_paper":
        return brittle_runner(clf, "paper")
    if key == "brittle_target":
        return brittle_runner(clf, "target")
    if key == "torchattacks":
        return torchattacks_runner(counter)
    if key == "art":
        return art_runner(counter, n, common.INPUT_SHAPE, UPSILON)
    if key == "advertorch":
        return advertorch_runner(counter)
    raise ValueError(key)


def judge(module: nn.Module, x: Tensor, t: Tensor, x_adv: Tensor, limit: int) -> dict[str, Any]:
    """The model's verdict on the returned images, the same for every library."""
    x_adv = x_adv.detach().to(torch.float32).cpu()
    finite = torch.isfinite(x_adv).flatten(1).all(1)
    safe = torch.where(finite.view(-1, *([1] * (x.dim() - 1))), x_adv, x)
    with torch.no_grad():
        pred = module(safe).argmax(1)
    in_box = ((safe >= 0) & (safe <= 1)).flatten(1).all(1) & finite
    changed = (safe != x).flatten(1).sum(1)
    over = changed > limit
    success = (pred == t) & in_box
    m = x[0].numel()
    l0 = changed.to(torch.float64) / m
    return {
        "success": success,
        "successes": int(success.sum()),
        "success_rate": float(success.float().mean()),
        "success_within_budget_rate": float((success & ~over).float().mean()),
        "mean_l0": float(l0[success].mean()) if bool(success.any()) else math.nan,
        "mean_changed_features": float(changed[success].float().mean())
        if bool(success.any())
        else math.nan,
        "max_changed_features": int(changed.max()),
        "over_budget": int(over.sum()),
        "out_of_box": int((~in_box).sum()),
    }


def probe(module: nn.Module, x: Tensor, threads: int, passes: int = 50) -> dict[str, float]:
    """A contention check: seconds for ``passes`` forward + backward passes of ``module`` on
    ``x`` at ``threads`` threads and at one. On an idle machine two threads are not slower;
    when another job holds a core, two OpenMP threads can be 10-50x slower than one, and every
    timing of that row is the machine's, not the library's."""
    out: dict[str, float] = {}
    for n in (threads, 1):
        torch.set_num_threads(n)
        start = time.perf_counter()
        for _ in range(passes):
            xx = x.clone().requires_grad_(True)
            torch.autograd.grad(module(xx)[:, 0].sum(), xx)
        out[f"threads_{n}"] = time.perf_counter() - start
    torch.set_num_threads(threads)
    return out


def contended(p: dict[str, float] | None) -> bool:
    if not p or len(p) < 2:
        return False
    many = max(p, key=lambda k: int(k.split("_")[1]))
    return p[many] > 2.0 * p["threads_1"]


def measure(
    key: str,
    counter: common.CountingModule,
    clf: Any,
    x: Tensor,
    y: Tensor,
    t: Tensor,
    limit: int,
    run_id: str,
) -> dict[str, Any]:
    lib, label = METHODS[key]
    n = len(x)
    row: dict[str, Any] = {
        "key": key,
        "library": lib,
        "method": label,
        "n": n,
        "note": NOTES[key],
        "run": run_id,
    }
    try:
        run = build_runner(key, counter, clf, n)
        run(x[:2].clone(), y[:2].clone(), t[:2].clone())  # untimed warm-up
    except Exception as err:
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = traceback.format_exc(limit=6)
        return row
    counter.reset()
    torch.manual_seed(0)
    np.random.seed(0)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        x_adv, extra = run(x.clone(), y.clone(), t.clone())
    except Exception as err:
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = traceback.format_exc(limit=6)
        return row
    seconds = time.perf_counter() - start
    verdict = judge(counter.module, x, t, x_adv, limit)
    success = verdict.pop("success")
    row.update(verdict)
    row.update(
        seconds=seconds,
        samples_per_s=n / seconds,
        gradients_per_sample=counter.gradients / n,
        forwards_per_sample=counter.forwards / n,
        load_1min=[load_before, os.getloadavg()[0]],
    )
    if "own_gradients" in extra:
        row["own_gradients_per_sample"] = extra["own_gradients"] / n
        row["iterations_per_sample"] = float(extra["own_queries"].float().mean())
        row["own_success_disagrees"] = int((extra["own_success"].bool() != success).sum())
    return row


def part_one(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    from brittle.classifier import Classifier
    from brittle.perturbation import max_features

    classifier, test = common.trained_lenet()
    counter = common.CountingModule(classifier.module).eval()
    clf = Classifier(counter, bounds=(0.0, 1.0), num_classes=10, input_shape=common.INPUT_SHAPE)
    x, y = test.x[: args.n].contiguous(), test.y[: args.n].contiguous()
    t = (y + 1) % common.NUM_CLASSES
    m = int(np.prod(common.INPUT_SHAPE))
    limit = max_features(UPSILON, m)
    with torch.no_grad():
        clean = classifier.module(x).argmax(1)
    rows: list[dict[str, Any]] = []
    for key, (lib, _) in METHODS.items():
        if args.only is not None and lib not in args.only:
            continue
        nx, ny, nt = x, y, t
        if key == "torchattacks" and 0 < args.torchattacks_n < len(x):
            nx, ny, nt = (
                x[: args.torchattacks_n],
                y[: args.torchattacks_n],
                t[: args.torchattacks_n],
            )
        check = probe(classifier.module, x[:4], args.threads)
        row = measure(key, counter, clf, nx, ny, nt, limit, run_id)
        row["probe_before"] = check
        row["probe_after"] = probe(classifier.module, x[:4], args.threads)
        if row["n"] < len(x):
            row["note"] += f"; first {row['n']} images only (one image at a time: slow)"
        rows.append(row)
        print_row(row)
    return {
        "n": args.n,
        "batch": args.n,
        "threads": args.threads,
        "upsilon": UPSILON,
        "theta": THETA,
        "features": m,
        "budget_features": limit,
        "targets": "(y + 1) mod 10",
        "clean_correct": int((clean == y).sum()),
        "clean_is_target": int((clean == t).sum()),
        "model": {
            "checkpoint": str(classifier.checkpoint.relative_to(common.REPO)),
            "test_accuracy": float(classifier.meta.get("test_accuracy", math.nan)),
        },
        "rows": rows,
    }


def print_row(row: dict[str, Any]) -> None:
    if "error" in row:
        print(f"{row['method']:40s} ERROR {row['error'][:200]}", flush=True)
        return
    print(
        f"{row['method']:40s} n={row['n']:4d} {row['samples_per_s']:8.2f}/s "
        f"success {row['success_rate']:.3f} L0 {100 * row['mean_l0']:.2f}% "
        f"over budget {row['over_budget']} grads/sample {row['gradients_per_sample']:.1f}",
        flush=True,
    )


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's three speed targets, from the rows (ratios of samples/s)."""
    ok = {r["key"]: r for r in rows if "error" not in r}
    out: list[dict[str, Any]] = []

    def add(
        name: str,
        b: dict[str, Any],
        p: dict[str, Any],
        needed: float,
        quality: bool | None,
        detail: str,
    ) -> None:
        ratio = b["samples_per_s"] / p["samples_per_s"]
        out.append(
            {
                "target": name,
                "brittle": b["key"],
                "peer": p["key"],
                "ratio": ratio,
                "needed": needed,
                "quality": quality,
                "quality_detail": detail,
                "same_run": b["run"] == p["run"],
                "met": ratio >= needed and quality is not False,
            }
        )

    def detail(b: dict[str, Any], p: dict[str, Any]) -> str:
        return (
            f"success {b['success_rate']:.3f} vs {p['success_rate']:.3f}, mean L0 "
            f"{100 * b['mean_l0']:.2f}% vs {100 * p['mean_l0']:.2f}%"
        )

    paper, target = ok.get("brittle_paper"), ok.get("brittle_target")
    faithful = [ok[k] for k in FAITHFUL if k in ok]
    if paper and faithful:
        p = max(faithful, key=lambda r: r["samples_per_s"])
        add(
            'score="paper" >= 10x the fastest faithful peer', paper, p, 10.0, None, detail(paper, p)
        )
    if paper and "art" in ok:
        add('score="paper" >= 2x ART', paper, ok["art"], 2.0, None, detail(paper, ok["art"]))
    if target and "art" in ok:
        a = ok["art"]
        quality = target["success_rate"] >= a["success_rate"] and target["mean_l0"] <= a["mean_l0"]
        add(
            'score="target" >= 4x ART at equal or better success and L0',
            target,
            a,
            4.0,
            quality,
            detail(target, a),
        )
    return out


# ------------------------------------------------------------------------------ part two
SIZE_SHAPES = ((3, 32, 32), (3, 224, 224))
SIZE_BATCH = 8
PAIRS = {32: 10, 224: 10}
"""Pairs the budget allows (the run does pairs + 1 saliency evaluations, the last one finding
no room) unless a sample reaches its target first."""


def size_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()


def maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def size_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One configuration, in this (fresh) process; prints its baseline first."""
    from brittle.classifier import Classifier

    torch.set_num_threads(spec["threads"])
    shape = tuple(spec["shape"])
    m = int(np.prod(shape))
    pairs = int(spec["pairs"])
    lib = spec["lib"]
    model = size_model()
    counter = common.CountingModule(model).eval()
    x = torch.rand(SIZE_BATCH, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    y, t = logits.argmax(1), logits.argmin(1)  # least-likely targets: not reached quickly
    if lib == "brittle":
        from brittle.perturbation import max_features

        eps = (2 * pairs + 0.5) / m
        assert max_features(eps, m) == 2 * pairs
        clf = Classifier(counter, bounds=(0.0, 1.0), num_classes=10, input_shape=shape)
        run = brittle_runner(clf, spec["score"], eps)
    elif lib == "torchattacks":
        run = torchattacks_runner(counter, (2 * pairs - 0.5) / m)  # ceil(M gamma / 2) = pairs
    elif lib == "advertorch":
        run = advertorch_runner(counter, (2 * pairs + 0.5) / m)  # int(M gamma / 2) = pairs
    elif lib == "art":
        run = art_runner(counter, SIZE_BATCH, shape, (2 * pairs - 1) / m)  # stops after pairs
    else:
        raise ValueError(lib)
    baseline = maxrss_kib()
    print(json.dumps({"baseline_kib": baseline}), flush=True)
    if lib == "brittle":  # untimed warm-up: one image, one pair (first-call costs)
        brittle_runner(clf, spec["score"], 2.5 / m)(x[:1].clone(), y[:1].clone(), t[:1].clone())
    else:
        run(x[:1].clone(), y[:1].clone(), t[:1].clone())
    counter.reset()
    start = time.perf_counter()
    x_adv, extra = run(x.clone(), y.clone(), t.clone())
    seconds = time.perf_counter() - start
    peak = maxrss_kib()
    changed = (x_adv.detach() != x).flatten(1).sum(1)
    with torch.no_grad():
        reached = int((model(x_adv.detach()).argmax(1) == t).sum())
    if "own_queries" in extra:
        iterations = int(extra["own_queries"].max())
        how = "res.queries.max() (saliency evaluations, the last one finding no room)"
    else:
        iterations = max(1, math.ceil(int(changed.max()) / 2))
        how = "ceil(max changed features / 2)"
    return {
        "seconds": seconds,
        "iterations": iterations,
        "iterations_from": how,
        "seconds_per_iteration": seconds / iterations,
        "baseline_kib": baseline,
        "peak_kib": peak,
        "peak_above_baseline_mib": (peak - baseline) / 1024,
        "max_changed_features": int(changed.max()),
        "reached_target": reached,
        "gradients_per_sample": counter.gradients / SIZE_BATCH,
    }


def pair_search_estimate(shape: tuple[int, ...], score: str, threads: int) -> dict[str, Any]:
    """When the full run times out: brittle's own ``best_pair`` on the first M / 16 features
    of random saliencies (batch 8), timed, times 16^2 (the search is O(M^2) per sample)."""
    from brittle.attacks import jsma

    torch.set_num_threads(threads)
    m = int(np.prod(shape))
    part = m // 16
    g = torch.Generator().manual_seed(2)
    alpha = torch.randn(SIZE_BATCH, part, generator=g)
    beta = torch.randn(SIZE_BATCH, part, generator=g)
    domain = torch.ones(SIZE_BATCH, part, dtype=torch.bool)
    start = time.perf_counter()
    jsma.best_pair(alpha, beta, domain, True, score == "paper")
    seconds = time.perf_counter() - start
    return {"part_features": part, "part_seconds": seconds, "estimate_seconds": seconds * 256}


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; on timeout, its peak RSS so far."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--size-child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hwm = None
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        except OSError:
            pass
        proc.kill()
        out, err = proc.communicate()
        lines = [json.loads(s) for s in out.splitlines() if s.startswith("{")]
        baseline = lines[0]["baseline_kib"] if lines else None
        return {
            "status": f"timeout after {timeout:g} s",
            "peak_kib_at_kill": hwm,
            "baseline_kib": baseline,
            "peak_above_baseline_mib": (hwm - baseline) / 1024 if hwm and baseline else None,
        }
    lines = [json.loads(s) for s in out.splitlines() if s.startswith("{")]
    if proc.returncode != 0 or len(lines) < 2:
        return {
            "status": f"failed (exit {proc.returncode})",
            "error": err.strip().splitlines()[-1] if err.strip() else "",
        }
    return {"status": "ok", **lines[-1]}


def pair_bytes(m: int, batch: int) -> float:
    """Bytes of one float32 M x M pair tensor for ``batch`` samples."""
    return 4.0 * batch * m * m


def part_two(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    libs = args.only if args.only is not None else LIBRARIES
    probe_model = size_model()
    probe_x = torch.rand(SIZE_BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    for shape in SIZE_SHAPES:
        side = shape[-1]
        m = int(np.prod(shape))
        pairs = PAIRS[side]
        configs: list[tuple[str, str | None]] = []
        if "brittle" in libs:
            configs += [("brittle", "paper"), ("brittle", "target")]
        configs += [(lib, None) for lib in ("torchattacks", "advertorch", "art") if lib in libs]
        for lib, score in configs:
            label = f'brittle JSMA(score="{score}")' if score else METHODS[lib][1]
            row: dict[str, Any] = {
                "input": "x".join(map(str, shape)),
                "features": m,
                "batch": SIZE_BATCH,
                "method": label,
                "library": lib,
                "pairs_allowed": pairs,
                "run": run_id,
            }
            if lib in ("torchattacks", "advertorch") and side > 32:
                per = pair_bytes(m, 1 if lib == "torchattacks" else SIZE_BATCH)
                row["status"] = (
                    f"not run: one float32 M x M pair tensor is {per / 2**30:,.0f} GiB "
                    f"({'per image' if lib == 'torchattacks' else 'for the batch'}); "
                    "the machine has 23 GiB"
                )
                rows.append(row)
                print(f"{row['input']:10s} {label:40s} {row['status']}", flush=True)
                continue
            spec = {
                "lib": lib,
                "score": score,
                "shape": list(shape),
                "pairs": pairs,
                "threads": args.threads,
            }
            row["probe_before"] = probe(probe_model, probe_x, args.threads)
            row.update(run_child(spec, args.size_timeout))
            row["probe_after"] = probe(probe_model, probe_x, args.threads)
            if lib == "brittle" and row["status"].startswith("timeout"):
                try:
                    est = pair_search_estimate(shape, str(score), args.threads)
                    row["pair_search_estimate"] = est
                except Exception as err:
                    row["pair_search_estimate"] = {"error": f"{type(err).__name__}: {err}"}
            rows.append(row)
            if row["status"] == "ok":
                print(
                    f"{row['input']:10s} {label:40s} {row['iterations']} iterations, "
                    f"{row['seconds_per_iteration']:.3f} s/iteration, peak "
                    f"+{row['peak_above_baseline_mib']:.0f} MiB over "
                    f"{row['baseline_kib'] / 1024:.0f} MiB",
                    flush=True,
                )
            else:
                print(f"{row['input']:10s} {label:40s} {row['status']} {row}", flush=True)
    return {
        "batch": SIZE_BATCH,
        "threads": args.threads,
        "timeout_s": args.size_timeout,
        "pairs": ", ".join(f"{v} at 3x{k}x{k}" for k, v in PAIRS.items()),
        "model": "seeded random CNN: conv 3->16 s2, ReLU, conv 16->32 s2, ReLU, global "
        "average pool, linear 32->10 (torch.manual_seed(0)); inputs torch.rand (seed 1); "
        "least-likely targets",
        "memory": "peak RSS (getrusage RUSAGE_SELF ru_maxrss, KiB) of a fresh subprocess after "
        "the attack, minus the same after imports, model and inputs; on timeout /proc VmHWM "
        "when killed",
        "rows": rows,
    }


# ------------------------------------------------------------------------------ output
def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def markdown(data: dict[str, Any]) -> str:
    mach = data["machine"]
    lines = ["# JSMA: brittle vs torchattacks, ART and advertorch", ""]
    one = data.get("attack")
    if one:
        rows = one["rows"]
        runs = sorted({r["run"] for r in rows})
        lines += [
            "## Setting",
            "",
            f"The zoo LeNet trained on full MNIST ({one['model']['test_accuracy']:.4f} test "
            f"accuracy, `{one['model']['checkpoint']}`), the same `nn.Module` for every library "
            f"(wrapped in `common.CountingModule`); the first {one['n']} test images "
            f"({one['clean_correct']} classified correctly, {one['clean_is_target']} already "
            f"as their target) in one batch of {one['batch']}; targets t = {one['targets']}, "
            f"theta = {one['theta']:g} (increase, to the box max), Upsilon = {one['upsilon']:g}: "
            f"at most {one['budget_features']} of the {one['features']} features "
            f"(`max_features`); torch.set_num_threads({one['threads']}). Machine: "
            f"{mach['cpu']}, {mach['logical_cpus']} logical CPUs, {mach['platform']}, Python "
            f"{mach['python']}, torch {mach['torch']}; "
            + ", ".join(
                f"{k} {v}"
                for k, v in one.get("versions", data["versions"]).items()
                if k not in ("python", "torch")
            )
            + f". Run{'s' if len(runs) > 1 else ''}: {', '.join(runs)}"
            + (
                " (rows from different runs: ratios across runs carry the machine's noise)"
                if len(runs) > 1
                else ""
            )
            + ". Load average (1 min) before/after each row is in the JSON: other jobs shared "
            "the 2 cores.",
            "",
            "Each call timed whole after a warm-up on two images. Success = the model predicts "
            "t on the returned image (finite, inside [0, 1]), over all images; mean L0 over "
            "the successes, as a share of the 784 features (x_adv != x); over budget = returns "
            f"changing more than {one['budget_features']} features. Gradients = per-sample "
            "backward passes to the input counted by the wrapper (brittle's own count in "
            "brackets). Ratios = brittle's samples/s over the row's.",
            "",
            "| method | n | samples/s | success | success within budget | mean L0 | over budget "
            "| grads/sample | brittle paper / row | brittle target / row | notes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        ok = {r["key"]: r for r in rows if "error" not in r}
        for r in rows:
            if "error" in r:
                lines.append(
                    f"| {r['method']} | {r['n']} | - | - | - | - | - | - | - | - | "
                    f"error: {r['error'][:160].replace('|', '/')} |"
                )
                continue
            ratios = [
                fmt(ok[b]["samples_per_s"] / r["samples_per_s"], ".2f") + "x" if b in ok else "-"
                for b in ("brittle_paper", "brittle_target")
            ]
            grads = fmt(r["gradients_per_sample"], ".1f")
            if "own_gradients_per_sample" in r:
                grads += f" ({r['own_gradients_per_sample']:.1f})"
            notes = [r["note"]]
            if r["out_of_box"]:
                notes.append(f"{r['out_of_box']} outside [0, 1] or not finite")
            if r.get("own_success_disagrees"):
                notes.append(f"{r['own_success_disagrees']} disagree with its own success flag")
            for when in ("before", "after"):
                p = r.get(f"probe_{when}")
                if p and contended(p):
                    many = p[f"threads_{one['threads']}"]
                    notes.append(
                        f"CONTENDED {when} (probe: {many:.2f} s at {one['threads']} threads "
                        f"vs {p['threads_1']:.2f} s at 1)"
                    )
            if r["run"] != runs[-1]:
                notes.append(f"measured in run {r['run']}")
            lines.append(
                f"| {r['method']} | {r['n']} | {r['samples_per_s']:.2f} | "
                f"{r['success_rate']:.3f} | {r['success_within_budget_rate']:.3f} | "
                f"{fmt(100 * r['mean_l0'], '.2f')}% | {r['over_budget']} | {grads} | "
                f"{ratios[0]} | {ratios[1]} | {'; '.join(notes).replace('|', chr(92) + '|')} |"
            )
        goals = data.get("targets", [])
        if goals:
            lines += ["", "## Targets", ""]
            lines += [
                "| target | vs | ratio | needed | quality | met |",
                "|---|---|---:|---:|---|---|",
            ]
            for g in goals:
                quality = g["quality_detail"]
                if g["quality"] is not None:
                    quality += f" ({'ok' if g['quality'] else 'NOT met'})"
                if not g["same_run"]:
                    quality += "; rows from different runs"
                lines.append(
                    f"| {g['target']} | {METHODS[g['peer']][1]} | {g['ratio']:.2f}x | "
                    f"{g['needed']:g}x | {quality} | {'yes' if g['met'] else 'NO'} |"
                )
    two = data.get("sizes")
    if two:
        lines += [
            "",
            "## Memory and time per iteration by input size",
            "",
            f"Batch {two['batch']}, torch.set_num_threads({two['threads']}), {two['model']}. "
            f"Budget: a fixed number of pairs ({two.get('pairs', '?')}). Memory: "
            f"{two['memory']}. Time per iteration = the call's wall time (after an untimed "
            "warm-up on one image) / iterations "
            f"(brittle: res.queries.max(), one saliency evaluation and one pair search each; "
            f"peers: ceil(most features changed / 2)). Each run limited to "
            f"{two['timeout_s']:g} s. brittle at commit "
            f"{two.get('versions', data['versions']).get('brittle_commit', '?')}.",
            "",
            "| input | method | iterations | s/iteration | peak memory above baseline | "
            "baseline | status |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for r in two["rows"]:
            status = r.get("status", "")
            est = r.get("pair_search_estimate")
            if isinstance(est, dict) and "estimate_seconds" in est:
                status += (
                    f"; one pair search estimated at {est['estimate_seconds']:,.0f} s "
                    f"(best_pair on {est['part_features']:,} features took "
                    f"{est['part_seconds']:.1f} s, x 16^2)"
                )
            if r.get("error"):
                status += f": {r['error'][:160]}"
            if contended(r.get("probe_before")) or contended(r.get("probe_after")):
                status += "; CONTENDED (the probe's 2 threads > 2x slower than 1: see the JSON)"
            peak = r.get("peak_above_baseline_mib")
            base = r.get("baseline_kib")
            lines.append(
                f"| {r['input']} | {r['method']} | {r.get('iterations', '-')} | "
                f"{fmt(r.get('seconds_per_iteration'), '.3f')} | "
                f"{fmt(peak, ',.0f')}{' MiB' if peak is not None else ''} | "
                f"{fmt(base / 1024, ',.0f') + ' MiB' if base else '-'} | "
                f"{status.replace('|', chr(92) + '|')} |"
            )
    lines += ["", f"Written by `benchmarks/bench_jsma.py`, {data['updated']}."]
    return "\n".join(lines) + "\n"


def write(data: dict[str, Any]) -> None:
    from brittle.files import write_text_atomic

    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(OUT_JSON, json.dumps(data, indent=2, default=str) + "\n")
    write_text_atomic(OUT_MD, markdown(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="first n MNIST test images (one batch)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--only", nargs="*", choices=LIBRARIES, default=None, help="libraries to (re)run"
    )
    parser.add_argument(
        "--torchattacks-n",
        type=int,
        default=20,
        help="images for torchattacks, which attacks one at a time (0: all n)",
    )
    parser.add_argument(
        "--sizes", action="store_true", help="part two (memory, time per iteration) instead"
    )
    parser.add_argument("--size-timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--size-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size_child is not None:
        print(json.dumps(size_child(json.loads(args.size_child))), flush=True)
        return 0
    torch.set_num_threads(args.threads)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    data: dict[str, Any] = {}
    if OUT_JSON.is_file():
        try:
            data = json.loads(OUT_JSON.read_text())
        except json.JSONDecodeError:
            data = {}
    if args.sizes:
        new = part_two(args, run_id)
        if args.only is not None and data.get("sizes"):
            kept = [r for r in data["sizes"]["rows"] if r["library"] not in args.only]
            new["rows"] = kept + new["rows"]
        data["sizes"] = new
    else:
        new = part_one(args, run_id)
        old = data.get("attack")
        if args.only is not None and old and old.get("n") == args.n:
            fresh = {r["key"] for r in new["rows"]}
            order = list(METHODS)
            merged = [r for r in old["rows"] if r["key"] not in fresh] + new["rows"]
            new["rows"] = sorted(merged, key=lambda r: order.index(r["key"]))
        data["attack"] = new
        data["targets"] = targets(new["rows"])
        for g in data["targets"]:
            print(
                f"{g['target']}: {g['ratio']:.2f}x vs {g['peer']} (needed {g['needed']:g}x); "
                f"{g['quality_detail']}; {'MET' if g['met'] else 'NOT MET'}"
                + ("" if g["same_run"] else " (rows from different runs)"),
                flush=True,
            )
    new["versions"] = versions()  # the versions measured, per part
    data["machine"] = common.machine()
    data["versions"] = new["versions"]
    data["updated"] = run_id
    write(data)
    print(f"wrote {OUT_MD} and {OUT_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
