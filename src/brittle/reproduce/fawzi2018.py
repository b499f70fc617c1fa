"""Fawzi, Fawzi & Fawzi, "Adversarial vulnerability for any classifier" (NeurIPS 2018).

The experiment of the paper's section 5 on MNIST with a VAE as the generator: data are
x = g(z), z ~ N(0, I_d), and for every classifier f, Theorem 1 bounds the robustness any
classifier can reach,

    P(r_in(x) <= eta) >= sum_i [Phi(a_{!=i} + eta / L) - Phi(a_{!=i})],
    a_{!=i} = Phi^{-1}(P(f(g(z)) != i)),

(latent space: L = 1, a bound on r_Z), so the median robustness is at most the smallest eta
where the right-hand side reaches 1/2. Four classifiers trained on real MNIST (a softmax
regression, an MLP, the zoo's LeNet and a LeNet trained with Madry's PGD adversarial
training) are measured on generated samples: the error rate on the real test set, and the
medians of r_Z (latent), r_in (in-distribution) and r_unc (unconstrained), normalised by
the mean ||z|| or ||x|| of the samples, beside the bounds. The theory predicts
r_unc <= r_in, and both below their bounds. The VAE and the classifiers are cached in the
output folder and reused while their recipes hold.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brittle.bounds.analysis import DEFAULT_SAMPLES, BoundAnalysis, analyse
from brittle.bounds.plots import bound_cdf_plot, bound_vs_latent_dim_plot
from brittle.bounds.projected import theorem2_check
from brittle.bounds.theorems import in_distribution_bound
from brittle.bounds.transferability import theorem3_check
from brittle.classifier import Classifier
from brittle.data import Dataset
from brittle.defenses import PGDTraining
from brittle.errors import BrittleError
from brittle.generators import (
    VAE,
    GeneratorSummary,
    LipschitzEstimate,
    build_generator,
    estimate_lipschitz,
    is_confident,
    load_generator,
    save_generator,
    summarise_generator,
    train_generator,
)
from brittle.zoo import accuracy, build_model, train_model

from .cache import bundled_note, cached, data_info, digest, load_splits, parameters, save_trained
from .report import Figure, Reproduction, Row

Log = Callable[[str], None]

NAME = "fawzi2018"
MODEL_KEYS = ("softmax", "mlp", "lenet", "lenet_advtrained")
TRANSFER_PAIRS = (("lenet", "mlp"), ("lenet", "lenet_advtrained"))
"""The pairs of classifiers whose common perturbations Theorem 3 bounds."""
ROW_IDS = tuple(
    [f"{m}_{q}" for m in MODEL_KEYS for q in ("error_rate", "r_z", "r_in", "r_unc")]
    + ["bound_r_z", "bound_r_in", "lenet_theorem2_share"]
    + [f"theorem3_{f}_{h}_{q}" for f, h in TRANSFER_PAIRS for q in ("bound", "share")]
)
"""The fixed ids of this reproduction's rows (a report's ``rows[].id``; never renamed):
the paper's table, then Theorems 2 and 3."""

PAPER = {
    "key": NAME,
    "title": "Adversarial vulnerability for any classifier",
    "authors": "A. Fawzi, H. Fawzi, O. Fawzi",
    "venue": "Advances in Neural Information Processing Systems (NeurIPS) 2018",
    "arxiv": "1802.08686",
}

