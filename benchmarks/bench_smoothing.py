"""Certification speed of randomised smoothing: brittle against ART (run by hand, not a test).

    .venv/bin/python benchmarks/bench_smoothing.py [--samples 2] [--draws 100000] [--rounds 1]

Both certify the same MNIST test images with the same network (the benchmark LeNet of
``common.trained_lenet``, one ``nn.Module`` object), sigma 0.25, n0 = 100 selection draws and
``--draws`` estimation draws per image (the paper's n = 100,000), alpha = 0.001:

- brittle: ``Smoothed(classifier, 0.25).certify(x, ids, n0=100, n=draws)``, its chunk size
  chosen from the memory (``Smoothed.rows``): many images x draws per forward pass, the noise
  drawn per image from ``brittle.randomness`` (Philox) on the device;
- ART 1.20: ``PyTorchRandomizedSmoothing(...).certify(x, n=draws, batch_size=B)`` with the same
  B: one image at a time, its n noisy copies from numpy's global generator. ART's Clopper-Pearson
  bound comes from statsmodels, which is not installed here; it is replaced by scipy's
  ``beta.ppf(alpha, k, n - k + 1)``, the same bound (statsmodels' ``proportion_confint(k, n,
  2 alpha, "beta")[0]``), whose cost is nothing next to the forward passes.

The machine is shared: the two run alternately (brittle, ART, brittle, ...) for ``--rounds``
rounds in one process, and the ratio of their medians is the figure to read. A split of
brittle's time (the noise alone, the forward passes alone, on one image's draws) says where
it goes. Writes ``benchmarks/results/smoothing.json`` and ``benchmarks/results/smoothing.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from brittle.certify.smoothing import ESTIMATE_STREAM, Smoothed
from brittle.files import write_text_atomic
from brittle.randomness import gaussian, uniform
from brittle.report.content import write_json

RESULTS = Path(__file__).resolve().parent / "results"
SIGMA, N0, ALPHA = 0.25, 100, 0.001


def art_smoother(module: nn.Module, draws: int) -> Any:
    """ART's ``PyTorchRandomizedSmoothing`` on ``module``, its Clopper-Pearson bound from scipy."""
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    class Smoother(PyTorchRandomizedSmoothing):
        def _lower_confidence_bound(self, n_class_samples: int, n_total_samples: int) -> float:
            k = n_class_samples
            if k == 0:
                return 0.0
            return float(stats.beta.ppf(self.alpha, k, n_total_samples - k + 1))

    return Smoother(
        model=module,
        loss=nn.CrossEntropyLoss(),
        input_shape=common.INPUT_SHAPE,
        nb_classes=common.NUM_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
        sample_size=N0,
        scale=SIGMA,
        alpha=ALPHA,
    )


