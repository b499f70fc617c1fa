"""The device check: brittle's checks that matter on a GPU, and its speed against torchattacks.

    python benchmarks/gpu_check.py                      # on a CUDA machine: under 8 minutes
    python benchmarks/gpu_check.py --quick --device cpu --out /tmp/gpu_quick   # smoke test

Five steps, each with a time budget printed as it starts, under one deadline (7.5 minutes,
2 in ``--quick``): a step gets its budget or the time left if less, and within a step no
attack or measurement is started once that is spent; a step with less than a third of its
budget left is reported ``not run: time budget`` instead of overrunning.

1. **contract**: every registered attack keeps the attack contract
   (:func:`brittle.testing.check_attack`, with the quick arguments of
   ``tests/test_attack_contract.py``) on the tiny model, and on the same model placed on the
   device: budget and box, the model's verdict, counted queries and gradients, module state,
   per-sample randomness at batch sizes 1, 7 and 64, a batch of 0.
2. **model**: a CIFAR ResNet-18 (``benchmarks/resnet.py``) trained briefly on a synthetic
   10-class task of 3x32x32 images (a smooth colour pattern per class under Gaussian noise,
   fresh batches every step); its weights and the test images are written as the files the
   command line reads (``--model resnet.py:resnet18 --weights``, an ``.npz``).
3. **evaluate + resume**: ``brittle.evaluate`` (FGSM and PGD-10 at 2/255 and 8/255) into a
   folder on the device, then the same call again: it must attack nothing (the store's
   batches and rows unchanged) and report the same figures.
4. **throughput**: PGD-10, APGD-CE, Square (1,000 queries) and FGSM at Linf 8/255, brittle
   (in float32 and with ``amp="bf16"``) and torchattacks on the same module, the same images, batches and budget: samples/s
   (the device synchronised around the timed calls, after an untimed warm-up), their ratio,
   and each one's success rate measured by running the model on what it returned (among
   the samples it classified correctly), with any returned image outside the box or budget
   counted. brittle's PGD runs every step (``early_stop=False``), as torchattacks' does.
5. **torchrun**: ``python -m torch.distributed.run --standalone --nproc-per-node N -m brittle
   evaluate ... --num-samples`` in a subprocess, N = 2 with two GPUs (NCCL), else 1 (or
   ``--ranks N``; gloo on the CPU). Its store must hold every sample once (the batches'
   samples add up to the rows) with the same per-sample verdicts as step 3's one-process
   store. With N > 1 it is not run while brittle's evaluation does not join a process group
   (see :func:`distributed_support`).

Writes ``gpu.md`` and ``gpu.json`` into ``--out`` (default ``benchmarks/results``; with
``--quick`` a fresh temporary folder, so a smoke test never replaces the GPU's figures), with
the device's name and the torch, CUDA and cuDNN versions. Exits 1 when a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import common  # noqa: E402
import resnet  # noqa: E402
from brittle.classifier import Amp  # noqa: E402
from brittle.files import write_text_atomic  # noqa: E402

RESULTS = BENCH / "results"
CLASSES = 10
SHAPE = (3, 32, 32)
EPS = 8 / 255
EVAL_ATTACKS = ("fgsm", "pgd:steps=10")
EVAL_EPS = ("2/255", "8/255")


@dataclass(frozen=True)
class Sizes:
    """How much work each step does, and its time budget in seconds."""

    factory: str  # the model's factory in benchmarks/resnet.py
    deadline: float
    train_steps: int
    train_batch: int
    eval_n: int
    batch: int
    bench_n: dict[str, int]
    apgd_steps: int
    square_queries: int
    budgets: dict[str, float]


FULL = Sizes(
    factory="resnet18",
    deadline=450.0,
    train_steps=600,
    train_batch=256,
    eval_n=1000,
    batch=500,
    bench_n={"pgd": 2000, "apgd": 1000, "square": 1000, "fgsm": 2000},
    apgd_steps=100,
    square_queries=1000,
    budgets={"contract": 90, "model": 40, "evaluate": 40, "torchrun": 90, "throughput": 170},
)
QUICK = Sizes(
    factory="resnet18_small",
    deadline=120.0,
    train_steps=20,
    train_batch=32,
    eval_n=8,
    batch=8,
    bench_n={"pgd": 8, "apgd": 8, "square": 8, "fgsm": 8},
    apgd_steps=5,
    square_queries=50,
    budgets={"contract": 35, "model": 12, "evaluate": 20, "torchrun": 25, "throughput": 30},
)


class Clock:
    """The time since the start, and what is left before the deadline."""

    def __init__(self, deadline: float) -> None:
        self.start = time.perf_counter()
        self.deadline = deadline

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.deadline - self.elapsed()


Outcome = tuple[str, dict[str, Any]]
"""A step's status (``ok``, ``failed: ...``, ``not run: ...``) and what it found."""


