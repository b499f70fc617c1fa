"""Host syncs per iteration of every attack loop, and the CPU time of Square, SimBA and APGD.

    git archive 86e1a0a src | tar -x -C /tmp/old     # the code before a change
    cp src/brittle/attacks/host_syncs.py /tmp/old/src/brittle/attacks/
    python benchmarks/bench_host_syncs.py --before-tree /tmp/old/src --before-commit 86e1a0a

Syncs are counted with :class:`brittle.attacks.host_syncs.HostSyncs` (a ``__torch_function__``
mode: the calls that make the host wait for a GPU, counted on the CPU) over two runs of each
attack that differ only in their number of iterations, on problems where no sample stops
early (a budget too small to fool the model, or a change per step too small to reach the
target), so that every sample runs every iteration. Per iteration:

    (syncs(long run) - syncs(short run)) / (iterations(long run) - iterations(short run)),

with the iterations counted as model forward passes (a forward pre-hook) divided by the
passes one iteration makes (DeepFool: two), but for SimBA, whose iteration is a step: two
per direction (calls of ``SimBA._try``), the second for the samples the first did not help.
Setup syncs, made once per attack call, cancel out. JSMA's pair search is laid out in the
widest row's slots so far; a row wider than any before costs one more sync.

Timing: Square (Linf, 300 queries), SimBA (pixel, L2, 300 queries) and APGD (CE, 50 steps)
on 64 random 3x16x16 images and a small random CNN, at a budget too small to fool it (the
same work before and after a change of the random numbers), one thread, three runs per
process, in rounds that alternate the two trees (each in its own process, the older one put
first on PYTHONPATH). Writes ``benchmarks/results/host_syncs.json`` and ``host_syncs.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import (
    APGD,
    APGDT,
    BIM,
    JSMA,
    MIFGSM,
    PGD,
    Attack,
    CarliniWagnerL2,
    DeepFool,
    SimBA,
    Square,
)
from brittle.attacks.host_syncs import HostSyncs, SyncRate, syncs_per_iteration
from brittle.files import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"


class Cubic(nn.Module):
    """Two logits [0, -(s^3 + 1)], s = w.x: DeepFool's linear steps approach s = -1 slowly."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((d,), 1.0 / d))

    def forward(self, x: Tensor) -> Tensor:
        s = x.flatten(1) @ self.w
        return torch.stack([torch.zeros_like(s), -(s**3 + 1)], dim=1)


def mlp(classes: int = 10) -> Classifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, classes))
    return Classifier(net, bounds=(0.0, 1.0))


def cnn() -> Classifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 8 * 8, 10),
        )
    return Classifier(net, bounds=(0.0, 1.0))


def images(n: int, shape: tuple[int, ...], model: Classifier) -> tuple[Tensor, Tensor]:
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(1))
    return x, model.predict(x)


Problem = tuple[Classifier, Tensor, Tensor, dict[str, Any]]
SYNC_CASES: dict[str, tuple[Callable[[int], Attack], Callable[[], Problem], int, int, int]] = {}
"""name -> (attack at a size, problem, short size, long size, forward passes per iteration)."""


def _digits_like(n: int = 16) -> Problem:
    model = mlp()
    x, y = images(n, (1, 8, 8), model)
    return model, x, y, {}


def _targeted_digits_like(n: int = 8) -> Problem:
    model, x, y, _ = _digits_like(n)
    return model, x, y, {"target": model.predict_logits(x).argmin(1)}


def _cubic(n: int = 8) -> Problem:
    model = Classifier(Cubic(64), bounds=(-float("inf"), float("inf")))
    x = 10 + torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    return model, x, torch.zeros(n, dtype=torch.long), {}


TINY = 1e-4
SYNC_CASES.update(
    {
        "square-linf": (lambda q: Square(TINY, max_queries=q), _digits_like, 20, 40, 1),
        "square-l2": (lambda q: Square(TINY, norm="l2", max_queries=q), _digits_like, 20, 40, 1),
        "simba-pixel": (lambda q: SimBA(TINY, max_queries=q), _digits_like, 20, 40, 1),
        "simba-dct": (
            lambda q: SimBA(TINY, norm="linf", basis="dct", max_queries=q),
            _digits_like,
            20,
            40,
            1,
        ),
        "apgd": (lambda s: APGD(TINY, steps=s), _digits_like, 10, 20, 1),
        "apgd-t": (lambda s: APGDT(TINY, steps=s, n_target_classes=1), _digits_like, 10, 20, 1),
        "pgd": (lambda s: PGD(TINY, steps=s), _digits_like, 10, 20, 1),
        "bim": (lambda s: BIM(TINY, steps=s), _digits_like, 10, 20, 1),
        "mifgsm": (lambda s: MIFGSM(TINY, steps=s), _digits_like, 10, 20, 1),
        "deepfool": (lambda s: DeepFool(steps=s, candidates=1), _cubic, 3, 6, 2),
        "cw": (
            lambda s: CarliniWagnerL2(steps=s, binary_steps=1, abort_early=False),
            _digits_like,
            10,
            20,
            1,
        ),
        "jsma": (
            lambda k: JSMA(eps=k / 64, targeted=True),
            _targeted_digits_like,
            12,
            24,
            1,
        ),
    }
)


