"""Papernot, McDaniel, Jha, Fredrikson, Celik & Swami (EuroS&P 2016): the JSMA on MNIST.

The experiment of the paper's section 5, on the data at hand:

1. a LeNet trained on MNIST (the zoo's, Adam; its checkpoint is cached in the output folder
   and reused while its recipe is unchanged), and a second one with the paper's layer
   sizes (conv 20, conv 50, fc 500), to show how much the architecture matters;
2. the JSMA of every one of the first N test images to each of its 9 other classes, at
   Upsilon = 14.5%, increasing features (theta = +1) with the paper's saliency score

       S(X, t)[i] = 0 if dF_t/dX_i < 0 or sum_{j != t} dF_j/dX_i > 0,
                    (dF_t/dX_i) |sum_{j != t} dF_j/dX_i| otherwise

   (applied to pairs of features: alpha = sum_{i in {p, q}} dF_t/dX_i > 0,
   beta = sum_{i in {p, q}} sum_{j != t} dF_j/dX_i < 0, maximise alpha |beta|), with the
   target-only score (alpha alone, ART's choice), and decreasing features (theta = -1);
3. the analyses of section 5.B: source x target matrices of success rate and mean distortion
   (Figures 12-13); the hardness H(s, t) = integral over tau of eps(s, t, tau) d tau, where
   eps(s, t, tau) is the mean distortion at success rate tau, by the trapezoidal rule over a
   sweep of Upsilon (Figure 14); the adversarial distance
   A(X, t) = 1 - (1/M) sum_i 1[S(X, t)[i] > 0] against the hardness (Figure 15), and the
   robustness R(F) = min_{X, t} A(X, t);
4. the detector of section 6: adversarial samples have larger squared differences between
   adjacent pixels than clean ones; its ROC curve and area, clean against the successful
   adversarial samples.

The success of an attack is the model's own verdict (argmax of the logits at the returned
input equals the target), and distortion is the fraction of the M features changed. Rates
are over the attacks of the images the model classifies correctly; distortions over their
successes. The Upsilon sweep is read from the one run at 14.5%: JSMA's path does not depend
on Upsilon (a smaller budget only stops it earlier), so a sample succeeds within u·M features
exactly when the full run succeeded with at most that many.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from brittle.attacks import JSMA, AttackResult
from brittle.attacks.targets import all_other_targets
from brittle.classifier import Classifier
from brittle.data import Dataset
from brittle.errors import InputError
from brittle.metrics import (
    adjacent_pixel_score,
    adversarial_distance,
    detector_roc,
    hardness,
    robustness,
    source_target_matrices,
    success_at_budgets,
)
from brittle.perturbation import max_features
from brittle.zoo import accuracy, build_model, train_model

from . import figures
from .cache import bundled_note, cached, data_info, load_splits, parameters, save_trained
from .report import Figure, Reproduction, Row

Log = Callable[[str], None]

NAME = "papernot2016"
ROW_IDS = (
    "lenet_clean_accuracy",
    "jsma_increase_success",
    "jsma_increase_distortion",
    "jsma_decrease_success",
    "jsma_decrease_distortion",
    "detector_auc",
    "robustness_R",
    "jsma_target_increase_success",
    "jsma_target_increase_distortion",
)
"""The fixed ids of this reproduction's rows (a report's ``rows[].id``; never renamed)."""

PAPER = {
    "key": NAME,
    "title": "The Limitations of Deep Learning in Adversarial Settings",
    "authors": "N. Papernot, P. McDaniel, S. Jha, M. Fredrikson, Z. B. Celik, A. Swami",
    "venue": "IEEE European Symposium on Security and Privacy (EuroS&P) 2016",
    "arxiv": "1511.07528",
}

UPSILON = 0.145
"""The paper's largest distortion: 14.5% of the features."""
SWEEP = tuple(round(float(u), 6) for u in np.linspace(0.01, UPSILON, 10))
"""The budgets of the hardness integral and the success curves (1% to 14.5%)."""
DEFAULT_IMAGES = 1000
PAPER_SUCCESS, PAPER_DISTORTION = 0.971, 0.0402
"""The paper's increasing-features figures (section 5.A)."""
DEFAULT_SECOND = 50
DEFAULT_EPOCHS = 4
CHUNK = 500
"""Attacks per JSMA call."""
ACCURACY_GOAL = 0.99
BATCH_SIZE = 128
LR = 1e-3
OPTIMIZER: Literal["adam"] = "adam"

