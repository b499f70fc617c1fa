"""``brittle reproduce sandwich``: certified below true below attacked robustness, on MNIST.

Three classifiers of the zoo's LeNet, at a reduced scale: one trained normally, one by PGD
adversarial training (Madry et al. 2018, Linf), and the smoothed classifier (Cohen et al.
2019) of one trained on Gaussian noise. For each, per test image, a certified radius (interval
bound propagation, Gowal et al. 2018, in Linf for the two base models; randomised smoothing in
L2 for the smoothed one) and the smallest perturbation an attack found (PGD over a sweep of
budgets; for the smoothed classifier PGD on its base model, each example kept only where the
smoothed classifier's own PREDICT gives another class). The rows state the shares at one
budget and count the samples whose certificate exceeds the attack (a bug if any); the figure
draws the two curves per model.

No paper reports these numbers for these models: the paper column is empty. The two base
models are evaluated by :func:`brittle.evaluate` with ``certify="ibp"``, whose reports (and
stores) are kept under ``OUT/evaluations/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from brittle.attacks.iterative import PGD
from brittle.certify.result import ABSTAIN
from brittle.certify.sandwich import (
    Sandwich,
    certified_robustness,
    sandwich_check,
    sandwich_record,
)
from brittle.certify.smoothing import Smoothed
from brittle.classifier import Classifier
from brittle.data import Dataset
from brittle.defenses.adversarial import PGDTraining
from brittle.defenses.gaussian import GaussianTraining
from brittle.eval.api import evaluate
from brittle.report.plots import to_png
from brittle.report.sandwich import sandwich_figure
from brittle.threat import Norm
from brittle.zoo import build_model, train_model

from .cache import Log, bundled_note, cached, data_info, load_splits, save_trained
from .report import Figure, Reproduction, Row

NAME = "sandwich"
PAPER = {
    "key": NAME,
    "title": "Certified lower bounds beside attacks: interval bound propagation (Gowal et al. "
    "2018, 'On the Effectiveness of Interval Bound Propagation for Training Verifiably Robust "
    "Models') and randomised smoothing (Cohen, Rosenfeld & Kolter 2019, 'Certified "
    "Adversarial Robustness via Randomized Smoothing')",
    "authors": "S. Gowal et al.; J. Cohen, E. Rosenfeld, J. Z. Kolter",
    "venue": "arXiv 1810.12715; ICML 2019",
    "arxiv": "1810.12715, 1902.02918",
}
MODELS = ("lenet", "lenet_pgd", "smoothed")
ROW_IDS = tuple(
    f"{m}_{q}" for m in MODELS for q in ("accuracy", "certified", "attacked", "violations")
)
ARCH = {"channels": [16, 32], "hidden": [100]}
EPS_LINF = (0.02, 0.05, 0.1, 0.2, 0.3)
"""The Linf budgets PGD sweeps on the base models."""
EPS_L2 = (0.25, 0.5, 1.0, 1.5, 2.0)
"""The L2 budgets PGD sweeps against the smoothed classifier."""
ROW_EPS = {"lenet": 0.1, "lenet_pgd": 0.1, "smoothed": 0.5}
"""The budget each model's certified and attacked rows are stated at."""
PGD_EPS = 0.1
SIGMA = 0.25
ALPHA = 0.001
DEFAULT_IMAGES = 200
DEFAULT_SECOND = 100
DEFAULT_EPOCHS = 2
DEFAULT_TRAIN = 10_000
DRAWS = 1_000
"""Noise draws per image for the smoothed classifier's CERTIFY and PREDICT (Cohen et al. use
100,000; fewer draws give smaller radii, never wrong ones)."""
ATTACK_STEPS = 20
LR = 1e-3
"""Adam's learning rate for the three LeNets."""


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
    draws: int | None = None,
) -> Reproduction:
    """The sandwich of the three LeNets: ``n_images`` (default 200) test images for the two
    base models, ``n_second`` (default 100) for the smoothed classifier with ``draws`` noise
    draws each; the LeNets are trained ``epochs`` (default 2) on ``n_train`` (default
    10,000, or all when fewer) training images drawn with ``seed``. Checkpoints are cached
    in ``out`` and reused when their recipe matches."""
    say = log or (lambda message: None)
    device = device or torch.device("cpu")
    draws = DRAWS if draws is None else draws
    n_images = DEFAULT_IMAGES if n_images is None else n_images
    n_second = DEFAULT_SECOND if n_second is None else n_second
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    counts = {"--n-images": n_images, "--n-second": n_second}
    train, test = load_splits(dataset, data_dir, n_train, seed, counts, epochs)
    if n_train is None and len(train) > DEFAULT_TRAIN:
        train = train.subset(DEFAULT_TRAIN, seed)
    about = data_info(train, test, data_dir)
    timing: dict[str, float] = {}
    objectives = {
        "lenet": None,
        "lenet_pgd": PGDTraining(PGD_EPS, steps=5),
        "smoothed": GaussianTraining(SIGMA),
    }
    modules: dict[str, nn.Module] = {}
    for key, objective in objectives.items():
        start = time.perf_counter()
        modules[key] = _trained(
            out, key, objective, epochs, seed, about, train, test, device, progress, say
        )
        timing[f"train_{key}"] = time.perf_counter() - start
    records: dict[str, dict[str, Any]] = {}
    sandwiches: dict[str, Sandwich] = {}
    images = test.subset(n_images)
    for key in ("lenet", "lenet_pgd"):
        start = time.perf_counter()
        outcome = evaluate(
            modules[key],
            (images.x, images.y),
            out=out / "evaluations" / key,
            attacks=f"pgd:steps={ATTACK_STEPS}",
            eps=list(EPS_LINF),
            certify="ibp",
            seed=seed,
            device=str(device),
            progress=progress,
        )
        assert outcome is not None  # one process
        records[key] = outcome.report["sandwich"]
        sandwiches[key] = _from_record(records[key], images.y)
        timing[f"sandwich_{key}"] = time.perf_counter() - start
    start = time.perf_counter()
    sandwiches["smoothed"] = _smoothed_sandwich(
        modules["smoothed"], test.subset(n_second), seed, draws, device, say
    )
    records["smoothed"] = sandwich_record(sandwiches["smoothed"], max(EPS_L2))
    timing["sandwich_smoothed"] = time.perf_counter() - start
    rows = [row for key in MODELS for row in _rows(key, sandwiches[key])]
    titles = {
        "lenet": "LeNet (IBP, Linf)",
        "lenet_pgd": f"PGD-trained LeNet, eps {PGD_EPS:g} (IBP, Linf)",
        "smoothed": f"smoothed LeNet, sigma {SIGMA:g} (smoothing, L2)",
    }
    figure = sandwich_figure({titles[k]: records[k] for k in MODELS})
    notes = bundled_note(about, "The shares")
    notes.append(
        "IBP certifies the base model, smoothing the smoothed classifier g (not its base "
        "model); a model trained neither with IBP nor for smoothing gets small IBP radii: the "
        "gap between the curves is the certifier's looseness plus the attack's weakness"
    )
    return Reproduction(
        name=NAME,
        paper=PAPER,
        setting={
            "data": about,
            "models": {"arch": "lenet", **ARCH},
            "training": {
                "epochs": epochs,
                "lr": LR,
                "pgd": {"eps": PGD_EPS, "steps": 5, "norm": "linf"},
                "gaussian": {"sigma": SIGMA},
            },
            "attack": {"name": "pgd", "steps": ATTACK_STEPS, "linf": EPS_LINF, "l2": EPS_L2},
            "smoothing": {"sigma": SIGMA, "n0": 100, "n": draws, "alpha": ALPHA},
            "sizes": {"n_images": n_images, "n_second": n_second},
            "seeds": {"seed": seed},
            "differences": [
                "reduced scale: a narrow LeNet, few epochs, a sample of the test set",
                f"smoothing with {draws:,} noise draws per image instead of 100,000",
            ],
        },
        rows=rows,
        figures=[
            Figure(
                "Per model, the share of test images with robustness at least eps: certified "
                "(green, a lower bound), attacked (red, an upper bound); the true share lies in "
                "the grey band.",
                to_png(figure),
            )
        ],
        figure_data={"sandwich": records},
        notes=notes,
        timing=timing,
    )


