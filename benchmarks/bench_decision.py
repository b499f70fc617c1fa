"""The decision-based attacks against the peers on one LeNet, at equal query budgets.

    python benchmarks/bench_decision.py                  # 20 MNIST test images
    python benchmarks/bench_decision.py --n 10 --peer-steps 5 --out /tmp/x

brittle's HopSkipJump (L2 and Linf) against Foolbox 3's HopSkipJumpAttack and ART's
HopSkipJump, and brittle's RayS (Linf; neither Foolbox nor ART has RayS: ART's decision-based
attacks are HopSkipJump, Boundary, GeoDA and Sign-OPT), on the zoo LeNet of
``common.trained_lenet`` (one ``nn.Module`` wrapped in ``common.CountingModule``, the same
weights for everyone), on the first ``--n`` test images it classifies correctly.

Neither peer takes a query budget: each runs ``--peer-steps`` iterations (its other
parameters at their defaults, which are the paper's), and its queries are counted as the
rows its model saw (the initialisation included). brittle then runs with ``max_queries`` set
to that peer's mean queries per sample (rounded down), so it never has more queries per
sample than the peer spent on average, and RayS runs at the Linf budget of the Linf rows.

What is measured, the same way for everyone: the model is run on the returned images
(success = misclassified; the peers' own flags are not used); median L2 or Linf distance of
the successful images; queries per sample (mean and max, counted by the module); samples/s
= images / wall-clock seconds of the attack call, with one torch thread. Every run is made
in this one process, in turns (the machine is shared: compare within a run, not across
files). The counted rows include each library's own checks (brittle: the input check and
the re-check of the returned images); brittle's own count per sample (``result.queries``,
which never passes ``max_queries``) is given as its maximum.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from brittle import Classifier
from brittle.attacks.hopskipjump import HopSkipJump
from brittle.attacks.rays import RayS
from brittle.files import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"
PEERS = {"foolbox": "Foolbox 3.3.4", "art": "ART 1.20.1"}


class AsFloat(torch.nn.Module):
    """ART's HopSkipJump sends float64 noise: cast it to the network's float32."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.module(x.float())
        return out


def images(n: int) -> tuple[Classifier, common.CountingModule, Tensor, Tensor]:
    """The LeNet (behind a counter) and its first ``n`` correctly classified test images."""
    clf, test = common.trained_lenet()
    counter = common.CountingModule(clf.module).eval()
    model = Classifier(counter, bounds=(0.0, 1.0), num_classes=10, input_shape=common.INPUT_SHAPE)
    x, y = test.x[: 4 * n], test.y[: 4 * n]
    right = (clf.predict(x) == y).nonzero().squeeze(1)[:n]
    return model, counter, x[right], y[right]


def measure(
    name: str,
    norm: str,
    run: Callable[[], Tensor],
    model: Classifier,
    counter: common.CountingModule,
    x: Tensor,
    y: Tensor,
    per_sample: Callable[[], Tensor] | None = None,
) -> dict[str, Any]:
    """Run an attack once; judge what it returned with the model; count its queries."""
    counter.reset()
    start = time.perf_counter()
    x_adv = run().detach().float()
    seconds = time.perf_counter() - start
    queries = counter.forwards
    counter.reset()
    success = model.predict(x_adv) != y
    delta = (x_adv - x).flatten(1)
    distance = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(1)
    inside = bool(((x_adv >= 0) & (x_adv <= 1)).all())
    counts = per_sample() if per_sample is not None else None
    return {
        "attack": name,
        "norm": norm,
        "n": len(x),
        "success_rate": float(success.float().mean()),
        "median_distance": float(distance[success].median()) if bool(success.any()) else None,
        "queries_per_sample": queries / len(x),
        "max_queries_per_sample": None if counts is None else int(counts.max()),
        "samples_per_s": len(x) / seconds,
        "seconds": seconds,
        "inside_box": inside,
    }


def brittle_row(
    attack: HopSkipJump | RayS,
    label: str,
    norm: str,
    model: Classifier,
    counter: common.CountingModule,
    x: Tensor,
    y: Tensor,
) -> dict[str, Any]:
    held: dict[str, Any] = {}

    def run() -> Tensor:
        result = attack(model, x, y)
        held["result"] = result
        return result.x_adv

    row = measure(
        label,
        norm,
        run,
        model,
        counter,
        x,
        y,
        lambda: held["result"].queries,
    )
    row["max_queries"] = attack.max_queries
    return row