@dataclass
class Step:
    """One step's outcome: ``ok``, ``failed: ...`` or ``not run: ...``."""

    name: str
    budget: float
    status: str = "not run: time budget"
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def summary(statuses: dict[str, str]) -> str:
    """A step's status from its parts': ``failed: A, B`` when some failed, else ``ok``, with
    the parts that the time budget left out named."""
    failed = [name for name, status in statuses.items() if status.startswith("failed")]
    skipped = [name for name, status in statuses.items() if status.startswith("not run")]
    status = f"failed: {', '.join(failed)}" if failed else "ok"
    return status + (f"; not run (time budget): {', '.join(skipped)}" if skipped else "")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ 1. contract
def contract(device: torch.device, clock: Clock) -> Outcome:
    """``check_attack`` for every registered attack, on the tiny model and, off the CPU, on
    the same model placed on ``device`` (with its samples there); an attack is not started
    once ``clock`` (the step's) has run out."""
    sys.path.insert(0, str(common.REPO / "tests"))
    from brittle import Classifier
    from brittle.attacks.registry import attack_class, attack_names
    from brittle.testing import check_attack, tiny_problem
    from test_attack_contract import QUICK as ARGS

    own: dict[str, Any] = {}
    if device.type != "cpu":
        tiny, x, y = tiny_problem()
        placed = Classifier(tiny.module, bounds=tiny.bounds, device=device)  # moves the module
        own = {"classifier": placed, "samples": (x.to(device), y.to(device))}
    rows: dict[str, dict[str, Any]] = {}
    for name in attack_names():
        if clock.left() <= 0:
            rows[name] = {"status": "not run: time budget", "seconds": 0.0}
            print(f"  {name:<8} not run: time budget", flush=True)
            continue
        began = time.perf_counter()
        try:
            check_attack(attack_class(name), **own, **ARGS[name])
            status = "ok"
        except AssertionError as err:
            status = f"failed: {str(err).splitlines()[0]}"
        except Exception as err:
            status = f"failed: {type(err).__name__}: {err}"
        rows[name] = {"status": status, "seconds": round(time.perf_counter() - began, 2)}
        print(f"  {name:<8} {status} ({rows[name]['seconds']:.1f} s)", flush=True)
    status = summary({name: r["status"] for name, r in rows.items()})
    return status, {"attacks": rows, "arguments": ARGS}


# ------------------------------------------------------------------------------ 2. model
def templates() -> Tensor:
    """One smooth colour pattern per class: a random 3x4x4 grid scaled up to 32x32."""
    g = torch.Generator().manual_seed(1234)
    coarse = torch.rand(CLASSES, 3, 4, 4, generator=g)
    return F.interpolate(coarse, size=SHAPE[1:], mode="bilinear", align_corners=False)