MAIN = {"channels": [32, 64], "hidden": [200, 200]}
"""The zoo LeNet, the model of every fixed row."""
PAPER_SHAPE = {"channels": [20, 50], "hidden": [500]}
"""The paper's LeNet layer sizes, the second model."""
SHORT_EPOCHS = 2
"""The main recipe stopped after this many epochs (a snapshot of the main model's own
training), near the paper's 98.93% test accuracy: how much the training explains."""
CHECKPOINTS = {
    "main": "lenet.pt",
    "paper_shape": "lenet_paper_shape.pt",
    "short": "lenet_short.pt",
}

RUNS: dict[str, tuple[float, str]] = {
    "increase_paper": (1.0, "paper"),
    "increase_target": (1.0, "target"),
    "decrease_paper": (-1.0, "paper"),
}
"""The JSMA runs on the main model as (theta, score); the second model gets the increasing
ones."""
LABELS = {
    "increase_paper": "increasing, paper's score",
    "increase_target": "increasing, target-only score",
    "decrease_paper": "decreasing, paper's score",
}
EXPLAINERS: dict[str, tuple[str, str, bool, str]] = {
    "main_increase_paper": ("main", "paper", True, "the main model (the rows' run, same images)"),
    "paper_shape_increase_paper": ("paper_shape", "paper", True, "the paper's layer sizes"),
    "paper_shape_increase_target": (
        "paper_shape",
        "target",
        True,
        "the paper's layer sizes, target-only score",
    ),
    "short_increase_paper": ("short", "paper", True, "the main recipe stopped early"),
    "main_probabilities_increase_paper": (
        "main",
        "paper",
        False,
        "the main model, forward derivative of the probabilities",
    ),
}
"""The increasing runs (theta +1) on the first ``n_second`` images that explain the gap to
the paper, as (model, score, use_logits, what differs); the first is read from the main
run, the others are attacked."""


@dataclass(frozen=True)
class Trained:
    """A LeNet ready to attack: the classifier, what it is, and how it came to be."""

    classifier: Classifier
    module: nn.Module
    accuracy: float
    reused: bool
    seconds: float
    path: Path