PAPER_TABLES = {
    "SVHN (DCGAN generator)": {
        "upper bound": {"r_z": 16e-3, "r_in": 36e-2, "r_unc": 36e-2},
        "2-layer LeNet": {"error_rate": 0.11, "r_z": 6.1e-3, "r_in": 3.3e-2, "r_unc": 0.39e-2},
        "ResNet-18": {"error_rate": 0.048, "r_z": 6.1e-3, "r_in": 3.1e-2, "r_unc": 1.1e-2},
        "ResNet-101": {"error_rate": 0.042, "r_z": 6.6e-3, "r_in": 3.1e-2, "r_unc": 1.4e-2},
    },
    "CIFAR-10 (DCGAN generator)": {
        "upper bound": {"r_z": 0.016, "r_in": 0.10, "r_unc": 0.10},
        "VGG": {"error_rate": 0.055, "r_z": 2.5e-3, "r_in": 4.8e-3, "r_unc": 0.23e-3},
        "Wide ResNet": {"error_rate": 0.039, "r_z": 3.0e-3, "r_in": 5.9e-3, "r_unc": 0.20e-3},
        "Wide ResNet, adv. training": {
            "error_rate": 0.16,
            "r_z": 3.6e-3,
            "r_in": 8.3e-3,
            "r_unc": 2.0e-3,
        },
    },
}
"""The paper's tables (normalised medians), shown beside ours: the paper has no MNIST table."""

LATENT_DIM = 16
DEFAULT_EPOCHS = 30
"""Epochs of the VAE."""
DEFAULT_SAMPLES_ROBUSTNESS = 200
"""Generated samples on which r_Z, r_in and r_unc are measured (``--n-images``)."""
PGD_EPS, PGD_STEPS, PGD_ALPHA = 0.3, 7, 0.5
"""The PGD-trained LeNet: Madry's PGD-7 at Linf 0.3, mixed with the clean loss (alpha 0.5),
fine-tuning the clean LeNet (a PGD-7 epoch costs about nine clean ones; from scratch the
adversarial objective needs many epochs)."""
THEOREM2_SAMPLES = 50
"""Generated samples of Theorem 2's check (each probe of f~ inverts the generator)."""
BATCH_SIZE = 128


@dataclass(frozen=True)
class Spec:
    """How one classifier is trained."""

    arch: str
    role: str
    epochs: int
    lr: float
    arch_kwargs: dict[str, Any]
    adversarial: bool = False
    start_from: str | None = None
    """The key of the classifier whose weights this one starts from (fine-tuning)."""