def foolbox_row(
    norm: str, steps: int, model: Classifier, counter: common.CountingModule, x: Tensor, y: Tensor
) -> dict[str, Any]:
    import foolbox as fb

    fmodel = fb.PyTorchModel(counter.eval(), bounds=(0.0, 1.0), device="cpu")
    constraint: Literal["l2", "linf"] = "l2" if norm == "l2" else "linf"
    attack = fb.attacks.HopSkipJumpAttack(steps=steps, constraint=constraint)

    def run() -> Tensor:
        torch.manual_seed(0)
        _, clipped, _ = attack(fmodel, x, fb.criteria.Misclassification(y), epsilons=None)
        return clipped

    row = measure(f"Foolbox HopSkipJump ({steps} steps)", norm, run, model, counter, x, y)
    row["library"] = "foolbox"
    return row


def art_row(
    norm: str, steps: int, model: Classifier, counter: common.CountingModule, x: Tensor, y: Tensor
) -> dict[str, Any]:
    from art.attacks.evasion import HopSkipJump as ArtHSJ

    classifier = common.art_classifier(AsFloat(counter))
    attack = ArtHSJ(classifier, norm=2 if norm == "l2" else np.inf, max_iter=steps, verbose=False)

    def run() -> Tensor:
        np.random.seed(0)
        return torch.from_numpy(attack.generate(x.numpy(), y=y.numpy()))

    row = measure(f"ART HopSkipJump ({steps} iterations)", norm, run, model, counter, x, y)
    row["library"] = "art"
    return row


def table(data: dict[str, Any]) -> str:
    lines = [
        "# Decision-based attacks: brittle against Foolbox and ART at equal query budgets",
        "",
        f"LeNet on the first {data['n']} correctly classified MNIST test images; machine: "
        f"{data['machine']['cpu']} ({data['machine']['logical_cpus']} logical CPUs, shared: "
        "timings are indicative, compare within a block). Each peer runs its default "
        f"HopSkipJump for {data['peer_steps']} iterations (queries counted as the rows its "
        "model saw, its initialisation included); brittle runs with max_queries = that "
        "peer's mean queries per sample, rounded down. RayS runs at the Linf blocks' "
        "budgets (Foolbox and ART have no RayS). Success and distances are the model's "
        "verdict on the returned images. Rows seen per sample include each library's own "
        "checks (brittle's input check and re-check: 3 rows per sample).",
        "",
    ]
    for block in data["blocks"]:
        lines += [
            f"## {block['title']}",
            "",
            "| attack | success | median distance | rows seen / sample | brittle's queries, "
            "max per sample | samples/s |",
            "|---|---|---|---|---|---|",
        ]
        for r in block["rows"]:
            dist = "n/a" if r["median_distance"] is None else f"{r['median_distance']:.4f}"
            most = "n/a" if r["max_queries_per_sample"] is None else r["max_queries_per_sample"]
            lines.append(
                f"| {r['attack']} | {100 * r['success_rate']:.0f}% | {dist} | "
                f"{r['queries_per_sample']:.0f} | {most} | {r['samples_per_s']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--peer-steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small batches: one thread is ten times faster on a busy machine
    model, counter, x, y = images(args.n)
    blocks = []
    for norm in ("l2", "linf"):
        for peer in (foolbox_row, art_row):
            theirs = peer(norm, args.peer_steps, model, counter, x, y)
            budget = max(1, math.floor(theirs["queries_per_sample"]))
            rows = [theirs]
            hsj = HopSkipJump(norm=norm, max_queries=budget)
            rows.append(brittle_row(hsj, f"brittle HopSkipJump ({budget} queries)", norm, model,
                                    counter, x, y))  # fmt: skip
            if norm == "linf":
                rays = RayS(max_queries=budget)
                rows.append(
                    brittle_row(
                        rays, f"brittle RayS ({budget} queries)", norm, model, counter, x, y
                    )
                )
            title = f"{norm.upper()}: against {PEERS[theirs['library']]}"
            blocks.append({"title": title, "budget": budget, "rows": rows})
            print(json.dumps(blocks[-1], indent=1), flush=True)
    data = {
        "n": len(x),
        "peer_steps": args.peer_steps,
        "machine": common.machine(),
        "blocks": blocks,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "decision.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(args.out / "decision.md", table(data))


if __name__ == "__main__":
    main()