@dataclass(frozen=True)
class Run:
    """One JSMA run over every (image, other class) row: the result and its rows."""

    result: AttackResult
    x: Tensor
    source: Tensor
    target: Tensor
    changed: Tensor
    counted: Tensor
    seconds: float

    @property
    def success(self) -> Tensor:
        return self.result.success.cpu()

    def head(self, rows: int) -> Run:
        """The first ``rows`` attacks (those of the first images), as a run of their own."""
        keep = torch.arange(len(self.source)) < rows
        return Run(
            self.result.select(keep),
            self.x[:rows],
            self.source[:rows],
            self.target[:rows],
            self.changed[:rows],
            self.counted[:rows],
            self.seconds * rows / max(1, len(self.source)),
        )

    def success_rate(self) -> float:
        """Re-verified successes over the attacks of correctly classified images."""
        return _mean(self.success[self.counted].float())

    def distortion(self) -> float:
        """Mean fraction of features changed over those successes."""
        return _mean(self.result.l0.cpu()[self.counted & self.success].double())


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
    chunk: int = CHUNK,
    progress: bool = True,
    log: Log | None = None,
) -> Reproduction:
    """Reproduce the paper's section 5 and 6 figures into a :class:`Reproduction`.

    ``n_images`` (default 1,000) first test images are attacked against each other class by
    the main model, ``n_second`` (default 50) by the models and settings that explain the
    gap (:data:`EXPLAINERS`); the LeNets are trained for ``epochs`` (default 4) on
    ``n_train`` training images drawn with ``seed`` (default all).
    ``dataset`` defaults to MNIST (``data_dir`` or ``$BRITTLE_DATA/mnist``) when found,
    else the bundled ``mnist5k``, which the setting and the notes then say. Checkpoints are
    cached in ``out`` (:data:`CHECKPOINTS`) and reused when their recipe matches.
    """
    say = log or (lambda message: None)
    device = device or torch.device("cpu")
    n_images = DEFAULT_IMAGES if n_images is None else n_images
    n_second = DEFAULT_SECOND if n_second is None else n_second
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    started = time.perf_counter()
    timing: dict[str, float] = {}
    counts = {"--n-images": n_images, "--n-second": n_second}
    train_set, test_set = load_splits(dataset, data_dir, n_train, seed, counts, epochs)
    about = data_info(train_set, test_set, data_dir)

    models: dict[str, Trained] = {}
    short = _recipe(MAIN, min(SHORT_EPOCHS, epochs), seed, about)
    snapshots = {short["epochs"]: (out / CHECKPOINTS["short"], short)}
    for key, recipe, kept in (
        ("main", _recipe(MAIN, epochs, seed, about), snapshots),
        ("paper_shape", _recipe(PAPER_SHAPE, epochs, seed, about), {}),
        ("short", short, {}),
    ):
        if key == "short" and short["epochs"] == epochs:  # no shorter training to show
            models[key] = models["main"]
            continue
        models[key] = _trained(
            out / CHECKPOINTS[key], recipe, train_set, test_set, device, progress, say, kept
        )
        timing[f"train_{key}"] = models[key].seconds

    attacked = test_set.subset(n_images)
    if accuracy(models["main"].module, attacked.x, attacked.y, device=device) == 0:
        raise InputError(
            f"the LeNet classifies none of the first {n_images} test images correctly, so no "
            "attack can be counted; train it longer (--epochs) or attack more images "
            "(--n-images)"
        )
    runs: dict[str, Run] = {}
    for key, (theta, score) in RUNS.items():
        runs[key] = _attack(
            models["main"].classifier, attacked, chunk, progress, say, key, theta, score
        )
        timing[f"jsma_{key}"] = runs[key].seconds
    second_set = test_set.subset(min(n_second, n_images))
    second: dict[str, Run] = {}
    for key, (model, score, logits, _) in EXPLAINERS.items():
        if key == "main_increase_paper":
            second[key] = runs["increase_paper"].head(len(second_set) * (len(test_set.classes) - 1))
            continue
        second[key] = _attack(
            models[model].classifier, second_set, chunk, progress, say, key, 1.0, score, logits
        )
        timing[f"jsma_{key}"] = second[key].seconds

    start = time.perf_counter()
    analysis = _analyse(models["main"].classifier, runs, attacked)
    timing["analysis"] = time.perf_counter() - start
    start = time.perf_counter()
    drawn = _figures(analysis, runs["increase_paper"], attacked)
    timing["figures"] = time.perf_counter() - start
    timing["total"] = time.perf_counter() - started

    main = models["main"]
    per_image = len(test_set.classes) - 1
    counted = int(runs["increase_paper"].counted.view(-1, per_image)[:, 0].sum())
    rows = _rows(main.accuracy, runs, analysis, n_images, counted, len(test_set), test_set.name)
    notes = [*_notes(about, main.accuracy), _gap_note(runs["increase_paper"], second, models)]
    features = int(test_set.x[0].numel())
    setting = _setting(
        about, models, epochs, seed, n_images, n_second, counted, second, chunk, features
    )
    return Reproduction(
        name=NAME,
        paper=PAPER,
        setting=setting,
        rows=rows,
        figures=drawn,
        figure_data=analysis["json"],
        notes=notes,
        timing=timing,
    )