CLASSIFIERS: dict[str, Spec] = {
    "softmax": Spec("softmax", "softmax regression", 3, 1e-2, {}),
    "mlp": Spec("mlp", "MLP (256, 256)", 3, 1e-3, {"hidden": [256, 256]}),
    "lenet": Spec("lenet", "the zoo LeNet", 2, 1e-3, {}),
    "lenet_advtrained": Spec(
        "lenet",
        f"the zoo LeNet fine-tuned by PGD-{PGD_STEPS} adversarial training at Linf eps "
        f"{PGD_EPS:g} (alpha {PGD_ALPHA:g})",
        1,
        1e-3,
        {},
        adversarial=True,
        start_from="lenet",
    ),
}


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
    """Reproduce the paper's table on MNIST with a VAE into a :class:`Reproduction`.

    ``n_images`` (default 200) generated samples are measured per model; ``n_second``
    (default 10,000) generated samples estimate the class probabilities; the VAE trains
    for ``epochs`` (default 30) on ``n_train`` training images drawn with ``seed`` (default
    all). ``dataset`` defaults to MNIST when found, else the bundled ``mnist5k``.
    """
    say = log or (lambda message: None)
    device = device or torch.device("cpu")
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    n = DEFAULT_SAMPLES_ROBUSTNESS if n_images is None else n_images
    n_samples = DEFAULT_SAMPLES if n_second is None else n_second
    started = time.perf_counter()
    train_set, test_set = load_splits(dataset, data_dir, n_train, seed, {}, epochs)
    about = data_info(train_set, test_set, data_dir)
    timing: dict[str, float] = {}
    start = time.perf_counter()
    generator, reused = _generator(out, epochs, seed, train_set, device, progress, say)
    timing["train_vae"] = time.perf_counter() - start
    models: dict[str, tuple[Classifier, float, bool]] = {}
    for key, spec in CLASSIFIERS.items():
        start = time.perf_counter()
        init = None if spec.start_from is None else models[spec.start_from][0].module
        models[key] = _classifier(
            out, key, spec, seed, (train_set, test_set), init, device, progress, say
        )
        timing[f"train_{key}"] = time.perf_counter() - start
    start = time.perf_counter()
    smooth = estimate_lipschitz(generator, seed=seed)
    timing["lipschitz"] = time.perf_counter() - start
    say(f"the VAE's Lipschitz constant: L = {smooth.lipschitz:.4g}")
    lenet = models["lenet"][0]
    quality = summarise_generator(generator, lenet, smooth.lipschitz, seed=seed)
    real_confident = float(is_confident(lenet, test_set.x.to(device)).float().mean())
    found: dict[str, BoundAnalysis] = {}
    for key in CLASSIFIERS:
        start = time.perf_counter()
        say(f"{key}: bounds and r_Z, r_in, r_unc on {n} generated samples")
        found[key] = analyse(
            models[key][0],
            generator,
            n=n,
            n_samples=n_samples,
            lipschitz=smooth.lipschitz,
            seed=seed,
        )
        timing[f"robustness_{key}"] = time.perf_counter() - start
    start = time.perf_counter()
    say(f"Theorem 2: the projected LeNet on {min(n, THEOREM2_SAMPLES)} generated samples")
    theorem2 = theorem2_check(models["lenet"][0], generator, min(n, THEOREM2_SAMPLES), seed=seed)
    timing["theorem2"] = time.perf_counter() - start
    start = time.perf_counter()
    theorem3 = {}
    for f, h in TRANSFER_PAIRS:
        say(f"Theorem 3: perturbations common to {f} and {h} on {n} generated samples")
        theorem3[f"{f}_{h}"] = theorem3_check(
            models[f][0],
            models[h][0],
            generator,
            n,
            lipschitz=smooth.lipschitz,
            n_samples=n_samples,
            seed=seed,
        )
    timing["theorem3"] = time.perf_counter() - start
    timing["total"] = time.perf_counter() - started
    rows = _rows(models, found, theorem2, theorem3)
    return Reproduction(
        name=NAME,
        paper=PAPER,
        setting={
            **_setting(
                about,
                models,
                found,
                generator,
                reused,
                epochs,
                seed,
                n,
                (quality.confident_share, real_confident),
                smooth,
            ),
            **_theorem_setting(theorem2, theorem3),
        },
        rows=rows,
        figures=_figures(quality, found),
        figure_data={
            "generator": quality.as_json(),
            **{k: a.as_json() for k, a in found.items()},
            "theorem2": theorem2,
            "theorem3": theorem3,
        },
        notes=[
            *bundled_note(about, "Robustness figures"),
            *_order_notes(found),
            *_theorem_notes(theorem2, theorem3),
        ],
        timing=timing,
    )


# ------------------------------------------------------------------ models
def _generator(
    out: Path,
    epochs: int,
    seed: int,
    train: Dataset,
    device: torch.device,
    progress: bool,
    log: Log,
) -> tuple[VAE, bool]:
    recipe = {
        "arch": "vae",
        "latent_dim": LATENT_DIM,
        "epochs": epochs,
        "seed": seed,
        "data": {"name": train.name, "train_images": len(train), "train_sha256": digest(train)},
    }
    path = out / "vae.pt"
    if path.is_file():
        try:
            gen, meta = load_generator(path, device)
        except BrittleError:
            gen, meta = None, {}
        if gen is not None and meta.get("recipe") == recipe and isinstance(gen, VAE):
            log(f"reused {path}")
            return gen, True
    log(f"training a VAE (latent dimension {LATENT_DIM}) for {epochs} epoch(s)")
    gen = build_generator("vae", LATENT_DIM, train.input_shape, seed=seed)
    assert isinstance(gen, VAE)
    history = train_generator(
        gen, train.x, epochs=epochs, seed=seed, device=device, progress=progress
    )
    save_generator(
        path,
        gen,
        {
            "dataset": train.name,
            "epochs": epochs,
            "seed": seed,
            "recipe": recipe,
            "loss": history.loss[-1],
        },
    )
    return gen.eval(), False