def split(smoothed: Smoothed, x: torch.Tensor, rows: int, draws: int) -> dict[str, float]:
    """Seconds per image of the noise alone and of the forward passes alone, from ``draws``
    draws of one image in chunks of ``rows``."""
    ids = torch.zeros(1, dtype=torch.long)
    dim = x[0].numel()
    noise_s = forward_s = 0.0
    with torch.no_grad(), smoothed.base.evaluation():
        for start in range(0, draws, rows):
            m = min(rows, draws - start)
            t0 = time.perf_counter()
            eps = gaussian(uniform(0, ids, ESTIMATE_STREAM, m * dim, start * dim)).view(
                m, *x.shape[1:]
            )
            noisy = x[:1] + SIGMA * eps.float()
            t1 = time.perf_counter()
            smoothed.base.logits(noisy).argmax(1)
            t2 = time.perf_counter()
            noise_s, forward_s = noise_s + t1 - t0, forward_s + t2 - t1
    return {"noise_seconds": noise_s, "forward_seconds": forward_s, "draws": draws}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2, help="Test images certified per run.")
    parser.add_argument("--draws", type=int, default=100_000, help="Estimation draws per image.")
    parser.add_argument("--rounds", type=int, default=1, help="Alternating rounds.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier, test = common.trained_lenet(progress=False)
    x, y = test.x[: args.samples], test.y[: args.samples]
    ids = torch.arange(args.samples)
    smoothed = Smoothed(classifier, SIGMA, seed=0)
    rows = smoothed.rows(x)
    art = art_smoother(classifier.module, args.draws)
    x_np = x.numpy()
    times: dict[str, list[float]] = {"brittle": [], "art": []}
    outputs: dict[str, Any] = {}
    for round_ in range(args.rounds):
        start = time.perf_counter()
        cert = smoothed.certify(x, ids, n0=N0, n=args.draws, alpha=ALPHA)
        times["brittle"].append(time.perf_counter() - start)
        print(f"round {round_}: brittle {times['brittle'][-1]:.1f} s", flush=True)
        np.random.seed(round_)
        start = time.perf_counter()
        art_label, art_radius = art.certify(x_np, n=args.draws, batch_size=rows)
        times["art"].append(time.perf_counter() - start)
        print(f"round {round_}: ART {times['art'][-1]:.1f} s", flush=True)
        outputs = {
            "brittle": {"label": cert.label.tolist(), "radius": cert.radius.tolist()},
            "art": {"label": [int(v) for v in art_label], "radius": [float(r) for r in art_radius]},
            "true_label": y.tolist(),
        }
    medians = {k: statistics.median(v) for k, v in times.items()}
    rates = {k: args.samples / v for k, v in medians.items()}
    parts = split(smoothed, x, rows, min(args.draws, 20_000))
    result = {
        "machine": common.machine(),
        "threads": args.threads,
        "model": "benchmark LeNet (common.trained_lenet), conv 32, conv 64, fc 200, fc 200",
        "sigma": SIGMA,
        "n0": N0,
        "n": args.draws,
        "alpha": ALPHA,
        "samples": args.samples,
        "rounds": args.rounds,
        "rows_per_forward": rows,
        "seconds": times,
        "median_seconds": medians,
        "samples_per_second": rates,
        "speedup_brittle_over_art": medians["art"] / medians["brittle"],
        "brittle_split_one_image": parts,
        "certificates": outputs,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    write_json(args.results / "smoothing.json", result)
    write_text_atomic(args.results / "smoothing.md", report(result))
    print(report(result))


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    parts = r["brittle_split_one_image"]
    scale = r["n"] / parts["draws"]
    lines = [
        "# Randomised smoothing: certification speed, brittle against ART",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs (shared with other jobs), "
        f"{r['threads']} torch thread(s), torch {m['torch']}. Model: {r['model']}. "
        f"sigma {r['sigma']}, n0 = {r['n0']}, n = {r['n']:,} estimation draws per image, "
        f"alpha = {r['alpha']}; {r['samples']} MNIST test image(s) per run, "
        f"{r['rounds']} alternating round(s); {r['rows_per_forward']:,} noisy inputs per "
        "forward pass for both (brittle's choice from memory).",
        "",
        "| library | median seconds | samples/s | seconds per sample |",
        "|---|---|---|---|",
    ]
    for key, name in (("brittle", "brittle"), ("art", "ART 1.20 PyTorchRandomizedSmoothing")):
        sec = r["median_seconds"][key]
        lines.append(
            f"| {name} | {sec:.1f} | {r['samples_per_second'][key]:.4f} | "
            f"{sec / r['samples']:.1f} |"
        )
    lines += [
        "",
        f"brittle / ART speed: {r['speedup_brittle_over_art']:.2f}x (ART's time over brittle's).",
        "",
        f"Where brittle's time goes (one image, {parts['draws']:,} draws, scaled to "
        f"{r['n']:,}): noise {parts['noise_seconds'] * scale:.1f} s (Philox4x32 in int64 "
        f"tensor arithmetic and Box-Muller), forward passes {parts['forward_seconds'] * scale:.1f} s.",
        "",
        "Certificates (label, radius): brittle "
        + str(
            list(
                zip(
                    r["certificates"]["brittle"]["label"],
                    [round(v, 3) for v in r["certificates"]["brittle"]["radius"]],
                    strict=True,
                )
            )
        )
        + "; ART "
        + str(
            list(
                zip(
                    r["certificates"]["art"]["label"],
                    [round(v, 3) for v in r["certificates"]["art"]["radius"]],
                    strict=True,
                )
            )
        )
        + f"; true labels {r['certificates']['true_label']}. The noise differs (brittle's is "
        "keyed per image, ART's from numpy's global generator), so radii agree only up to the "
        "Monte Carlo error.",
        "",
        "ART's Clopper-Pearson bound (statsmodels, not installed) is computed by scipy's "
        "beta.ppf, the same bound. With few samples the figure is per-sample cost, not "
        "throughput at scale: both libraries are dominated by the forward passes of "
        "n + n0 noisy copies per image.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