# ------------------------------------------------------------------ data and models
def _recipe(shape: dict[str, Any], epochs: int, seed: int, data: dict[str, Any]) -> dict[str, Any]:
    """How a model is trained: the cache key of its checkpoint."""
    return {
        "arch": "lenet",
        "arch_kwargs": shape,
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "optimizer": OPTIMIZER,
        "seed": seed,
        "data": {k: data[k] for k in ("name", "train_images", "train_sha256")},
    }


def _trained(
    path: Path,
    recipe: dict[str, Any],
    train: Dataset,
    test: Dataset,
    device: torch.device,
    progress: bool,
    log: Log,
    snapshots: dict[int, tuple[Path, dict[str, Any]]],
) -> Trained:
    """The LeNet of ``recipe``: the cached checkpoint at ``path``, or trained and saved there
    (atomically) with its recipe; its accuracy on the whole test split. A training also
    saves the model after ``e`` epochs for each ``e: (path, recipe)`` of ``snapshots`` (the
    same seed and shuffling: what training for ``e`` epochs gives)."""
    shape = recipe["arch_kwargs"]
    start = time.perf_counter()
    module = cached(path, recipe, device)
    reused = module is not None
    if module is None:
        log(
            f"training a LeNet ({_architecture(shape)}) on {len(train):,} images of "
            f"{train.name} for {recipe['epochs']} epoch(s)"
        )
        module = build_model(
            "lenet", train.input_shape, len(train.classes), seed=recipe["seed"], **shape
        )
        trained = module

        def snapshot(done: int) -> None:
            if done in snapshots and done < recipe["epochs"]:
                where, early = snapshots[done]
                save_trained(where, copy.deepcopy(trained), early, train, test, device, 0.0)

        train_model(
            module,
            train.x,
            train.y,
            epochs=recipe["epochs"],
            batch_size=BATCH_SIZE,
            lr=LR,
            optimizer=OPTIMIZER,
            seed=recipe["seed"],
            device=device,
            progress=progress,
            on_epoch=snapshot,
        )
    module.eval()
    seconds = time.perf_counter() - start
    if reused:
        acc = float(accuracy(module, test.x, test.y, device=device))
    else:
        acc = save_trained(path, module, recipe, train, test, device, seconds)
    log(f"{'reused' if reused else 'saved'} {path}: test accuracy {acc:.2%}")
    classifier = Classifier(
        module,
        bounds=(0.0, 1.0),
        num_classes=len(train.classes),
        input_shape=train.input_shape,
        device=device,
    )
    return Trained(classifier, module, acc, reused, seconds, path)


def _architecture(shape: dict[str, Any]) -> str:
    convs = ", ".join(f"conv 5x5 {c} + max-pool" for c in shape["channels"])
    fcs = ", ".join(f"fc {h}" for h in shape["hidden"])
    return f"{convs}, {fcs}, fc 10 (ReLU, 'same' padding)"


def _attack(
    classifier: Classifier,
    data: Dataset,
    chunk: int,
    progress: bool,
    log: Log,
    label: str,
    theta: float,
    score: str,
    use_logits: bool = True,
) -> Run:
    """JSMA at :data:`UPSILON` from each image of ``data`` to each of its other classes."""
    k = len(data.classes)
    x, y, t = all_other_targets(data.x, data.y, k)
    attack = JSMA(UPSILON, theta=theta, targeted=True, score=score, use_logits=use_logits)
    parts: list[AttackResult] = []
    calls = math.ceil(len(x) / chunk)
    log(f"jsma {label}: {len(x):,} attacks ({len(data):,} images x {k - 1} targets), {calls} calls")
    start = time.perf_counter()
    bar = tqdm(total=len(x), desc=f"jsma {label}", unit="attack", disable=not progress)
    try:
        for first in range(0, len(x), chunk):
            rows = slice(first, first + chunk)
            ids = torch.arange(first, min(first + chunk, len(x)))
            parts.append(attack(classifier, x[rows], y[rows], t[rows], ids=ids))
            bar.update(len(ids))
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    result = AttackResult.concat(parts)
    x_adv = result.x_adv.cpu()
    changed = (x_adv != x).flatten(1).sum(1)
    counted = result.correct_clean.cpu()
    done = Run(result, x, y, t, changed, counted, seconds)
    log(
        f"jsma {label}: done in {seconds:.0f} s, success {done.success_rate():.1%} at "
        f"{done.distortion():.2%} of the features"
    )
    return done