def synthetic(n: int, seed: int, patterns: Tensor) -> tuple[Tensor, Tensor]:
    """``n`` images of the synthetic task: 0.25 + the class's pattern / 2 + N(0, 0.2^2) noise,
    clipped to [0, 1]; labels uniform."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    noise = torch.randn(n, *SHAPE, generator=g)
    x = (0.25 + 0.5 * patterns[y] + 0.2 * noise).clamp(0, 1)
    return x, y


@dataclass
class Problem:
    """The trained network and its test images (on the device), and their files."""

    module: nn.Module
    x: Tensor
    y: Tensor
    weights: Path
    data: Path
    model_spec: str


def model(
    device: torch.device, sizes: Sizes, work: Path, clock: Clock
) -> tuple[Problem, dict[str, Any]]:
    """Train the ResNet-18 with Adam on fresh synthetic batches for ``train_steps`` steps or
    half the step's time; write its weights and the test images."""
    patterns = templates()
    torch.manual_seed(0)
    net = getattr(resnet, sizes.factory)().to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    start, steps = time.perf_counter(), 0
    while steps == 0 or (steps < sizes.train_steps and clock.elapsed() < clock.deadline / 2):
        xb, yb = synthetic(sizes.train_batch, 10_000 + steps, patterns)
        loss = F.cross_entropy(net(xb.to(device)), yb.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        steps += 1
    sync(device)
    seconds = time.perf_counter() - start
    net.eval()
    n = max(max(sizes.bench_n.values()), sizes.eval_n)
    x, y = synthetic(n, 1, patterns)
    with torch.no_grad():
        pred = torch.cat([net(b.to(device)).argmax(1).cpu() for b in x.split(sizes.batch)])
    weights, data = work / "resnet18.pt", work / "synthetic.npz"
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, weights)
    np.savez(data, x=x.numpy(), y=y.numpy())
    problem = Problem(
        net, x.to(device), y.to(device), weights, data, f"{BENCH / 'resnet.py'}:{sizes.factory}"
    )
    details = {
        "factory": sizes.factory,
        "parameters": sum(p.numel() for p in net.parameters()),
        "train_steps": steps,
        "train_batch": sizes.train_batch,
        "train_seconds": round(seconds, 2),
        "final_loss": round(float(loss.detach()), 4),
        "test_images": n,
        "clean_accuracy": float((pred == y).float().mean()),
    }
    return problem, details