def _trained(
    out: Path,
    key: str,
    objective: Any,
    epochs: int,
    seed: int,
    about: dict[str, Any],
    train: Dataset,
    test: Dataset,
    device: torch.device,
    progress: bool,
    say: Log,
) -> nn.Module:
    """The LeNet ``key``, from its cached checkpoint or trained and saved."""
    recipe = {
        "arch": "lenet",
        "arch_kwargs": ARCH,
        "epochs": epochs,
        "lr": LR,
        "seed": seed,
        "defense": key,
        "train_sha256": about["train_sha256"],
    }
    path = out / f"{key}.pt"
    module = cached(path, recipe, device)
    if module is not None:
        say(f"reused {path}")
        return module.eval()
    say(f"training {key} on {len(train):,} images for {epochs} epoch(s)")
    start = time.perf_counter()
    module = build_model("lenet", train.input_shape, len(train.classes), seed=seed, **ARCH)
    train_model(
        module,
        train.x,
        train.y,
        epochs=epochs,
        lr=LR,
        seed=seed,
        device=device,
        progress=progress,
        objective=objective,
    )
    save_trained(
        path,
        module,
        recipe,
        train,
        test,
        device,
        time.perf_counter() - start,
        defense={"name": key},
    )
    return module.eval()


def _from_record(record: dict[str, Any], y: Tensor) -> Sandwich:
    """The sandwich of an evaluation report's per-sample values."""
    samples = record["samples"]
    ids = torch.tensor(samples["ids"], dtype=torch.long)
    certified = torch.tensor(samples["certified"], dtype=torch.float64)
    attacked = torch.tensor(
        [float("inf") if a is None else a for a in samples["attacked"]], dtype=torch.float64
    )
    agrees = torch.tensor(samples["agrees"], dtype=torch.bool)
    correct = torch.tensor(samples["correct"], dtype=torch.bool)
    return Sandwich(
        ids, certified, agrees, attacked, correct, Norm(record["norm"]), record["method"]
    )