# ------------------------------------------------------------------ analyses
def _mean(values: Tensor) -> float:
    return float(values.mean()) if len(values) else math.nan


def _analyse(classifier: Classifier, runs: dict[str, Run], attacked: Dataset) -> dict[str, Any]:
    """Every number behind the rows and the figures; ``json`` holds what the report keeps."""
    k = len(attacked.classes)
    features = int(attacked.x[0].numel())
    main = runs["increase_paper"]
    keep = main.counted.numpy()
    source, target = main.source.numpy()[keep], main.target.numpy()[keep]

    matrices = {}
    curves = {}
    for key, done in runs.items():
        c = done.counted.numpy()
        m = source_target_matrices(
            done.source.numpy()[c],
            done.target.numpy()[c],
            done.success.numpy()[c],
            done.result.l0.cpu().numpy()[c],
            k,
        )
        matrices[key] = m
        within = success_at_budgets(
            done.changed.numpy()[c], done.success.numpy()[c], features, SWEEP, UPSILON
        )
        curves[key] = [float(v) for v in np.asarray(within).mean(axis=1)]

    hard = hardness(
        source,
        target,
        main.changed.numpy()[keep],
        main.success.numpy()[keep],
        features,
        SWEEP,
        UPSILON,
        k,
    )
    distances = adversarial_distance(
        classifier, main.x[main.counted], main.target[main.counted], increase=True, use_logits=True
    )
    distance = distances.detach().cpu().double().numpy()
    r_value = robustness(distances)
    mean_a = np.full((k, k), np.nan)
    for s in range(k):
        for t in range(k):
            pair = (source == s) & (target == t)
            if pair.any():
                mean_a[s, t] = distance[pair].mean()

    clean_images = attacked.x[main.counted.view(len(attacked), -1)[:, 0]]
    adversarial = main.result.x_adv.cpu()[main.counted & main.success]
    roc = None
    if len(clean_images) and len(adversarial):
        roc = detector_roc(adjacent_pixel_score(clean_images), adjacent_pixel_score(adversarial))
    fpr, tpr = (np.asarray(roc.fpr), np.asarray(roc.tpr)) if roc else (np.zeros(0), np.zeros(0))
    auc = float(roc.auc) if roc else math.nan
    thin = _thin(len(fpr))
    return {
        "matrices": matrices,
        "curves": curves,
        "hardness": np.asarray(hard, dtype=float),
        "mean_distance": mean_a,
        "robustness": r_value,
        "fpr": fpr,
        "tpr": tpr,
        "auc": auc,
        "json": {
            "source_target": {
                key: {
                    "success_rate": _listed(m.success_rate),
                    "mean_distortion": _listed(m.mean_distortion),
                    "attempts": _listed(m.attempts),
                }
                for key, m in matrices.items()
            },
            "success_by_upsilon": {"upsilons": list(SWEEP), **curves},
            "hardness": {"upsilons": list(SWEEP), "matrix": _listed(hard)},
            "adversarial_distance": {
                "mean_by_pair": _listed(mean_a),
                "min": r_value,
                "mean": float(distance.mean()),
            },
            "detector": {
                "clean_images": len(clean_images),
                "adversarial_images": len(adversarial),
                "auc": auc,
                "fpr": [float(v) for v in fpr[thin]],
                "tpr": [float(v) for v in tpr[thin]],
            },
        },
    }