def simba_steps(
    build: Callable[[int], Attack], sizes: tuple[int, int], problem: Problem
) -> SyncRate:
    """SimBA's syncs per step: a direction (a call of ``SimBA._try``) is two steps, the
    second taken only by the samples the first did not help, and a step whose candidates all
    stay where the iterates are makes no model pass (so passes do not count its steps)."""
    model, x, y, kwargs = problem
    directions = [0]
    original = SimBA._try

    def counted(*args: Any, **kw: Any) -> Any:
        directions[0] += 1
        return original(*args, **kw)

    SimBA._try = counted  # type: ignore[method-assign]
    try:
        build(sizes[0])(model, x, y, **kwargs)  # the model's first-call checks
        runs = []
        for size in sizes:
            directions[0] = 0
            with HostSyncs() as syncs:
                build(size)(model, x, y, **kwargs)
            runs.append((syncs, directions[0]))
    finally:
        SimBA._try = original  # type: ignore[method-assign]
    (short, d_short), (long, d_long) = runs
    steps = 2 * (d_long - d_short)
    calls = long.calls.copy()
    calls.subtract(short.calls)
    by_call = {k: v / steps for k, v in sorted(calls.items()) if v}
    return SyncRate((long.total - short.total) / steps, steps, by_call)


def syncs_per_attack() -> dict[str, dict[str, Any]]:
    out = {}
    for name, (build, problem, short, long, passes) in SYNC_CASES.items():
        model, x, y, kwargs = problem()
        if name.startswith("simba"):
            rate = simba_steps(build, (short, long), (model, x, y, kwargs))
        else:
            rate = syncs_per_iteration(build, (short, long), model, x, y, passes, **kwargs)
        out[name] = {
            "per_iteration": rate.per_iteration,
            "iterations": rate.iterations,
            "by_call": rate.by_call,
        }
        print(f"{name:12s} {rate.per_iteration:.2f} {rate.by_call}", flush=True)
    return out


def timings(repeats: int) -> dict[str, list[float]]:
    """CPU seconds of each timed attack (the process's, so that time the shared machine
    gives to others is not counted), ``repeats`` runs after a warm-up."""
    model = cnn()
    x, y = images(64, (3, 16, 16), model)
    attacks: dict[str, Callable[[], Attack]] = {
        "square-linf-300": lambda: Square(TINY, max_queries=300),
        "simba-pixel-300": lambda: SimBA(TINY, max_queries=300),
        "apgd-ce-50": lambda: APGD(TINY, steps=50),
    }
    out = {}
    for name, build in attacks.items():
        build()(model, x[:2], y[:2])  # warm-up
        times = []
        for _ in range(repeats):
            start = time.process_time()
            result = build()(model, x, y)
            times.append(time.process_time() - start)
        assert not bool(result.success.any()), "the timing problems must not stop early"
        out[name] = times
    return out


def rng_draws(repeats: int = 5) -> dict[str, dict[str, float]]:
    """CPU seconds (least of ``repeats``) of one batch of per-sample uniforms, float64: a
    CPU generator per sample (``per_sample``, the draws before) against Philox on the
    tensors (``uniform``): Square's chunk of 100 iterations, SimBA's order on 3x16x16 and on
    3x32x32 inputs."""
    from brittle.randomness import per_sample, uniform

    out = {}
    for n, count in ((64, 500), (256, 800), (64, 768), (256, 3072)):
        ids = torch.arange(n)
        best = {"cpu generator per sample": float("inf"), "philox": float("inf")}

        def draw(g: torch.Generator, count: int = count) -> Tensor:
            return torch.rand(count, generator=g, dtype=torch.float64)

        for _ in range(repeats):
            start = time.process_time()
            per_sample(0, ids, "bench", draw)
            best["cpu generator per sample"] = min(
                best["cpu generator per sample"], time.process_time() - start
            )
            start = time.process_time()
            uniform(0, ids, "bench", count)
            best["philox"] = min(best["philox"], time.process_time() - start)
        out[f"{n} samples x {count}"] = best
    return out