def _smoothed_sandwich(
    module: nn.Module, data: Dataset, seed: int, draws: int, device: torch.device, say: Log
) -> Sandwich:
    """Certify the smoothed classifier g on ``data`` and attack it: PGD (L2) on the base
    model at each budget of :data:`EPS_L2`, an example counted only where g's PREDICT gives a
    class other than the label (not an abstention)."""
    base = Classifier(module, input_shape=data.input_shape, device=device)
    g = Smoothed(base, SIGMA, seed=seed)
    ids = torch.arange(len(data))
    say(f"certifying the smoothed LeNet on {len(data)} images ({draws:,} draws each)")
    cert = g.certify(data.x, ids, n0=100, n=draws, alpha=ALPHA)
    certified, agrees = certified_robustness(cert, ids, data.y)
    clean = g.predict(data.x, ids, n=draws, alpha=ALPHA).label.cpu()
    correct = clean == data.y
    attacked = torch.where(correct, torch.inf, 0.0).double()
    for eps in EPS_L2:
        found = PGD(eps=eps, norm="l2", steps=ATTACK_STEPS, seed=seed).attack(
            base, data.x, data.y, ids=ids
        )
        tried = found.success.cpu() & correct
        if not bool(tried.any()):
            continue
        smoothed = g.predict(found.x_adv[tried], ids[tried], n=draws, alpha=ALPHA).label.cpu()
        fooled = (smoothed != data.y[tried]) & (smoothed != ABSTAIN)
        where = tried.nonzero().flatten()[fooled]
        attacked[where] = torch.minimum(attacked[where], found.l2.cpu()[where].double())
    return Sandwich(ids, certified, agrees, attacked, correct, Norm.L2, cert.method)


def _rows(key: str, sandwich: Sandwich) -> list[Row]:
    """The rows of one model: its accuracy, the shares at :data:`ROW_EPS` and the count of
    samples whose certificate exceeds the attack."""
    eps = ROW_EPS[key]
    (certified,), (attacked,) = sandwich.shares([eps])
    (certified_clean,), (accuracy,) = sandwich.shares([0.0])
    violations = sandwich_check(sandwich).numbers["violations"]
    norm = sandwich.norm.value
    what = "accuracy (no attack)"
    if key == "smoothed":  # abstentions count as wrong (Cohen et al.'s certified accuracy at 0)
        what, accuracy = "smoothed classifier's certified accuracy at radius 0", certified_clean
    return [
        Row(f"{key}_accuracy", f"{key}: {what}", None, accuracy),
        Row(f"{key}_certified", f"{key}: share certified at {norm} {eps:g}", None, certified),
        Row(f"{key}_attacked", f"{key}: share no attack broke at {norm} {eps:g}", None, attacked),
        Row(
            f"{key}_violations",
            f"{key}: samples certified beyond an attack found (a bug if not 0)",
            None,
            float(violations),
            fraction=False,
        ),
    ]