def _thin(n: int, points: int = 200) -> np.ndarray:
    """At most ``points`` indices of a curve of ``n`` points, the ends kept."""
    if n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(int))


def _listed(values: Any) -> list[Any]:
    return [[float(v) for v in row] for row in np.asarray(values, dtype=float)]


def _figures(analysis: dict[str, Any], main: Run, attacked: Dataset) -> list[Figure]:
    increase = analysis["matrices"]["increase_paper"]
    drawn = [
        Figure(
            "Figures 12 and 13 (increasing features, paper's score): success rate and mean "
            "distortion of each source-target pair, over the images the model classifies "
            "correctly.",
            figures.source_target_maps(increase.success_rate, increase.mean_distortion),
        ),
        Figure(
            "Figure 14: the hardness H(s, t) of each pair, the trapezoidal integral of the mean "
            "distortion over the success rate, from the Upsilon sweep.",
            figures.hardness_map(analysis["hardness"], SWEEP),
        ),
        Figure(
            "Figure 15: the mean adversarial distance A(X, t) of the pair's images against the "
            "pair's hardness.",
            figures.distance_against_hardness(analysis["hardness"], analysis["mean_distance"]),
        ),
    ]
    if len(analysis["fpr"]):
        drawn.append(
            Figure(
                "Section 6 detector: ROC curve of the mean squared difference of adjacent "
                "pixels, clean images against the successful adversarial samples (increasing, "
                "paper's score).",
                figures.roc_curve(analysis["fpr"], analysis["tpr"], analysis["auc"]),
            )
        )
    curves = {LABELS[key]: rates for key, rates in analysis["curves"].items() if rates}
    if curves:
        drawn.append(
            Figure(
                "Success rate against Upsilon, read from each run at 14.5%.",
                figures.success_curves(SWEEP, curves),
            )
        )
    drawn.append(
        Figure(
            "Figure 1: one image of each class (the first the model classifies correctly), "
            "crafted to every other class (increasing, paper's score).",
            _example_grid(main, attacked),
        )
    )
    return drawn


def _example_grid(main: Run, attacked: Dataset) -> bytes:
    k = len(attacked.classes)
    per_image = k - 1
    clean = np.full((k, *attacked.input_shape), np.nan, dtype=np.float32)
    adversarial = np.full((k, k, *attacked.input_shape), np.nan, dtype=np.float32)
    success = np.zeros((k, k), dtype=bool)
    x_adv = main.result.x_adv.cpu().numpy()
    ok = main.counted.view(len(attacked), per_image)[:, 0].numpy()
    labels = attacked.y.numpy()
    for s in range(k):
        found = np.flatnonzero((labels == s) & ok)
        if not len(found):
            continue
        i = int(found[0])
        clean[s] = attacked.x[i].numpy()
        for j in range(per_image):
            t = j if j < s else j + 1
            adversarial[s, t] = x_adv[i * per_image + j]
            success[s, t] = bool(main.success[i * per_image + j])
    return figures.example_grid(clean, adversarial, success)