def _classifier(
    out: Path,
    key: str,
    spec: Spec,
    seed: int,
    data: tuple[Dataset, Dataset],
    init: nn.Module | None,
    device: torch.device,
    progress: bool,
    log: Log,
) -> tuple[Classifier, float, bool]:
    """Train (or reuse) one classifier; ``init``: the module whose weights it starts from."""
    train, test = data
    objective = PGDTraining(PGD_EPS, PGD_STEPS, alpha=PGD_ALPHA) if spec.adversarial else None
    recipe = {
        "arch": spec.arch,
        "arch_kwargs": spec.arch_kwargs,
        "epochs": spec.epochs,
        "lr": spec.lr,
        "batch_size": BATCH_SIZE,
        "objective": objective.describe() if objective is not None else "cross_entropy",
        "seed": seed,
        "data": {"name": train.name, "train_images": len(train), "train_sha256": digest(train)},
        "start_from": None if init is None else _weights_digest(init),
    }
    path = out / f"{key}.pt"
    module: nn.Module | None = cached(path, recipe, device)
    reused = module is not None
    if module is None:
        log(f"training {key} ({spec.role}) for {spec.epochs} epoch(s)")
        module = build_model(
            spec.arch, train.input_shape, len(train.classes), seed=seed, **spec.arch_kwargs
        )
        if init is not None:
            module.load_state_dict(init.state_dict())
        start = time.perf_counter()
        train_model(
            module,
            train.x,
            train.y,
            epochs=spec.epochs,
            batch_size=BATCH_SIZE,
            lr=spec.lr,
            seed=seed,
            device=device,
            progress=progress,
            objective=objective,
        )
        defense = objective.describe() if objective is not None else None
        acc = save_trained(
            path, module, recipe, train, test, device, time.perf_counter() - start, defense
        )
    else:
        acc = float(accuracy(module, test.x, test.y, device=device))
    log(f"{'reused' if reused else 'saved'} {path}: test accuracy {acc:.2%}")
    module.eval()
    clf = Classifier(module, bounds=(0.0, 1.0), num_classes=len(train.classes), device=device)
    return clf, acc, reused