# ------------------------------------------------------------------------------ 3. evaluate
def store_rows(path: Path) -> dict[str, Any]:
    """What a store holds: the sample rows (keyed by attack name, eps, target and sample id,
    so that stores of other runs compare), and the batches' count and samples."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        names = [r[1] for r in db.execute("PRAGMA table_info(samples)")]
        rows = db.execute(
            "SELECT * FROM samples ORDER BY attack_name, eps, IFNULL(target, -1), sample_id"
        ).fetchall()
        batches, attacked = db.execute("SELECT count(*), sum(samples) FROM batches").fetchone()
    kept = [i for i, n in enumerate(names) if n not in ("run", "attack")]
    return {
        "columns": [names[i] for i in kept],
        "rows": [tuple(r[i] for i in kept) for r in rows],
        "batches": batches,
        "attacked": attacked or 0,
    }


def figures(report: dict[str, Any]) -> str:
    """A report's figures as canonical JSON (NaN kept), without when it was written and what
    the session spent (``timing``: what this session attacked and reused)."""
    return json.dumps(
        {k: v for k, v in report.items() if k not in ("created", "timing")}, sort_keys=True
    )


def evaluate_resume(
    problem: Problem, device: torch.device, sizes: Sizes, work: Path
) -> tuple[Outcome, Path]:
    """``brittle.evaluate`` into a folder, then again: nothing attacked twice, same figures;
    the outcome and the store (step 5's reference)."""
    from brittle.eval.api import evaluate

    out = work / "evaluate"

    def run() -> tuple[dict[str, Any], float]:
        began = time.perf_counter()
        outcome = evaluate(
            problem.model_spec,
            "npz",
            data_dir=problem.data,
            weights=problem.weights,
            attacks=list(EVAL_ATTACKS),
            eps=list(EVAL_EPS),
            n=sizes.eval_n,
            batch_size=sizes.batch,
            seed=0,
            device=str(device),
            progress=False,
            out=out,
        )
        assert outcome is not None, "one process: its evaluation writes the report"
        return outcome.report, time.perf_counter() - began

    first, first_s = run()
    before = store_rows(out / "results.sqlite")
    second, second_s = run()
    after = store_rows(out / "results.sqlite")
    problems = []
    if before["attacked"] != len(before["rows"]):
        problems.append(
            f"the first run attacked {before['attacked']} samples for {len(before['rows'])} rows"
        )
    again = second["timing"]["samples_attacked"]
    if again or after["batches"] != before["batches"] or after["rows"] != before["rows"]:
        problems.append(
            f"the rerun attacked {again} samples again in {after['batches'] - before['batches']} "
            "more batches, or rows changed"
        )
    if figures(first) != figures(second):
        problems.append("the rerun reports other figures")
    texts = dict(zip(first["threat_model"]["eps_list"], EVAL_EPS, strict=True))
    robust = {texts[r["eps"]]: r["robust_accuracy"] for r in first["results"]}
    details = {
        "problems": problems,
        "rows": len(before["rows"]),
        "batches": before["batches"],
        "first_seconds": round(first_s, 2),
        "rerun_seconds": round(second_s, 2),
        "rerun_reused": second["timing"]["samples_reused"],
        "clean_accuracy": first["results"][0].get("clean_accuracy"),
        "robust_accuracy_worst_case": robust,
    }
    status = f"failed: {'; '.join(problems)}" if problems else "ok"
    return (status, details), out / "results.sqlite"


# ------------------------------------------------------------------------------ 4. throughput
@dataclass(frozen=True)
class Bench:
    key: str
    label: str
    params: str
    brittle: Callable[[], Any]
    torchattacks: Callable[[nn.Module], Any]


def benches(sizes: Sizes) -> list[Bench]:
    from brittle.attacks import APGD, FGSM, PGD, Square

    q, k = sizes.square_queries, sizes.apgd_steps
    return [
        Bench(
            "pgd",
            "PGD-10",
            "Linf 8/255, step 2/255, random start, every step run",
            lambda: PGD(EPS, steps=10, step_size=2 / 255, random_start=True, early_stop=False),
            lambda m: _ta().PGD(m, eps=EPS, alpha=2 / 255, steps=10, random_start=True),
        ),
        Bench(
            "apgd",
            f"APGD-CE ({k} steps)",
            f"Linf 8/255, {k} steps, 1 restart, rho 0.75",
            lambda: APGD(EPS, steps=k, loss="ce", rho=0.75),
            lambda m: _ta().APGD(m, norm="Linf", eps=EPS, steps=k, loss="ce", rho=0.75, seed=0),
        ),
        Bench(
            "square",
            f"Square ({q:,} queries)",
            f"Linf 8/255, {q} queries, p_init 0.8, margin loss",
            lambda: Square(EPS, max_queries=q, p_init=0.8),
            lambda m: _ta().Square(m, norm="Linf", eps=EPS, n_queries=q, p_init=0.8, seed=0),
        ),
        Bench(
            "fgsm",
            "FGSM",
            "Linf 8/255",
            lambda: FGSM(EPS),
            lambda m: _ta().FGSM(m, eps=EPS),
        ),
    ]


def _ta() -> Any:
    import torchattacks

    return torchattacks


def measure(
    run: Callable[[Tensor, Tensor, Tensor], Tensor],
    problem: Problem,
    n: int,
    batch: int,
    device: torch.device,
) -> dict[str, Any]:
    """The first batch attacked untimed (a warm-up at the timed batch size: one-off checks,
    kernels chosen for that shape), then a timed pass over the first ``n`` images; the
    model's verdict on what came back."""
    x, y = problem.x[:n], problem.y[:n]
    ids = torch.arange(n, device=device)
    torch.manual_seed(0)
    run(x[:batch], y[:batch], ids[:batch])
    sync(device)
    began = time.perf_counter()
    out = [run(x[i : i + batch], y[i : i + batch], ids[i : i + batch]) for i in range(0, n, batch)]
    sync(device)
    seconds = time.perf_counter() - began
    x_adv = torch.cat(out).to(device)
    with torch.no_grad():
        clean = torch.cat([problem.module(b).argmax(1) for b in x.split(batch)]) == y
        fooled = torch.cat([problem.module(b).argmax(1) for b in x_adv.split(batch)]) != y
    outside = (x_adv < 0) | (x_adv > 1) | ((x_adv - x).abs() > EPS + 1e-6)
    return {
        "seconds": round(seconds, 3),
        "samples_per_s": n / seconds,
        "success_rate": float((fooled & clean).sum() / clean.sum().clamp(min=1)),
        "outside": int(outside.flatten(1).any(1).sum()),
    }


def throughput(problem: Problem, device: torch.device, sizes: Sizes, clock: Clock) -> Outcome:
    """The table: each attack by each library (their order alternating from row to row); a
    measurement is not started once ``clock`` (the step's) has run out."""
    from brittle import Classifier

    libraries: tuple[str, ...] = ("brittle", "brittle bf16")
    try:
        _ta()
        libraries = (*libraries, "torchattacks")
    except ImportError:
        pass
    classifiers = {
        name: Classifier(
            problem.module, bounds=(0.0, 1.0), num_classes=CLASSES, input_shape=SHAPE, amp=amp
        )
        for name, amp in (("brittle", None), ("brittle bf16", _BF16))
    }
    rows = []
    for i, bench in enumerate(benches(sizes)):
        n = sizes.bench_n[bench.key]
        row: dict[str, Any] = {"attack": bench.label, "params": bench.params, "n": n}
        order = libraries if i % 2 == 0 else libraries[::-1]
        for library in order:
            if clock.left() <= 0:
                row[library] = {"status": "not run: time budget"}
                continue
            if library in classifiers:
                attack, classifier = bench.brittle(), classifiers[library]

                def call(
                    x: Tensor, y: Tensor, ids: Tensor, a: Any = attack, c: Any = classifier
                ) -> Tensor:
                    return a(c, x, y, ids=ids).x_adv

            else:
                peer = bench.torchattacks(common.torchattacks_model(problem.module))

                def call(x: Tensor, y: Tensor, ids: Tensor, a: Any = peer, c: Any = None) -> Tensor:
                    return a(x, y)

            try:
                row[library] = {"status": "ok", **measure(call, problem, n, sizes.batch, device)}
            except Exception as err:
                row[library] = {"status": f"failed: {type(err).__name__}: {err}"}
        ours, theirs = row.get("brittle", {}), row.get("torchattacks", {})
        if "samples_per_s" in ours and "samples_per_s" in theirs:
            row["ratio"] = ours["samples_per_s"] / theirs["samples_per_s"]
        rows.append(row)
        print(f"  {bench.label}: {_row_text(row, libraries)}", flush=True)
    details: dict[str, Any] = {"rows": rows, "batch": sizes.batch}
    if "torchattacks" not in libraries:
        details["note"] = "torchattacks is not installed: pip install --no-deps torchattacks"
    statuses = {
        f"{row['attack']} ({library})": "failed: outside the budget or box"
        if row[library].get("outside")
        else row[library]["status"]
        for row in rows
        for library in libraries
    }
    return summary(statuses), details


_BF16: Amp = "bf16"


def _row_text(row: dict[str, Any], libraries: tuple[str, ...]) -> str:
    parts = []
    for library in libraries:
        r = row.get(library, {})
        if "samples_per_s" in r:
            parts.append(f"{library} {r['samples_per_s']:,.0f}/s success {r['success_rate']:.1%}")
        else:
            parts.append(f"{library} {r.get('status')}")
    if "ratio" in row:
        parts.append(f"ratio {row['ratio']:.2f}")
    return "; ".join(parts)


# ------------------------------------------------------------------------------ 5. torchrun
DISTRIBUTED_IMPORT = re.compile(
    r"^\s*(from\s+(brittle|\.+)\s*import\s+.*\bdistributed\b"
    r"|from\s+(brittle\.|\.+)distributed\s+import"
    r"|import\s+brittle\.distributed)",
    re.MULTILINE,
)


def distributed_support() -> str | None:
    """``None`` when brittle's evaluation joins a process group (a module of the evaluation
    engine, ``brittle.eval``, imports ``brittle.distributed``), else why not: then each rank
    of a job would run the whole evaluation into the same folder."""
    import brittle.eval

    for path in sorted(Path(brittle.eval.__file__).parent.rglob("*.py")):
        if DISTRIBUTED_IMPORT.search(path.read_text(encoding="utf-8")):
            return None
    return (
        "brittle's evaluation does not join a process group yet (no module of brittle.eval "
        "imports brittle.distributed)"
    )


def torchrun(
    problem: Problem,
    device: torch.device,
    sizes: Sizes,
    work: Path,
    clock: Clock,
    reference: Path,
    ranks: int,
) -> Outcome:
    """The evaluation of step 3 under torchrun with ``ranks`` processes (the job stopped
    when ``clock``, the step's, runs out), compared with step 3's store."""
    details: dict[str, Any] = {
        "ranks": ranks,
        "backend": "nccl" if device.type == "cuda" else "gloo",
    }
    if ranks > 1:
        reason = distributed_support()
        if reason is not None:
            return f"not run: {reason}", details
    out = work / "torchrun"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(ranks),
        "-m", "brittle", "evaluate",
        "--model", problem.model_spec, "--weights", str(problem.weights),
        "--dataset", "npz", "--data-dir", str(problem.data),
        *[a for attack in EVAL_ATTACKS for a in ("--attack", attack)],
        "--eps", ",".join(EVAL_EPS), "--num-samples", str(sizes.eval_n),
        "--batch-size", str(sizes.batch), "--seed", "0",
        "--device", "cuda" if device.type == "cuda" else "cpu",
        "--quiet", "--out", str(out),
    ]  # fmt: skip
    details["command"] = shlex.join(["python", *command[1:]])
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    began = time.perf_counter()
    # a session of its own, so that the launcher and its workers are stopped together
    job = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = job.communicate(timeout=max(clock.left(), 1))
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        return f"not run: time budget (the job was stopped after {clock.deadline:.0f} s)", details
    details["seconds"] = round(time.perf_counter() - began, 2)
    if job.returncode != 0:
        tail = output.strip().splitlines()[-3:]
        return f"failed: exit {job.returncode}: {' | '.join(tail)}", details
    ours, theirs = store_rows(out / "results.sqlite"), store_rows(reference)
    rows = len(ours["rows"])
    details["rows"] = rows
    if ours["attacked"] != rows:
        return f"failed: {ours['attacked']} samples attacked for {rows} rows", details
    if rows != len(theirs["rows"]):
        return f"failed: {rows} rows against {len(theirs['rows'])} in one process", details
    differing, largest = compare(ours, theirs)
    details["differing_verdicts"] = differing
    details["largest_float_difference"] = largest
    if differing:
        return f"failed: {differing} of {rows} rows differ from one process's", details
    return "ok", details