# ------------------------------------------------------------------ rows and setting
def _rows(
    acc: float,
    runs: dict[str, Run],
    analysis: dict[str, Any],
    n_images: int,
    counted: int,
    n_test: int,
    dataset: str,
) -> list[Row]:
    over = (
        f"over the {9 * counted:,} attacks (9 targets each) of the {counted:,} of the first "
        f"{n_images:,} test images the model classifies correctly; success is the model's "
        "verdict at the returned input"
    )
    reached = "reaches" if acc >= ACCURACY_GOAL else "does NOT reach"
    inc, tgt, dec = runs["increase_paper"], runs["increase_target"], runs["decrease_paper"]
    distortion = "mean fraction of the features changed, over the successful attacks"
    return [
        Row(
            "lenet_clean_accuracy",
            "test accuracy of the LeNet",
            0.9893,
            acc,
            f"on the {n_test:,} test images of {dataset}; it {reached} the 99% this "
            "reproduction aims at (the paper's LeNet: 98.93%)",
        ),
        Row(
            "jsma_increase_success",
            "JSMA success rate, increasing features (theta +1, Upsilon 14.5%, paper's score)",
            PAPER_SUCCESS,
            inc.success_rate(),
            over,
        ),
        Row(
            "jsma_increase_distortion",
            "JSMA mean distortion, increasing features (paper's score)",
            PAPER_DISTORTION,
            inc.distortion(),
            distortion,
        ),
        Row(
            "jsma_decrease_success",
            "JSMA success rate, decreasing features (theta -1, Upsilon 14.5%, paper's score)",
            0.647,
            dec.success_rate(),
            over,
        ),
        Row(
            "jsma_decrease_distortion",
            "JSMA mean distortion, decreasing features (paper's score)",
            None,
            dec.distortion(),
            f"{distortion}; the paper gives no usable figure",
        ),
        Row(
            "detector_auc",
            "ROC AUC of the adjacent-pixel detector (section 6)",
            None,
            analysis["auc"],
            "mean squared difference of adjacent pixels; clean images against the successful "
            "adversarial samples of the increasing run; the paper suggests the detector but "
            "measures none",
            fraction=False,
        ),
        Row(
            "robustness_R",
            "robustness R(F) = min over X, t of the adversarial distance A(X, t)",
            None,
            analysis["robustness"],
            "A(X, t) from the paper's saliency map (increasing, logits), over every attacked "
            "(image, other class) of the correctly classified images",
            fraction=False,
        ),
        Row(
            "jsma_target_increase_success",
            "JSMA success rate, increasing features, target-only score (ART's)",
            None,
            tgt.success_rate(),
            f"{over}; the score is dF_t/dX alone, which the paper does not use",
        ),
        Row(
            "jsma_target_increase_distortion",
            "JSMA mean distortion, increasing features, target-only score (ART's)",
            None,
            tgt.distortion(),
            distortion,
        ),
    ]


def _gap_note(main: Run, second: dict[str, Run], models: dict[str, Trained]) -> str:
    """The paper's score against the paper's figures, with the measured explanations."""
    success, distortion = main.success_rate(), main.distortion()
    gap = f"{100 * (success - PAPER_SUCCESS):+.1f} points"
    parts = []
    for key, done in second.items():
        model, _, _, what = EXPLAINERS[key]
        parts.append(
            f"{what} ({models[model].accuracy:.2%} accuracy): {done.success_rate():.1%} at "
            f"{done.distortion():.2%}"
        )
    images = len(next(iter(second.values())).source) // 9 if second else 0
    return (
        f"The paper's score reaches {success:.1%} success at {distortion:.2%} distortion, "
        f"against the paper's {PAPER_SUCCESS:.1%} at {PAPER_DISTORTION:.2%} ({gap}). "
        f"Measured on the first {images:,} images, with increasing features: "
        + "; ".join(parts)
        + "."
    )


def _notes(data: dict[str, Any], acc: float) -> list[str]:
    notes = bundled_note(data, "Accuracy and attack figures")
    if acc < ACCURACY_GOAL:
        notes.append(
            f"The LeNet reaches {acc:.2%} test accuracy, below the 99% this reproduction aims "
            "at: train longer (--epochs) or on more data."
        )
    return notes


def _second_results(second: dict[str, Run], models: dict[str, Trained]) -> dict[str, Any]:
    """The explaining runs (:data:`EXPLAINERS`) by what differs, with their model's accuracy."""
    results = {}
    for key, done in second.items():
        model, score, logits, what = EXPLAINERS[key]
        results[what] = {
            "model": model,
            "accuracy": models[model].accuracy,
            "score": score,
            "forward_derivative": "logits" if logits else "probabilities",
            "success": done.success_rate(),
            "distortion": done.distortion(),
            "attacks": len(done.source),
            "seconds": done.seconds,
        }
    return results