def _weights_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers, in state-dict order (what a fine-tuned
    model started from, in its recipe)."""
    sha = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


# ------------------------------------------------------------------ report
def _rows(
    models: dict[str, tuple[Classifier, float, bool]],
    found: dict[str, BoundAnalysis],
    theorem2: dict[str, Any],
    theorem3: dict[str, dict[str, Any]],
) -> list[Row]:
    rows = []
    for key in MODEL_KEYS:
        est = found[key].estimates
        role = CLASSIFIERS[key].role
        rows += [
            Row(
                f"{key}_error_rate",
                f"{role}: error rate on the real test set",
                None,
                1 - models[key][1],
            ),
            Row(
                f"{key}_r_z",
                f"{role}: median r_Z / mean ||z||",
                None,
                est.latent.normalised_median,
                fraction=False,
            ),
            Row(
                f"{key}_r_in",
                f"{role}: median r_in / mean ||x||",
                None,
                est.in_distribution.normalised_median,
                fraction=False,
            ),
            Row(
                f"{key}_r_unc",
                f"{role}: median r_unc / mean ||x||",
                None,
                est.unconstrained.normalised_median,
                fraction=False,
            ),
        ]
    lenet = found["lenet"]
    rows += [
        Row(
            "bound_r_z",
            "upper bound on the median r_Z / mean ||z|| (any classifier, the LeNet's class probabilities)",
            None,
            lenet.bound_latent.normalised,
            fraction=False,
        ),
        Row(
            "bound_r_in",
            "upper bound on the median r_in / mean ||x|| (any classifier, the LeNet's class probabilities, L estimated)",
            None,
            lenet.bound_input.normalised,
            fraction=False,
        ),
        Row(
            "lenet_theorem2_share",
            "Theorem 2, the LeNet projected on the generator's range: share of samples with "
            "r_unc >= r_in / 2 (the theorem: all)",
            None,
            _nan(theorem2["share_satisfied"]),
        ),
    ]
    for f, h in TRANSFER_PAIRS:
        found3 = theorem3[f"{f}_{h}"]
        pair = f"{CLASSIFIERS[f].role} and {CLASSIFIERS[h].role}"
        rows += [
            Row(
                f"theorem3_{f}_{h}_bound",
                f"Theorem 3, {pair}: lower bound on P(one v, ||v|| <= {found3['eta']:.3g}, "
                "fools both), at delta's upper limit",
                None,
                _nan(found3["bound_conservative"]),
            ),
            Row(
                f"theorem3_{f}_{h}_share",
                f"Theorem 3, {pair}: share of samples where an attack on both found such a v",
                None,
                found3["share"],
            ),
        ]
    return rows


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _theorem_setting(
    theorem2: dict[str, Any], theorem3: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    keys2 = ("n", "share_satisfied", "violations", "agreement", "inversion_error_median")
    return {
        "theorem2_projected_lenet": {
            **{k: theorem2[k] for k in keys2},
            "method": theorem2["method"],
        },
        "theorem3_common_perturbations": {
            pair: {
                "eta": found["eta"],
                "delta": found["delta"],
                "delta_upper": found["delta_upper"],
                "bound_at_delta": found["bound"],
                "bound_at_delta_upper": found["bound_conservative"],
                "share": found["share"],
                "n": found["n"],
            }
            for pair, found in theorem3.items()
        },
    }


def _theorem_notes(theorem2: dict[str, Any], theorem3: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    if theorem2["violations"]:
        notes.append(
            f"Theorem 2: {theorem2['violations']} of {theorem2['n']} samples have a measured "
            "r_unc of the projected LeNet below r_in / 2 (tolerance "
            f"{theorem2['tolerance']:.0%}); the theorem excludes it up to the inversion error "
            f"(median {theorem2['inversion_error_median']:.3g})."
        )
    for pair, found in theorem3.items():
        if not found["attack_reaches_bound"]:
            notes.append(
                f"Theorem 3, {pair}: the joint attack found a common perturbation on "
                f"{found['share']:.1%} of the samples, below the bound "
                f"{found['bound_conservative']:.1%}: a weak attack, or an underestimated L."
            )
    return notes


def _order_notes(found: dict[str, BoundAnalysis]) -> list[str]:
    notes = []
    for key, analysis in found.items():
        for what, ok in analysis.checks.items():
            if not ok:
                notes.append(f"{key}: not as the theory predicts: {what}.")
    return notes


def _figures(quality: GeneratorSummary, found: dict[str, BoundAnalysis]) -> list[Figure]:
    lenet = found["lenet"]
    est = lenet.estimates
    probs = lenet.probabilities.estimate
    top = max(
        float(v)
        for v in (
            est.in_distribution.median,
            lenet.bound_input.raw,
            est.latent.median,
            lenet.bound_latent.raw,
        )
        if np.isfinite(v)
    )
    eta = np.linspace(0, 2 * top, 200)
    curves = {
        "r_Z (latent)": np.sort(est.latent.values.cpu().double().numpy()),
    }
    image = {
        "r_in": np.sort(est.in_distribution.values.cpu().double().numpy()),
        "r_unc": np.sort(est.unconstrained.values.cpu().double().numpy()),
    }
    return [
        *(Figure(caption, png) for caption, png in quality.figures),
        Figure(
            "The LeNet, latent space: the empirical CDF of r_Z against Theorem 1's bound.",
            bound_cdf_plot(
                curves,
                eta,
                in_distribution_bound(eta, probs),
                lenet.bound_latent.raw,
                xlabel="eta (latent L2)",
                title="r_Z against the bound",
            ),
        ),
        Figure(
            f"The LeNet, image space: r_in and r_unc against the bound with L = {lenet.lipschitz:.4g}.",
            bound_cdf_plot(
                image,
                eta,
                in_distribution_bound(eta, probs, lenet.lipschitz),
                lenet.bound_input.raw,
                xlabel="eta (image L2)",
                title="r_in and r_unc against the bound",
            ),
        ),
        Figure(
            "The normalised latent bound as a function of the latent dimension d (balanced classes).",
            bound_vs_latent_dim_plot(
                [8, 16, 32, 64, 100], measured={LATENT_DIM: lenet.bound_latent.normalised}
            ),
        ),
    ]


def _setting(
    about: dict[str, Any],
    models: dict[str, tuple[Classifier, float, bool]],
    found: dict[str, BoundAnalysis],
    generator: VAE,
    reused: bool,
    epochs: int,
    seed: int,
    n: int,
    quality: tuple[float, float],
    smooth: LipschitzEstimate,
) -> dict[str, Any]:
    return {
        "data": about,
        "generator": {
            "arch": "VAE (MLP encoder and decoder)",
            "latent_dim": LATENT_DIM,
            "hidden": generator.arch_kwargs.get("hidden"),
            "parameters": parameters(generator),
            "epochs": epochs,
            "reused_checkpoint": reused,
            "lipschitz": smooth.lipschitz,
            "lipschitz_method": smooth.method,
            "confident_share_lenet": quality[0],
            "confident_share_lenet_real_test": quality[1],
        },
        "models": {
            key: {
                "role": spec.role,
                "arch": spec.arch,
                "epochs": spec.epochs,
                "lr": spec.lr,
                "parameters": parameters(models[key][0].module),
                "accuracy": models[key][1],
                "reused_checkpoint": models[key][2],
            }
            for key, spec in CLASSIFIERS.items()
        },
        "ours_mnist_vae": {
            "upper bound": {
                "r_z": found["lenet"].bound_latent.normalised,
                "r_in": found["lenet"].bound_input.normalised,
                "r_unc": found["lenet"].bound_input.normalised,
            },
            **{
                CLASSIFIERS[key].role: {
                    "error_rate": 1 - models[key][1],
                    "r_z": a.estimates.latent.normalised_median,
                    "r_in": a.estimates.in_distribution.normalised_median,
                    "r_unc": a.estimates.unconstrained.normalised_median,
                }
                for key, a in found.items()
            },
        },
        **{f"paper_{k.split(' ')[0].lower().replace('-', '')}": v for k, v in PAPER_TABLES.items()},
        "bounds_per_model": {
            key: {
                "bound_r_z": a.bound_latent.normalised,
                "bound_r_in": a.bound_input.normalised,
                "r_z": a.estimates.latent.normalised_median,
                "r_in": a.estimates.in_distribution.normalised_median,
                "r_unc": a.estimates.unconstrained.normalised_median,
            }
            for key, a in found.items()
        },
        "sizes": {
            "robustness_samples": n,
            "class_probability_samples": found["lenet"].probabilities.n,
        },
        "seeds": {"everything": seed},
        "differences": [
            "Data and generator: MNIST with a VAE (latent dimension 16); the paper uses SVHN "
            "and CIFAR-10 with DCGAN-like generators, and gives no MNIST table.",
            "Classifiers: softmax regression, an MLP and LeNets trained on real MNIST for a few "
            "epochs; the paper's are LeNet, ResNets, VGG and Wide ResNets.",
            f"Robustness is measured on {n} generated samples per model with brittle's "
            "minimal attacks and bisection; the bound uses the class probabilities of each "
            "model on the generator's samples and the estimated Lipschitz constant of the VAE.",
        ],
    }