def head_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def child(tree: str | None, what: str) -> dict[str, Any]:
    """Run this script's ``--child what`` on ``tree`` (put first on PYTHONPATH; None: here)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([tree, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, __file__, "--child", what],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=1800,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(before_tree: str, before_commit: str, rounds: int) -> dict[str, Any]:
    """Syncs of both trees, and their timings in alternating rounds (the machine is shared:
    alternation spreads its load over both); per attack the median and the least."""
    trees = {"before": (before_tree, before_commit), "after": (None, head_commit())}
    results: dict[str, Any] = {}
    for label, (tree, commit) in trees.items():
        results[label] = {
            "commit": commit,
            "torch": torch.__version__,
            "machine": f"{platform.processor() or platform.machine()}, 1 thread",
            "syncs": child(tree, "syncs"),
            "runs": {},
        }
    for i in range(rounds):
        for label, (tree, _) in trees.items():
            for name, times in child(tree, "times").items():
                results[label]["runs"].setdefault(name, []).extend(times)
            print(f"round {i + 1}/{rounds} {label}", flush=True)
    results["rng"] = child(None, "rng")
    for entry in (results["before"], results["after"]):
        entry["seconds"] = {
            name: {"median": statistics.median(t), "least": min(t), "runs": len(t)}
            for name, t in entry.pop("runs").items()
        }
    return results


def render(results: dict[str, Any]) -> str:
    labels = ["before", "after"]
    lines = [
        "# Host syncs per attack iteration, and CPU time",
        "",
        "`python benchmarks/bench_host_syncs.py --before-tree DIR --before-commit C` (see its "
        "docstring for the method). A host sync is a call that makes the host wait for the GPU "
        "(a value read, an output sized by values, a copy from the host), counted on the CPU by "
        "`brittle.attacks.host_syncs.HostSyncs`.",
        "",
    ]
    for label in labels:
        r = results[label]
        lines.append(f"- {label}: commit {r['commit']}, torch {r['torch']}, {r['machine']}")
    lines += ["", "## Syncs per iteration (SimBA: per step, two per direction)", ""]
    lines.append("| attack | before | after | where, after |")
    lines.append("|---|---|---|---|")
    after = results["after"]["syncs"]
    for name in after:
        cells = [f"{results[k]['syncs'][name]['per_iteration']:.2f}" for k in labels]
        by_call = ", ".join(f"{c} {v:.2f}" for c, v in after[name]["by_call"].items()) or "none"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {by_call} |")
    lines += ["", "Where the syncs were before:", ""]
    for name, entry in results["before"]["syncs"].items():
        by_call = ", ".join(f"{c} {v:.2f}" for c, v in entry["by_call"].items())
        lines.append(f"- {name}: {by_call or 'none'}")
    runs = next(iter(results["after"]["seconds"].values()))["runs"]
    lines += [
        "",
        f"## CPU time (seconds over {runs} runs each, before and after alternating; one thread)",
        "",
        "| attack | before median | after median | before least | after least |",
        "|---|---|---|---|---|",
    ]
    for name in results["after"]["seconds"]:
        b, a = results["before"]["seconds"][name], results["after"]["seconds"][name]
        lines.append(
            f"| {name} | {b['median']:.3f} | {a['median']:.3f} | {b['least']:.3f} | "
            f"{a['least']:.3f} |"
        )
    lines += [
        "",
        "## Per-sample uniforms on the CPU (CPU seconds, least of 5)",
        "",
        "| draw | a CPU generator per sample (before) | Philox on the tensors (after) |",
        "|---|---|---|",
    ]
    for name, r in results["rng"].items():
        lines.append(f"| {name} | {r['cpu generator per sample']:.4f} | {r['philox']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before-tree", help="a src/ folder of the code before (git archive)")
    parser.add_argument("--before-commit", default="unknown", help="the commit of that tree")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--child", choices=("syncs", "times", "rng"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.child:
        jobs: dict[str, Callable[[], Any]] = {
            "syncs": syncs_per_attack,
            "times": lambda: timings(repeats=3),
            "rng": rng_draws,
        }
        print(json.dumps(jobs[args.child]()))
        return
    if not args.before_tree:
        parser.error("give --before-tree: the src/ folder of the code to compare with")
    results = measure(args.before_tree, args.before_commit, args.rounds)
    write_text_atomic(RESULTS / "host_syncs.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(RESULTS / "host_syncs.md", render(results))


if __name__ == "__main__":
    main()