def _setting(
    data: dict[str, Any],
    models: dict[str, Trained],
    epochs: int,
    seed: int,
    n_images: int,
    n_second: int,
    counted: int,
    second: dict[str, Run],
    chunk: int,
    features: int,
) -> dict[str, Any]:
    allowed = max_features(UPSILON, features)
    described = {}
    for key, shape, role in (
        ("main", MAIN, "every row"),
        ("paper_shape", PAPER_SHAPE, f"the second model, on the first {n_second:,} images"),
        ("short", MAIN, f"the main recipe for {SHORT_EPOCHS} epochs, on the same images"),
    ):
        trained = models[key]
        described[key] = {
            "role": role,
            "architecture": _architecture(shape),
            "arch_kwargs": shape,
            "parameters": parameters(trained.module),
            "accuracy": trained.accuracy,
            "checkpoint": trained.path.name,
            "reused_checkpoint": trained.reused,
        }
    where = data["name"] if data["bundled"] else "MNIST"
    return {
        "data": data,
        "models": described,
        "second_model_results": _second_results(second, models),
        "training": {
            "optimizer": OPTIMIZER,
            "lr": LR,
            "batch_size": BATCH_SIZE,
            "epochs": epochs,
            "train_images": data["train_images"],
            "loss": "cross-entropy of the logits",
        },
        "seeds": {
            "initialisation": seed,
            "shuffling": seed,
            "attack": "none needed: JSMA is deterministic",
        },
        "sizes": {
            "images": n_images,
            "correctly_classified": counted,
            "targets_per_image": 9,
            "attacks_per_run": 9 * n_images,
            "second_model_images": n_second,
            "attacks_per_chunk": chunk,
            "upsilon": UPSILON,
            "features_allowed": allowed,
            "upsilon_sweep": list(SWEEP),
        },
        "attack": {
            "name": "JSMA",
            "upsilon": UPSILON,
            "pairs": True,
            "forward_derivative": "logits",
            "runs": {
                LABELS[key]: {"theta": theta, "score": score}
                for key, (theta, score) in RUNS.items()
            },
        },
        "differences": [
            f"Data: the paper crafted 9 adversarial samples for each of 10,000 images of each "
            f"of the training, validation and test sets (270,000); this run attacks the first "
            f"{n_images:,} test images of {where}, each to its 9 other classes.",
            "Model: every row uses the zoo LeNet (conv 32, conv 64, fc 200, fc 200); a second "
            "model has the paper's layer sizes (conv 20, conv 50, fc 500), both with 'same' "
            "(padding 2) convolutions; its results are below, not in the rows.",
            f"Explaining the gap, measured on the first {n_second:,} images (below): the "
            "paper's layer sizes; the main recipe stopped after "
            f"{SHORT_EPOCHS} epochs, near the paper's 98.93% accuracy (a better trained LeNet "
            "resists the paper's score more); and the forward derivative of the probabilities "
            "instead of the logits (the paper's choice, and the default).",
            f"Training: Adam, learning rate {LR:g}, batch {BATCH_SIZE}, {epochs} epoch(s), seed "
            f"{seed}, on {data['train_images']:,} images; the paper reports 98.93% test "
            "accuracy for its LeNet.",
            "Success is the model's verdict at the returned input (argmax of the logits is the "
            "target), counted over the attacks of the images the model classifies correctly.",
            f"Budget: Upsilon 14.5% of {features} features allows {allowed} changed features "
            "(rounded down); the attack stops before a pair would exceed it.",
            "Hardness: the Upsilon sweep is read from the one run at 14.5% (JSMA's path does "
            "not depend on Upsilon), not from one run per budget.",
            "Detector: the paper proposes the adjacent-pixel statistic without measuring it; "
            "its ROC AUC is ours only.",
            "The target-only score (dF_t/dX alone, what ART implements) is not in the paper.",
        ],
    }