FLOAT_COLUMNS = ("confidence_adv", "l0", "l1", "l2", "linf", "min_eps")
"""Store columns whose largest difference between two stores is reported (GPU kernels may
round differently from run to run); every other column must be equal."""


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[int, float]:
    """Rows of two stores (:func:`store_rows`, in the same order) that differ in a column
    other than :data:`FLOAT_COLUMNS`, and the largest difference in one of those."""
    exact = [i for i, c in enumerate(ours["columns"]) if c not in FLOAT_COLUMNS]
    floats = [i for i, c in enumerate(ours["columns"]) if c in FLOAT_COLUMNS]
    differing, largest = 0, 0.0
    for a, b in zip(ours["rows"], theirs["rows"], strict=True):
        differing += any(a[i] != b[i] for i in exact)
        for i in floats:
            if a[i] is not None and b[i] is not None and not math.isnan(a[i] - b[i]):
                largest = max(largest, abs(a[i] - b[i]))
    return differing, largest


# ------------------------------------------------------------------------------ report
def versions(device: torch.device) -> dict[str, Any]:
    import brittle

    info: dict[str, Any] = {
        **common.machine(),
        "brittle": brittle.__version__,
        "device": str(device),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    try:
        import torchattacks

        info["torchattacks"] = torchattacks.__version__
    except ImportError:
        info["torchattacks"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["device_name"] = props.name
        info["device_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    else:
        info["device_name"] = info["cpu"]
    return info


def markdown(meta: dict[str, Any], steps: list[Step]) -> str:
    by = {s.name: s for s in steps}
    lines = [
        "# Device check (benchmarks/gpu_check.py)",
        "",
        f"{'Quick smoke test' if meta['quick'] else 'Full run'} on **{meta['device_name']}** "
        f"({meta['device']}): torch {meta['torch']}, CUDA {meta['cuda']}, cuDNN "
        f"{meta['cudnn']}, torchattacks {meta['torchattacks']}, Python {meta['python']}; "
        f"{meta['total_seconds']:.0f} s in all (deadline {meta['deadline']:.0f} s).",
        "",
        "| step | status | seconds | budget |",
        "| --- | --- | ---: | ---: |",
        *[f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.budget:.0f} |" for s in steps],
        "",
    ]
    if by["contract"].details:
        lines += ["## Attack contract on the device", "", "| attack | status | seconds |"]
        lines += ["| --- | --- | ---: |"]
        for name, r in by["contract"].details["attacks"].items():
            lines.append(f"| {name} | {r['status']} | {r['seconds']:.1f} |")
        lines.append("")
    m = by["model"].details
    if m:
        lines += [
            "## Model",
            "",
            f"CIFAR ResNet-18 (`benchmarks/resnet.py:{m['factory']}`, {m['parameters']:,} "
            f"parameters), trained {m['train_steps']} steps of {m['train_batch']} synthetic "
            f"images ({m['train_seconds']:.1f} s); clean accuracy {m['clean_accuracy']:.1%} "
            f"on {m['test_images']:,} test images.",
            "",
        ]
    e = by["evaluate"].details
    if e:
        lines += [
            "## Evaluate and resume",
            "",
            f"`brittle.evaluate` ({', '.join(EVAL_ATTACKS)} at {', '.join(EVAL_EPS)}): "
            f"{e['rows']} rows in {e['batches']} batches, {e['first_seconds']:.1f} s; the rerun "
            f"took {e['rerun_seconds']:.1f} s (the report's sanity probes and figures, made "
            f"again), reused {e['rerun_reused']} rows: "
            + ("; ".join(e["problems"]) if e["problems"] else "attacked nothing, same figures")
            + ". Robust accuracy, the worst case of the attacks: "
            + ", ".join(f"{k} {v:.1%}" for k, v in e["robust_accuracy_worst_case"].items())
            + ".",
            "",
        ]
    t = by["torchrun"]
    if t.details:
        lines += [
            "## torchrun",
            "",
            f"{t.details['ranks']} rank(s), {t.details['backend']}: {t.status}"
            + (
                f"; {t.details['rows']} rows, {t.details['differing_verdicts']} differ from the "
                f"one-process store (the largest difference in a distance or confidence: "
                f"{t.details['largest_float_difference']:.3g})"
                if "rows" in t.details and "differing_verdicts" in t.details
                else ""
            )
            + ".",
            "",
        ]
        if "command" in t.details:
            lines += [f"    {t.details['command']}", ""]
    b = by["throughput"].details
    if b:
        lines += [
            "## Throughput against torchattacks",
            "",
            "Same module, images, batches and budget; samples/s after a warm-up, the device "
            "synchronised; success: fooled after the attack among the correctly classified, "
            "by the model's own verdict; ratio = brittle / torchattacks samples/s. brittle bf16: "
            "the same attack with the forward passes under autocast bf16 (`--amp bf16`), success "
            "judged in float32.",
            "",
            "| attack | parameters | n | brittle samples/s | brittle bf16 samples/s "
            "| torchattacks samples/s | ratio | brittle success | brittle bf16 success "
            "| torchattacks success | outside budget or box |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in b["rows"]:
            ours, half = row.get("brittle", {}), row.get("brittle bf16", {})
            theirs = row.get("torchattacks", {})
            ratio = f"{row['ratio']:.2f}" if "ratio" in row else "-"
            lines.append(
                f"| {row['attack']} | {row['params']} | {row['n']:,} | {_rate(ours)} | "
                f"{_rate(half)} | {_rate(theirs)} | {ratio} | {_success(ours)} | "
                f"{_success(half)} | {_success(theirs)} | {ours.get('outside', '-')} / "
                f"{half.get('outside', '-')} / {theirs.get('outside', '-')} |"
            )
        if "note" in b:
            lines += ["", b["note"]]
        lines.append("")
    return "\n".join(lines)


def _rate(r: dict[str, Any]) -> str:
    return f"{r['samples_per_s']:,.0f}" if "samples_per_s" in r else str(r.get("status", "-"))


def _success(r: dict[str, Any]) -> str:
    return f"{r['success_rate']:.1%}" if "success_rate" in r else "-"


# ------------------------------------------------------------------------------ main
def run_step(step: Step, clock: Clock, work: Callable[[Clock], Outcome]) -> None:
    """Run ``work`` as ``step`` with a clock of its own: its budget, cut to the time left
    (the contract and the table then leave their last parts out). Not started with less than
    a third of its budget left."""
    print(
        f"[{step.name}] budget {step.budget:.0f} s; {clock.elapsed():.0f} s elapsed, "
        f"{clock.left():.0f} s left",
        flush=True,
    )
    if clock.left() < step.budget / 3:
        print(f"[{step.name}] {step.status}", flush=True)
        return
    began = time.perf_counter()
    try:
        step.status, step.details = work(Clock(min(step.budget, clock.left())))
    except Exception as err:
        step.status = f"failed: {type(err).__name__}: {err}"
        traceback.print_exc()
    step.seconds = time.perf_counter() - began
    print(f"[{step.name}] {step.status} ({step.seconds:.1f} s)", flush=True)


def check(device: torch.device, sizes: Sizes, clock: Clock, work: Path, ranks: int) -> list[Step]:
    """The five steps (the throughput table last: the others check, it measures); a step
    whose input an earlier one did not make is not run."""
    steps = {name: Step(name, budget) for name, budget in sizes.budgets.items()}
    run_step(steps["contract"], clock, lambda c: contract(device, c))
    problem: Problem | None = None
    reference: Path | None = None

    def build(c: Clock) -> Outcome:
        nonlocal problem
        problem, details = model(device, sizes, work, c)
        return "ok", details

    def evaluate(c: Clock) -> Outcome:
        nonlocal reference
        assert problem is not None
        outcome, reference = evaluate_resume(problem, device, sizes, work)
        return outcome

    run_step(steps["model"], clock, build)
    if problem is None:
        for name in ("evaluate", "torchrun", "throughput"):
            steps[name].status = "not run: the model step did not finish"
        return list(steps.values())
    made = problem
    run_step(steps["evaluate"], clock, evaluate)
    if reference is None:
        steps["torchrun"].status = "not run: the evaluate step did not finish"
    else:
        ref = reference
        run_step(
            steps["torchrun"], clock, lambda c: torchrun(made, device, sizes, work, c, ref, ranks)
        )
    run_step(steps["throughput"], clock, lambda c: throughput(made, device, sizes, c))
    return list(steps.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes, for a CPU smoke test.")
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda).")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Folder of gpu.md and gpu.json (default: benchmarks/results; with --quick a new "
        "temporary folder).",
    )
    parser.add_argument(
        "--ranks",
        type=int,
        default=None,
        help="Processes of the torchrun step (default: 2 with two GPUs or more, else 1); on "
        "GPUs at most one per GPU.",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    clock = Clock(sizes.deadline)
    from brittle.devices import check_device
    from brittle.errors import InputError

    try:
        device = check_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except InputError as err:
        parser.error(str(err))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    ranks = args.ranks if args.ranks is not None else (2 if gpus >= 2 else 1)
    if ranks < 1 or (gpus and ranks > gpus):
        most = f" and at most {gpus}, one per GPU" if gpus else ""
        parser.error(f"--ranks must be at least 1{most}; got {ranks}")
    out = args.out or (Path(tempfile.mkdtemp(prefix="gpu_check_")) if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    print(f"device check on {device}, deadline {sizes.deadline:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_work_") as tmp:
        steps = check(device, sizes, clock, Path(tmp), ranks)
    meta = {
        **versions(device),
        "quick": args.quick,
        "deadline": sizes.deadline,
        "total_seconds": clock.elapsed(),
        "sizes": asdict(sizes),
    }
    report = {"meta": meta, "steps": [asdict(s) for s in steps]}
    write_text_atomic(out / "gpu.json", json.dumps(report, indent=2, default=str) + "\n")
    write_text_atomic(out / "gpu.md", markdown(meta, steps) + "\n")
    print(f"wrote {out / 'gpu.md'} and {out / 'gpu.json'} ({clock.elapsed():.0f} s)")
    return 1 if any(s.status.startswith("failed") for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
