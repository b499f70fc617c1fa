"""Cohen, Rosenfeld & Kolter (ICML 2019): certified L2 robustness by randomised smoothing, at
a reduced MNIST scale.

The experiment of the paper's section 5 (their CIFAR-10 and ImageNet tables), on the data at
hand:

1. the zoo LeNet trained with Gaussian data augmentation (``--defense gaussian``) at each
   noise level sigma in {0.25, 0.5}: every training input is replaced by x + N(0, sigma^2 I),
   so the base classifier f learns the inputs the smoothed one will feed it (the checkpoints
   are cached in the output folder and reused while their recipe holds);
2. CERTIFY (their Algorithm 1) on the first N test images, for the smoothed classifier g of
   each model at the sigma it was trained with: n0 = 100 selection draws, n estimation draws,
   alpha = 0.001, radius R = sigma Phi^-1(p_A_lower) (:mod:`brittle.certify.smoothing`);
3. the approximate certified test accuracy at radius r, the share of images whose certified
   class is the true one with R >= r (abstentions wrong), at r in {0, 0.5, 1.0, 1.5}, and the
   curve over r.

The paper reports no MNIST figures (its experiments are CIFAR-10 and ImageNet), so the rows
carry no paper value: this reproduction checks the *shape* the paper shows for every data
set (its Figure 6 and Table 7, sigma in {0.12, 0.25, 0.5, 1.0}): certified accuracy falls
with the radius; a larger sigma certifies larger radii (sigma Phi^-1(alpha^(1/n)) is the most
n draws can certify) at the price of a lower accuracy at radius 0.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.figure import Figure as PlotFigure
from scipy import stats
from torch import nn

from brittle.certify import Certificates, certified_accuracy
from brittle.certify.smoothing import Smoothed
from brittle.classifier import Classifier
from brittle.data import Dataset
from brittle.defenses.gaussian import GaussianTraining
from brittle.report.plots import to_png
from brittle.validation import check_positive_integer
from brittle.zoo import accuracy, build_model, train_model

from .cache import bundled_note, cached, data_info, load_splits, parameters, save_trained
from .report import Figure, Reproduction, Row

Log = Callable[[str], None]

NAME = "cohen2019"
PAPER = {
    "key": NAME,
    "title": "Certified Adversarial Robustness via Randomized Smoothing",
    "authors": "J. Cohen, E. Rosenfeld, J. Z. Kolter",
    "venue": "International Conference on Machine Learning (ICML) 2019",
    "arxiv": "1902.02918",
}

SIGMAS = (0.25, 0.5)
RADII = (0.0, 0.5, 1.0, 1.5)
ROW_IDS = tuple(
    [f"base_accuracy_sigma_{s:g}" for s in SIGMAS]
    + [f"certified_sigma_{s:g}_radius_{r:g}" for s in SIGMAS for r in RADII]
)
"""The fixed ids of this reproduction's rows (a report's ``rows[].id``; never renamed)."""

N0 = 100
"""Selection draws per image (the paper's n0)."""
ALPHA = 0.001
"""The paper's failure probability."""
DEFAULT_IMAGES = 100
DEFAULT_DRAWS = 10_000
"""Estimation draws per image: the paper's 100,000 reduced tenfold; sigma 0.5 can still
certify radius 1.5 (the most 10,000 draws certify is 0.5 Phi^-1(0.001^(1/10,000)) = 1.6)."""
DEFAULT_EPOCHS = 2
CHUNK = 10
"""Images certified per call (one log line each)."""
BATCH_SIZE = 128
LR = 1e-3
OPTIMIZER: Literal["adam"] = "adam"
CURVE = tuple(float(r) for r in np.round(np.linspace(0.0, 2.0, 81), 3))
"""The radii of the certified accuracy curve."""


@dataclass(frozen=True)
class Trained:
    """A base model trained under Gaussian noise of ``sigma``."""

    sigma: float
    module: nn.Module
    accuracy: float
    reused: bool
    seconds: float
    path: Path


def run(
    out: Path,
    *,
    n_images: int | None = None,
    n_second: int | None = None,
    epochs: int | None = None,
    n_train: int | None = None,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    device: torch.device | None = None,
    seed: int = 0,
    progress: bool = True,
    log: Log | None = None,
) -> Reproduction:
    """Certify the first ``n_images`` (default 100) test images with ``n_second`` estimation
    draws each (default 10,000; the paper's n = 100,000), after training a LeNet under
    Gaussian noise for ``epochs`` (default 2) on ``n_train`` images drawn with ``seed``
    (default all) at each sigma of :data:`SIGMAS`. ``dataset`` defaults to MNIST when found,
    else the bundled ``mnist5k``, which the notes then say."""
    say = log or (lambda message: None)
    device = device or torch.device("cpu")
    n_images = DEFAULT_IMAGES if n_images is None else n_images
    draws = DEFAULT_DRAWS if n_second is None else n_second
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    check_positive_integer(draws, "--n-second (noise draws per image)")
    started = time.perf_counter()
    timing: dict[str, float] = {}
    train_set, test_set = load_splits(
        dataset, data_dir, n_train, seed, {"--n-images": n_images}, epochs
    )
    about = data_info(train_set, test_set, data_dir)
    certified = test_set.subset(n_images)
    models: dict[float, Trained] = {}
    certificates: dict[float, Certificates] = {}
    for sigma in SIGMAS:
        models[sigma] = _trained(
            out, sigma, epochs, seed, about, train_set, test_set, device, progress, say
        )
        timing[f"train_sigma_{sigma:g}"] = models[sigma].seconds
        start = time.perf_counter()
        certificates[sigma] = _certify(models[sigma], certified, draws, seed, device, say)
        timing[f"certify_sigma_{sigma:g}"] = time.perf_counter() - start
    curves = {
        s: certified_accuracy(c, certified.y, CURVE).tolist() for s, c in certificates.items()
    }
    at_radii = {
        s: certified_accuracy(c, certified.y, RADII).tolist() for s, c in certificates.items()
    }
    rows = [
        Row(
            f"base_accuracy_sigma_{s:g}",
            f"base LeNet trained at sigma {s:g}: clean test accuracy (no noise)",
            None,
            models[s].accuracy,
        )
        for s in SIGMAS
    ] + [
        Row(
            f"certified_sigma_{s:g}_radius_{r:g}",
            f"smoothed LeNet, sigma {s:g}: certified accuracy at L2 radius {r:g}",
            None,
            at_radii[s][i],
            note=_reach_note(s, r, draws),
        )
        for s in SIGMAS
        for i, r in enumerate(RADII)
    ]
    shape = _shape(at_radii)
    timing["total"] = time.perf_counter() - started
    return Reproduction(
        name=NAME,
        paper=PAPER,
        setting=_setting(about, models, epochs, seed, n_images, draws, shape),
        rows=rows,
        figures=[Figure(_caption(n_images, draws), _curve_png(curves))],
        figure_data={
            "radii": list(CURVE),
            "certified_accuracy": {f"{s:g}": curves[s] for s in SIGMAS},
            "radius_per_image": {
                f"{s:g}": [float(r) for r in c.radius.cpu()] for s, c in certificates.items()
            },
            "label_per_image": {
                f"{s:g}": [int(v) for v in c.label.cpu()] for s, c in certificates.items()
            },
        },
        notes=_notes(about, shape, draws),
        timing=timing,
    )


def largest_radius(sigma: float, draws: int, alpha: float = ALPHA) -> float:
    """The most ``draws`` estimation draws can certify: every draw agrees, p_A_lower =
    alpha^(1/n), R = sigma Phi^-1(alpha^(1/n))."""
    return float(sigma * stats.norm.ppf(alpha ** (1 / draws)))


def _reach_note(sigma: float, radius: float, draws: int) -> str:
    most = largest_radius(sigma, draws)
    if radius > most:
        return f"beyond reach: {draws:,} draws certify at most {most:.3g} at sigma {sigma:g}"
    return ""


# ------------------------------------------------------------------ models and certificates
def _recipe(sigma: float, epochs: int, seed: int, data: dict[str, Any]) -> dict[str, Any]:
    """How a base model is trained: the cache key of its checkpoint."""
    return {
        "arch": "lenet",
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "optimizer": OPTIMIZER,
        "seed": seed,
        "defense": {"name": "gaussian", "sigma": sigma, "alpha": 0.0},
        "data": {k: data[k] for k in ("name", "train_images", "train_sha256")},
    }


def _trained(
    out: Path,
    sigma: float,
    epochs: int,
    seed: int,
    about: dict[str, Any],
    train: Dataset,
    test: Dataset,
    device: torch.device,
    progress: bool,
    log: Log,
) -> Trained:
    """The LeNet trained under noise ``sigma``: cached, or trained and saved (atomically)."""
    path = out / f"lenet_sigma_{sigma:g}.pt"
    recipe = _recipe(sigma, epochs, seed, about)
    start = time.perf_counter()
    module = cached(path, recipe, device)
    reused = module is not None
    if module is None:
        log(
            f"training a LeNet under Gaussian noise sigma {sigma:g} on {len(train):,} images "
            f"of {train.name} for {epochs} epoch(s)"
        )
        module = build_model("lenet", train.input_shape, len(train.classes), seed=seed)
        objective = GaussianTraining(sigma)
        train_model(
            module,
            train.x,
            train.y,
            epochs=epochs,
            batch_size=BATCH_SIZE,
            lr=LR,
            optimizer=OPTIMIZER,
            seed=seed,
            device=device,
            progress=progress,
            objective=objective,
        )
        seconds = time.perf_counter() - start
        acc = save_trained(path, module, recipe, train, test, device, seconds, objective.describe())
    else:
        acc = float(accuracy(module, test.x, test.y, device=device))
        seconds = time.perf_counter() - start
    module.eval()
    log(f"{'reused' if reused else 'saved'} {path}: clean test accuracy {acc:.2%}")
    return Trained(sigma, module, acc, reused, seconds, path)


def _certify(
    model: Trained,
    data: Dataset,
    draws: int,
    seed: int,
    device: torch.device,
    log: Log,
) -> Certificates:
    """CERTIFY on every image of ``data``, :data:`CHUNK` images per call (the certificates
    do not depend on the chunking: the noise is keyed by the images' ids)."""
    classifier = Classifier(
        model.module,
        bounds=(0.0, 1.0),
        num_classes=len(data.classes),
        input_shape=data.input_shape,
        device=device,
    )
    smoothed = Smoothed(classifier, model.sigma, seed=seed)
    ids = torch.arange(len(data))
    parts = []
    for first in range(0, len(data), CHUNK):
        start = time.perf_counter()
        part = smoothed.certify(
            data.x[first : first + CHUNK], ids[first : first + CHUNK], N0, draws, ALPHA
        )
        parts.append(part)
        log(
            f"sigma {model.sigma:g}: certified images {first + 1}-{first + len(part)} of "
            f"{len(data)} in {time.perf_counter() - start:.1f} s"
        )
    return Certificates(
        torch.cat([p.label for p in parts]),
        torch.cat([p.radius for p in parts]),
        parts[0].norm,
        parts[0].method,
        torch.cat([p.ids for p in parts]),
    )


# ------------------------------------------------------------------ the report
def _shape(at_radii: dict[float, list[float]]) -> dict[str, bool]:
    """The paper's shape: certified accuracy never rises with the radius; the larger sigma is
    at least as good at the largest radius and no better at radius 0."""
    low, high = (at_radii[s] for s in SIGMAS)
    return {
        "non_increasing_in_radius": all(
            all(a >= b for a, b in itertools.pairwise(acc)) for acc in at_radii.values()
        ),
        "larger_sigma_better_at_radius_1": high[RADII.index(1.0)] >= low[RADII.index(1.0)],
        "larger_sigma_better_at_radius_1.5": high[-1] >= low[-1],
        "larger_sigma_worse_at_radius_0": high[0] <= low[0],
    }


def _notes(about: dict[str, Any], shape: dict[str, bool], draws: int) -> list[str]:
    notes = bundled_note(about, "Certified accuracies")
    words = {
        "non_increasing_in_radius": "certified accuracy falls (or stays) as the radius grows",
        "larger_sigma_better_at_radius_1": "sigma 0.5 certifies more images than 0.25 at 1.0",
        "larger_sigma_better_at_radius_1.5": "sigma 0.5 certifies more images than 0.25 at 1.5",
        "larger_sigma_worse_at_radius_0": "sigma 0.5 is no better than 0.25 at radius 0",
    }
    held = [text for key, text in words.items() if shape[key]]
    broken = [text for key, text in words.items() if not shape[key]]
    notes.append(
        "No paper figure is quoted: Cohen et al. report CIFAR-10 and ImageNet, not MNIST; the "
        "rows are compared with the shape of their curves. Holds: "
        + ("; ".join(held) or "none")
        + ". Does not hold: "
        + ("; ".join(broken) or "none")
        + "."
    )
    most = {s: largest_radius(s, draws) for s in SIGMAS}
    notes.append(
        f"With {draws:,} estimation draws and alpha {ALPHA:g}, the largest certifiable radius "
        + " and ".join(f"at sigma {s:g} is {r:.3g}" for s, r in most.items())
        + ": rows beyond it are 0 by construction."
    )
    return notes


def _setting(
    about: dict[str, Any],
    models: dict[float, Trained],
    epochs: int,
    seed: int,
    n_images: int,
    draws: int,
    shape: dict[str, bool],
) -> dict[str, Any]:
    where = about["name"] if about["bundled"] else "MNIST"
    return {
        "data": about,
        "models": {
            f"sigma_{s:g}": {
                "architecture": "zoo LeNet: conv 32, conv 64, fc 200, fc 200, fc 10",
                "parameters": parameters(m.module),
                "training_noise_sigma": s,
                "accuracy": m.accuracy,
                "checkpoint": m.path.name,
                "reused_checkpoint": m.reused,
            }
            for s, m in models.items()
        },
        "training": {
            "defense": "gaussian (x + N(0, sigma^2 I), unclipped, noisy copies only)",
            "optimizer": OPTIMIZER,
            "lr": LR,
            "batch_size": BATCH_SIZE,
            "epochs": epochs,
            "train_images": about["train_images"],
        },
        "certification": {
            "procedure": "CERTIFY (Cohen et al., Algorithm 1)",
            "n0": N0,
            "n": draws,
            "alpha": ALPHA,
            "images": n_images,
            "radii": list(RADII),
            "largest_radius": {f"{s:g}": largest_radius(s, draws) for s in SIGMAS},
        },
        "seeds": {"initialisation": seed, "shuffling": seed, "noise": seed},
        "shape": shape,
        "differences": [
            f"Data: the paper certifies 500 CIFAR-10 and 500 ImageNet test images; this run "
            f"certifies the first {n_images:,} test images of {where}.",
            f"Draws: n = {draws:,} estimation draws per image (the paper: 100,000), n0 = "
            f"{N0}, alpha = {ALPHA:g} as in the paper.",
            f"Model: the zoo LeNet trained {epochs} epoch(s) with Adam (the paper: ResNet-110 "
            "on CIFAR-10 and ResNet-50 on ImageNet, 90 epochs of SGD).",
            "Noise levels: sigma 0.25 and 0.5 (the paper also trains 0.12 and 1.0); each "
            "smoothed classifier uses the sigma its base model was trained with.",
            "No paper figure: the paper has no MNIST table, so the rows are compared by shape.",
        ],
    }


def _caption(n_images: int, draws: int) -> str:
    return (
        f"Approximate certified accuracy against L2 radius, first {n_images:,} test images, "
        f"n = {draws:,}, n0 = {N0}, alpha = {ALPHA:g} (the paper's Figure 6 for CIFAR-10)"
    )


def _curve_png(curves: Mapping[float, Sequence[float]]) -> bytes:
    fig = PlotFigure(figsize=(5.6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for sigma, shares in curves.items():
        ax.plot(CURVE, shares, label=f"sigma = {sigma:g}")
    ax.set_xlabel("L2 radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    return to_png(fig)
