"""brittle against torchattacks, Foolbox and ART on one LeNet, same inputs, same budgets.

    python benchmarks/bench_peers.py                 # all rows, first 1,000 MNIST test images
    python benchmarks/bench_peers.py --n 200 --only pgd deepfool

Every library attacks the same ``nn.Module`` (the zoo LeNet of ``common.trained_lenet``,
wrapped in ``common.CountingModule``) on the same images, in batches of 100, with
``torch.set_num_threads(2)``. Each attack's parameters are set equal across libraries where
a library exposes them (steps, step size, random start, overshoot, candidates, binary steps,
learning rate, initial constant); where a peer cannot be set the same way the table says so.

What is measured, the same way for everyone:
- samples/s: images / wall-clock seconds of the attack calls (conversions included);
- success: the model is run on the returned images (the peers' own flags are never used);
  success rate = misclassified after the attack / correctly classified before;
- median L2 and Linf of the successful examples;
- gradient evaluations per sample, counted by ``CountingModule`` (per-sample backward passes
  to the input), for every library alike;
- returned images outside the box or the budget are counted and reported.

Writes ``benchmarks/results/peers.md`` and ``peers.json`` for a full run (all attacks,
n=1000); a run with ``--only`` or another ``--n`` writes ``peers_partial.*`` unless ``--out``
is given, so a quick check never overwrites the full table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

RESULTS = Path(__file__).resolve().parent / "results"
LIBRARIES = ("brittle", "torchattacks", "foolbox", "art")

Runner = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Context:
    """The one network, seen by each library."""

    counter: common.CountingModule
    classifier: Any  # brittle.Classifier over ``counter``
    _foolbox: Any = None
    _art: Any = None
    own_gradients: list[int] = field(default_factory=list)

    @property
    def foolbox(self) -> Any:
        if self._foolbox is None:
            self._foolbox = common.foolbox_model(self.counter)
        return self._foolbox

    @property
    def art(self) -> Any:
        if self._art is None:
            self._art = common.art_classifier(self.counter)
        return self._art


@dataclass
class Config:
    """One row group of the table: an attack with its parameters, run by each library."""

    key: str
    family: str
    label: str
    eps: float | None
    params: dict[str, Any]
    runners: dict[str, Callable[[Context], Runner]]
    notes: dict[str, str] = field(default_factory=dict)
    max_n: dict[str, int] = field(default_factory=dict)
    """Libraries too slow for the full set run on the first ``max_n`` images only."""
    no_warmup: tuple[str, ...] = ()
    """Libraries whose warm-up would cost as much as the run (cost per iteration, not per image)."""


# ------------------------------------------------------------------------------ runners
def brittle_runner(make: Callable[[], Any]) -> Callable[[Context], Runner]:
    def build(ctx: Context) -> Runner:
        attack = make()

        def run(x: Tensor, y: Tensor) -> Tensor:
            result = attack(ctx.classifier, x, y)
            ctx.own_gradients.append(int(result.gradients.sum()))
            return result.x_adv

        return run

    return build


def torchattacks_runner(make: Callable[[Any], Any]) -> Callable[[Context], Runner]:
    def build(ctx: Context) -> Runner:
        attack = make(common.torchattacks_model(ctx.counter))
        return lambda x, y: attack(x, y)

    return build


def foolbox_runner(make: Callable[[], Any], eps: float | None) -> Callable[[Context], Runner]:
    def build(ctx: Context) -> Runner:
        attack = make()
        fmodel = ctx.foolbox

        def run(x: Tensor, y: Tensor) -> Tensor:
            _, clipped, _ = attack(fmodel, x, y, epsilons=eps)
            return clipped

        return run

    return build


def art_runner(make: Callable[[Any], Any]) -> Callable[[Context], Runner]:
    def build(ctx: Context) -> Runner:
        attack = make(ctx.art)

        def run(x: Tensor, y: Tensor) -> Tensor:
            out = attack.generate(x=x.numpy(), y=y.numpy())
            return torch.from_numpy(np.asarray(out, dtype=np.float32))

        return run

    return build


# ------------------------------------------------------------------------------ configs
def configs(batch: int, art_cw_n: int = 20) -> list[Config]:
    """Every row group; imports happen inside the factories, so a missing attack is an error
    recorded in its row rather than a crash."""
    import foolbox as fb
    import torchattacks as ta
    from art.attacks import evasion as art

    out: list[Config] = []

    def fgsm(eps: float) -> Config:
        from brittle.attacks.fgsm import FGSM

        return Config(
            f"fgsm_linf_{eps:g}",
            "fgsm",
            f"FGSM Linf eps={eps:g}",
            eps,
            {"eps": eps},
            {
                "brittle": brittle_runner(lambda: FGSM(eps)),
                "torchattacks": torchattacks_runner(lambda m: ta.FGSM(m, eps=eps)),
                "foolbox": foolbox_runner(lambda: fb.attacks.LinfFastGradientAttack(), eps),
                "art": art_runner(
                    lambda c: art.FastGradientMethod(c, norm=np.inf, eps=eps, batch_size=batch)
                ),
            },
        )

    def pgd(eps: float, steps: int = 40, step: float = 0.01) -> Config:
        def make_brittle() -> Any:
            from brittle.attacks.iterative import PGD

            return PGD(eps, steps=steps, step_size=step, norm="linf", random_start=True, seed=0)

        return Config(
            f"pgd{steps}_linf_{eps:g}",
            "pgd",
            f"PGD-{steps} Linf eps={eps:g}",
            eps,
            {"eps": eps, "steps": steps, "step_size": step, "random_start": True, "restarts": 1},
            {
                "brittle": brittle_runner(make_brittle),
                "torchattacks": torchattacks_runner(
                    lambda m: ta.PGD(m, eps=eps, alpha=step, steps=steps, random_start=True)
                ),
                "foolbox": foolbox_runner(
                    lambda: fb.attacks.LinfPGD(abs_stepsize=step, steps=steps, random_start=True),
                    eps,
                ),
                "art": art_runner(
                    lambda c: art.ProjectedGradientDescent(
                        c,
                        norm=np.inf,
                        eps=eps,
                        eps_step=step,
                        max_iter=steps,
                        num_random_init=1,
                        batch_size=batch,
                        verbose=False,
                    )
                ),
            },
        )

    def bim(eps: float, steps: int = 10) -> Config:
        step = 0.2 * eps

        def make_brittle() -> Any:
            from brittle.attacks.iterative import BIM

            return BIM(eps, steps=steps, step_size=step, norm="linf")

        return Config(
            f"bim{steps}_linf_{eps:g}",
            "bim",
            f"BIM-{steps} Linf eps={eps:g}",
            eps,
            {"eps": eps, "steps": steps, "step_size": step},
            {
                "brittle": brittle_runner(make_brittle),
                "torchattacks": torchattacks_runner(
                    lambda m: ta.BIM(m, eps=eps, alpha=step, steps=steps)
                ),
                "foolbox": foolbox_runner(
                    lambda: fb.attacks.LinfBasicIterativeAttack(
                        abs_stepsize=step, steps=steps, random_start=False
                    ),
                    eps,
                ),
                "art": art_runner(
                    lambda c: art.BasicIterativeMethod(
                        c, eps=eps, eps_step=step, max_iter=steps, batch_size=batch, verbose=False
                    )
                ),
            },
        )

    def mifgsm(eps: float, steps: int = 10, decay: float = 1.0) -> Config:
        step = eps / steps

        def make_brittle() -> Any:
            from brittle.attacks.mifgsm import MIFGSM

            return MIFGSM(eps, steps=steps, step_size=step, decay=decay)

        return Config(
            f"mifgsm{steps}_linf_{eps:g}",
            "mifgsm",
            f"MI-FGSM-{steps} Linf eps={eps:g}",
            eps,
            {"eps": eps, "steps": steps, "step_size": step, "decay": decay},
            {
                "brittle": brittle_runner(make_brittle),
                "torchattacks": torchattacks_runner(
                    lambda m: ta.MIFGSM(m, eps=eps, alpha=step, steps=steps, decay=decay)
                ),
                "foolbox": foolbox_runner(
                    lambda: fb.attacks.LinfMomentumIterativeFastGradientMethod(
                        momentum=decay, abs_stepsize=step, steps=steps, random_start=False
                    ),
                    eps,
                ),
                "art": art_runner(
                    lambda c: art.MomentumIterativeMethod(
                        c,
                        norm=np.inf,
                        eps=eps,
                        eps_step=step,
                        decay=decay,
                        max_iter=steps,
                        batch_size=batch,
                        verbose=False,
                    )
                ),
            },
            notes={
                "foolbox": "accumulates sign(grad) (it normalises before its optimiser), not "
                "grad/||grad||_1 (Dong et al.)",
            },
        )

    def deepfool(steps: int = 50, overshoot: float = 0.02, candidates: int = 10) -> Config:
        def make_brittle() -> Any:
            from brittle.attacks.deepfool import DeepFool

            return DeepFool(norm="l2", steps=steps, overshoot=overshoot, candidates=candidates)

        return Config(
            "deepfool_l2",
            "deepfool",
            f"DeepFool L2 ({steps} steps, overshoot {overshoot:g}, {candidates} candidates)",
            None,
            {"steps": steps, "overshoot": overshoot, "candidates": candidates},
            {
                "brittle": brittle_runner(make_brittle),
                "torchattacks": torchattacks_runner(
                    lambda m: ta.DeepFool(m, steps=steps, overshoot=overshoot)
                ),
                "foolbox": foolbox_runner(
                    lambda: fb.attacks.L2DeepFoolAttack(
                        steps=steps, candidates=candidates, overshoot=overshoot
                    ),
                    None,
                ),
                "art": art_runner(
                    lambda c: art.DeepFool(
                        c,
                        max_iter=steps,
                        epsilon=overshoot,
                        nb_grads=candidates,
                        batch_size=batch,
                        verbose=False,
                    )
                ),
            },
            notes={
                "torchattacks": "one image at a time; all classes (no candidates option); "
                "overshoot applied per step",
                "art": "overshoot applied once to the total perturbation after the loop",
            },
        )

    def cw(steps: int = 100, binary_steps: int = 9, lr: float = 0.1, const: float = 0.01) -> Config:
        def make_brittle() -> Any:
            from brittle.attacks.cw import CarliniWagnerL2

            return CarliniWagnerL2(
                steps=steps, binary_steps=binary_steps, confidence=0.0, lr=lr, initial_const=const
            )

        return Config(
            "cw_l2",
            "cw",
            f"C&W L2 ({binary_steps}x{steps} steps, lr {lr:g}, c0 {const:g})",
            None,
            {
                "steps": steps,
                "binary_steps": binary_steps,
                "lr": lr,
                "initial_const": const,
                "confidence": 0.0,
            },
            {
                "brittle": brittle_runner(make_brittle),
                "foolbox": foolbox_runner(
                    lambda: fb.attacks.L2CarliniWagnerAttack(
                        binary_search_steps=binary_steps,
                        steps=steps,
                        stepsize=lr,
                        confidence=0.0,
                        initial_const=const,
                        abort_early=True,
                    ),
                    None,
                ),
                "art": art_runner(
                    lambda c: art.CarliniL2Method(
                        c,
                        confidence=0.0,
                        learning_rate=lr,
                        binary_search_steps=binary_steps,
                        max_iter=steps,
                        initial_const=const,
                        batch_size=batch,
                        verbose=False,
                    )
                ),
                "torchattacks": torchattacks_runner(
                    lambda m: ta.CW(m, c=const, kappa=0.0, steps=steps, lr=lr)
                ),
                "torchattacks (c=1)": torchattacks_runner(
                    lambda m: ta.CW(m, c=1.0, kappa=0.0, steps=steps, lr=lr)
                ),
            },
            notes={
                "torchattacks": f"no binary search: one run of {steps} steps at c={const:g}",
                "torchattacks (c=1)": f"no binary search: one run of {steps} steps at its "
                "default c=1",
                "art": "line search (halving/doubling) instead of Adam; c doubles on failure",
            },
            max_n={"art": art_cw_n},
            no_warmup=("art",),
        )

    out += [fgsm(0.1), fgsm(0.3)]
    out += [pgd(0.1), pgd(0.3)]
    out += [bim(0.1), bim(0.3)]
    out += [mifgsm(0.1), mifgsm(0.3)]
    out += [deepfool()]
    out += [cw()]
    return out


# ------------------------------------------------------------------------------ measuring
def measure(
    cfg: Config, lib: str, ctx: Context, x: Tensor, y: Tensor, batch: int
) -> dict[str, Any]:
    """Run one library's attack over ``x`` in batches and judge its output with the model."""
    row: dict[str, Any] = {
        "key": cfg.key,
        "attack": cfg.label,
        "family": cfg.family,
        "library": lib,
        "n": len(x),
        "params": cfg.params,
        "note": cfg.notes.get(lib, ""),
    }
    try:
        run = cfg.runners[lib](ctx)
    except Exception as err:  # a missing attack or an API change: record it
        row["error"] = f"{type(err).__name__}: {err}"
        return row
    limit = cfg.max_n.get(lib)
    if limit is not None and limit < len(x):
        x, y = x[:limit], y[:limit]
        row["n"] = limit
        row["note"] = "; ".join(filter(None, [row["note"], f"first {limit} images only (slow)"]))
    if lib not in cfg.no_warmup:
        # untimed warm-up on two images: first-call costs (allocations, lazy imports, autograd
        # and vmap set-up) are paid by every library before its timed run
        try:
            run(x[:2].clone(), y[:2].clone())
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"
            row["traceback"] = traceback.format_exc(limit=4)
            return row
    ctx.counter.reset()
    ctx.own_gradients.clear()
    torch.manual_seed(0)
    np.random.seed(0)
    outputs: list[Tensor] = []
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        for xb, yb in zip(x.split(batch), y.split(batch), strict=True):
            outputs.append(run(xb.clone(), yb.clone()).detach().to(torch.float32).cpu())
    except Exception as err:
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = traceback.format_exc(limit=4)
        return row
    seconds = time.perf_counter() - start
    gradients, forwards = ctx.counter.gradients, ctx.counter.forwards
    x_adv = torch.cat(outputs)
    row.update(evaluate(ctx.counter.module, x, y, x_adv, cfg.eps))
    row.update(
        seconds=seconds,
        samples_per_s=len(x) / seconds,
        gradients_per_sample=gradients / len(x),
        forwards_per_sample=forwards / len(x),
        load_1min=[load_before, os.getloadavg()[0]],
    )
    if lib == "brittle" and ctx.own_gradients:
        # brittle's own count: the wrapper's hook sees a batched vector-Jacobian product
        # (DeepFool's C logit differences in one backward pass) as one gradient, brittle
        # counts C; elsewhere the two agree
        row["hook_gradients_per_sample"] = row["gradients_per_sample"]
        row["gradients_per_sample"] = sum(ctx.own_gradients) / len(x)
    return row


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from repeated timings of the same run: the first run's results, the median
    time (every run is checked to give the same success count)."""
    row = dict(runs[0])
    if len(runs) == 1 or "error" in row:
        return row
    if any("error" in r or r["successes"] != row["successes"] for r in runs):
        row["error"] = "repeated runs disagree (an error or another success count)"
        return row
    row["seconds_each"] = [r["seconds"] for r in runs]
    row["seconds"] = statistics.median(row["seconds_each"])
    row["samples_per_s"] = row["n"] / row["seconds"]
    return row


def evaluate(
    module: torch.nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, eps: float | None
) -> dict[str, Any]:
    """Success judged by the model on the returned images; norms of the successful ones."""
    with torch.no_grad():
        pred_clean = torch.cat([module(b).argmax(1) for b in x.split(500)])
        finite = torch.isfinite(x_adv).flatten(1).all(1)
        safe = torch.where(finite.view(-1, 1, 1, 1), x_adv, x)
        pred_adv = torch.cat([module(b).argmax(1) for b in safe.split(500)])
    correct = pred_clean == y
    success = correct & (pred_adv != y) & finite
    delta = (safe - x).flatten(1)
    l2, linf = delta.norm(dim=1), delta.abs().amax(1)
    out_of_box = ((safe < -1e-6) | (safe > 1 + 1e-6)).flatten(1).any(1) | ~finite
    over_budget = linf > eps + 1e-5 if eps is not None else torch.zeros_like(success)
    # a minimal attack that fails should return the input; count what else comes back
    failed_changed = correct & ~success & (l2 > 0)

    def median(v: Tensor, mask: Tensor = success) -> float:
        return float(v[mask].median()) if bool(mask.any()) else math.nan

    # Foolbox's C&W returns an all-black image when it found nothing; the model may well
    # misclassify a black image, which is no adversarial example of x
    black = correct & (safe.flatten(1).abs().amax(1) == 0) & (x.flatten(1).abs().amax(1) > 0)
    real = success & ~black
    return {
        "all_black": int(black.sum()),
        "success_rate_excluding_black": float(real.sum()) / max(int(correct.sum()), 1),
        "median_l2_excluding_black": median(l2, real),
        "clean_correct": int(correct.sum()),
        "successes": int(success.sum()),
        "success_rate": float(success.sum()) / max(int(correct.sum()), 1),
        "median_l2": median(l2),
        "median_linf": median(linf),
        "out_of_box": int(out_of_box.sum()),
        "over_budget": int(over_budget.sum()),
        "failed_but_changed": int(failed_changed.sum()),
        "failed_but_changed_median_l2": float(l2[failed_changed].median())
        if bool(failed_changed.any())
        else math.nan,
    }


# ------------------------------------------------------------------------------ targets
def best_peer(rows: list[dict[str, Any]], peers: tuple[str, ...]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["library"] in peers and "error" not in r]
    return max(ok, key=lambda r: r["samples_per_s"]) if ok else None


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The three speed targets, each measured in this run, with their quality conditions."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault(r["key"], []).append(r)
    out: list[dict[str, Any]] = []

    def brittle_row(key: str) -> dict[str, Any] | None:
        found = [r for r in by_key.get(key, []) if r["library"] == "brittle" and "error" not in r]
        return found[0] if found else None

    for key in sorted(k for k in by_key if k.startswith("pgd40_linf_")):
        b, p = brittle_row(key), best_peer(by_key[key], ("torchattacks", "foolbox", "art"))
        if b and p:
            ratio = b["samples_per_s"] / p["samples_per_s"]
            quality = b["success_rate"] >= p["success_rate"]
            out.append(
                {
                    "target": f"{b['attack']}: >= 1.3x the fastest peer at equal or better success",
                    "peer": p["library"],
                    "ratio": ratio,
                    "needed": 1.3,
                    "quality": quality,
                    "quality_detail": f"success {b['success_rate']:.3f} vs {p['success_rate']:.3f}",
                    "met": ratio >= 1.3 and quality,
                }
            )
    key = "deepfool_l2"
    b = brittle_row(key)
    f = [r for r in by_key.get(key, []) if r["library"] == "foolbox" and "error" not in r]
    if b and f:
        p = f[0]
        ratio = b["samples_per_s"] / p["samples_per_s"]
        quality = b["median_l2"] <= p["median_l2"] and b["success_rate"] >= p["success_rate"]
        out.append(
            {
                "target": "DeepFool L2: >= 1.5x Foolbox at equal or smaller median L2",
                "peer": "foolbox",
                "ratio": ratio,
                "needed": 1.5,
                "quality": quality,
                "quality_detail": f"median L2 {b['median_l2']:.4f} vs {p['median_l2']:.4f}, "
                f"success {b['success_rate']:.3f} vs {p['success_rate']:.3f}",
                "met": ratio >= 1.5 and quality,
            }
        )
    key = "cw_l2"
    b = brittle_row(key)
    # torchattacks' C&W has no binary search over c: its settings cannot be made equal
    p = best_peer(by_key.get(key, []), ("foolbox", "art"))
    if b and p:
        ratio = b["samples_per_s"] / p["samples_per_s"]
        # all-black 'not found' images are failures, not adversarial examples
        ps, pl = p["success_rate_excluding_black"], p["median_l2_excluding_black"]
        bs, bl = b["success_rate_excluding_black"], b["median_l2_excluding_black"]
        quality = bs >= ps and bl <= pl
        out.append(
            {
                "target": "C&W L2: >= 2x the fastest peer (with binary search) at equal or "
                "better success and median L2",
                "peer": p["library"],
                "ratio": ratio,
                "needed": 2.0,
                "quality": quality,
                "quality_detail": f"success {bs:.3f} vs {ps:.3f}, median L2 {bl:.4f} vs "
                f"{pl:.4f} (all-black returns counted as failures)",
                "met": ratio >= 2.0 and quality,
            }
        )
    return out


# ------------------------------------------------------------------------------ output
def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], goals: list[dict[str, Any]]) -> str:
    lines = [
        "# brittle vs torchattacks, Foolbox and ART",
        "",
        f"Model: zoo LeNet trained on MNIST ({meta['model']['test_accuracy']:.4f} test accuracy); "
        f"the first {meta['n']} test images ({meta['clean_correct']} classified correctly), "
        f"batches of {meta['batch']}, torch.set_num_threads({meta['threads']}), CPU "
        f"({meta['cpu_count']} cores). Load average (1 min): {meta['load_start']:.2f} at the "
        f"start, {meta['load_end']:.2f} at the end (other jobs may have shared the machine; "
        "each row's load is in the JSON)."
        + (
            f" Each row timed {meta['repeat']} times, the libraries' order reversed every other "
            "round; samples/s from the median time."
            if meta.get("repeat", 1) > 1
            else ""
        ),
        "",
        "Success = misclassified after the attack / correctly classified before, judged by "
        "running the model on each library's returned images. Medians over successful "
        "examples. Gradients = per-sample backward passes to the input, counted by a wrapper "
        "around the network for every library. Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + ".",
        "",
        "| attack | library | samples/s | success | median L2 | median Linf | grads/sample "
        "| notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['attack']} | {r['library']} | - | - | - | - | - | "
                f"error: {r['error'][:160].replace('|', '/')} |"
            )
            continue
        notes = [r["note"]] if r["note"] else []
        if r["over_budget"]:
            notes.append(f"{r['over_budget']} over budget")
        if r["out_of_box"]:
            notes.append(f"{r['out_of_box']} outside [0, 1] or NaN")
        if r.get("all_black"):
            notes.append(
                f"{r['all_black']} all-black returns ('not found'), counted as successes by "
                f"the model; without them success {r['success_rate_excluding_black']:.3f}, "
                f"median L2 {r['median_l2_excluding_black']:.3f}"
            )
        if r["family"] in ("deepfool", "cw") and r["failed_but_changed"]:
            notes.append(
                f"{r['failed_but_changed']} failures returned changed "
                f"(median L2 {r['failed_but_changed_median_l2']:.2f})"
            )
        lines.append(
            f"| {r['attack']} | {r['library']} | {fmt(r['samples_per_s'], '.1f')} | "
            f"{fmt(r['success_rate'], '.3f')} | {fmt(r['median_l2'], '.3f')} | "
            f"{fmt(r['median_linf'], '.3f')} | {fmt(r['gradients_per_sample'], '.1f')} | "
            f"{'; '.join(notes).replace('|', chr(92) + '|')} |"
        )
    if goals:
        lines += ["", "## Targets (measured side by side in this run)", ""]
        lines += ["| target | vs | ratio | needed | quality | met |", "|---|---|---:|---:|---|---|"]
        for g in goals:
            lines.append(
                f"| {g['target']} | {g['peer']} | {g['ratio']:.2f}x | {g['needed']:g}x | "
                f"{g['quality_detail']} ({'ok' if g['quality'] else 'NOT met'}) | "
                f"{'yes' if g['met'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name, module in (
        ("brittle", "brittle"),
        ("torchattacks", "torchattacks"),
        ("foolbox", "foolbox"),
        ("art", "art"),
    ):
        try:
            out[name] = __import__(module).__version__
        except Exception as err:  # pragma: no cover - reported, not fatal
            out[name] = f"unavailable ({type(err).__name__})"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of test images (first n)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="attack families or row keys: fgsm pgd bim mifgsm deepfool cw (or e.g. pgd40_linf_0.3)",
    )
    parser.add_argument("--libs", nargs="*", default=None, help="libraries to run (default all)")
    parser.add_argument(
        "--art-cw-n",
        type=int,
        default=20,
        help="images for ART's C&W, whose numpy line search takes half an hour per 100",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time each row this many times, the libraries' order reversed every other round, "
        "and report the median time (the machine's noise hits every library alike)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output path without suffix")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    torch.set_num_threads(args.threads)
    classifier, test = common.trained_lenet()
    counter = common.CountingModule(classifier.module).eval()
    from brittle.classifier import Classifier

    ctx = Context(
        counter,
        Classifier(counter, bounds=(0.0, 1.0), num_classes=10, input_shape=common.INPUT_SHAPE),
    )
    x, y = test.x[: args.n].contiguous(), test.y[: args.n].contiguous()
    chosen = [
        c
        for c in configs(args.batch, args.art_cw_n)
        if args.only is None or c.family in args.only or c.key in args.only
    ]
    if not chosen:
        parser.error(f"--only {args.only} matches no attack")
    load_start = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for cfg in chosen:
        libs = [lib for lib in cfg.runners if args.libs is None or lib.split(" ")[0] in args.libs]
        timed: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
        for round_ in range(args.repeat):
            for lib in libs if round_ % 2 == 0 else libs[::-1]:
                timed[lib].append(measure(cfg, lib, ctx, x, y, args.batch))
        for lib in libs:
            row = median_row(timed[lib])
            rows.append(row)
            if "error" in row:
                print(f"{cfg.label:45s} {lib:20s} ERROR {row['error'][:120]}", flush=True)
            else:
                print(
                    f"{cfg.label:45s} {lib:20s} {row['samples_per_s']:9.1f}/s "
                    f"success {row['success_rate']:.3f} L2 {fmt(row['median_l2'], '.3f'):>6} "
                    f"Linf {fmt(row['median_linf'], '.3f'):>6} "
                    f"grads {row['gradients_per_sample']:.1f}",
                    flush=True,
                )
    goals = targets(rows)
    with torch.no_grad():
        clean_correct = int((classifier.module(x).argmax(1) == y).sum())
    meta = {
        "n": args.n,
        "batch": args.batch,
        "threads": args.threads,
        "repeat": args.repeat,
        "cpu_count": os.cpu_count(),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "clean_correct": clean_correct,
        "versions": versions(),
        "model": {
            "checkpoint": str(classifier.checkpoint.relative_to(common.REPO)),
            "test_accuracy": float(classifier.meta.get("test_accuracy", math.nan)),
            "recipe": common.RECIPE,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    full = args.only is None and args.libs is None and args.n == 1000
    out = args.out or RESULTS / ("peers" if full else "peers_partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "rows": rows, "targets": goals}, indent=2, default=str) + "\n"
    )
    out.with_suffix(".md").write_text(markdown(meta, rows, goals))
    print()
    for g in goals:
        print(
            f"{g['target']}\n    vs {g['peer']}: {g['ratio']:.2f}x (needed {g['needed']:g}x); "
            f"{g['quality_detail']}; {'MET' if g['met'] else 'NOT MET'}"
        )
    print(f"\nwrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
