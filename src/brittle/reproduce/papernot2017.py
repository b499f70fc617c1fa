"""Reproduction of Papernot et al. 2017, "Practical Black-Box Attacks against Machine
Learning" (ASIA CCS 2017), section 5's MNIST experiment, at a reduced scale.

An oracle (the zoo LeNet, trained here; the paper attacked MetaMind's remote DNN) answers
labels only. A substitute (the zoo MLP) starts from 150 test images labelled by the oracle
and is grown by 6 rounds of Jacobian-based dataset augmentation with lambda = 0.1 and the
periodic step size (tau = 3); after each round the substitute's accuracy and agreement with
the oracle are measured on the attacked test images, and FGSM at eps = 0.3 crafted on it is
transferred to the oracle. A second run uses reservoir sampling (sigma = 3, kappa = 400,
section 6), which spends fewer queries. Rows (fixed ids): :data:`ROW_IDS`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure as Canvas
from torch import nn

from brittle.attacks import FGSM
from brittle.classifier import Classifier
from brittle.data import Dataset
from brittle.errors import InputError
from brittle.report.plots import to_png
from brittle.substitute import HeldOut, Round, SubstituteFit, train_substitute
from brittle.zoo import build_model, train_model

from .cache import Log, bundled_note, cached, data_info, load_splits, save_trained
from .report import Figure, Reproduction, Row

NAME = "papernot2017"
ROW_IDS = (
    "oracle_accuracy",
    "substitute_accuracy",
    "substitute_agreement",
    "transfer_rate",
    "queries",
    "seed_substitute_accuracy",
    "seed_transfer_rate",
    "reservoir_substitute_accuracy",
    "reservoir_transfer_rate",
    "reservoir_queries",
)
"""The fixed ids of this reproduction's rows (a report's ``rows[].id``; never renamed)."""

PAPER = {
    "key": NAME,
    "title": "Practical Black-Box Attacks against Machine Learning",
    "authors": "N. Papernot, P. McDaniel, I. Goodfellow, S. Jha, Z. B. Celik, A. Swami",
    "venue": "ACM Asia Conference on Computer and Communications Security (ASIA CCS) 2017",
    "arxiv": "1602.02697",
}
PAPER_SUBSTITUTE_ACCURACY = 0.8120
"""The substitute's MNIST test accuracy after 6 rounds from 150 test images (section 5)."""
PAPER_TRANSFER_RATE = 0.8424
"""Adversarial examples (FGSM, eps = 0.3) crafted on it that MetaMind's oracle misclassifies."""

SEED_SIZE = 150
ROUNDS = 6
LAMBDA = 0.1
TAU = 3
SIGMA, KAPPA = 3, 400
"""The reservoir variant of section 6: 3 full rounds, then 400 new points per round."""
EPS = 0.3
SUBSTITUTE_EPOCHS = 10
SUBSTITUTE = "mlp"
DEFAULT_IMAGES = 1000
"""Test images attacked (after the seed images) and measured on."""
DEFAULT_EPOCHS = 2
"""The oracle's training epochs."""
BATCH_SIZE = 128
LR = 1e-3
CHECKPOINT = "oracle_lenet.pt"


@dataclass(frozen=True)
class Curve:
    """One substitute training: per round, its accuracy, agreement, transfer rate and the
    oracle's labels spent so far; the trained substitute."""

    rounds: list[Round]
    transfer: list[float]
    queries: list[int]
    seconds: float
    fit: SubstituteFit

    def as_json(self) -> dict[str, Any]:
        return {
            "rho": [r.rho for r in self.rounds],
            "size": [r.size for r in self.rounds],
            "step": [r.step for r in self.rounds],
            "accuracy": [r.accuracy for r in self.rounds],
            "agreement": [r.agreement for r in self.rounds],
            "transfer_rate": self.transfer,
            "queries": self.queries,
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
    """Reproduce section 5's MNIST curve and section 6's reservoir variant.

    The oracle (zoo LeNet) trains for ``epochs`` (default 2) on ``n_train`` training images
    (all by default) and is cached in ``out``; the first 150 test images seed the substitute
    and the next ``n_images`` (default 1,000) are measured and attacked. ``n_second`` is not
    used. ``dataset`` defaults to MNIST when found, else the bundled ``mnist5k``.
    """
    say = log or (lambda message: None)
    device = device or torch.device("cpu")
    n_images = DEFAULT_IMAGES if n_images is None else n_images
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    counts = {"--n-images (+150 seed images)": n_images + SEED_SIZE}
    train_set, test_set = load_splits(dataset, data_dir, n_train, seed, counts, epochs)
    about = data_info(train_set, test_set, data_dir)
    timing: dict[str, float] = {}

    start = time.perf_counter()
    oracle, oracle_accuracy = _oracle(out, train_set, test_set, epochs, seed, device, progress, say)
    timing["train_oracle"] = time.perf_counter() - start
    seed_x = test_set.x[:SEED_SIZE]
    part = slice(SEED_SIZE, SEED_SIZE + n_images)
    attacked = replace(test_set, x=test_set.x[part], y=test_set.y[part], ids=test_set.ids[part])
    x, y = attacked.x.to(device), attacked.y.to(device)
    oracle_labels = oracle.predict(x)
    if not bool((oracle_labels == y).any()):
        raise InputError(
            "the oracle classifies none of the attacked images correctly; train it longer "
            "(--epochs)"
        )
    held = HeldOut(x, y, oracle_labels)
    curves: dict[str, Curve] = {}
    for key, kappa in (("full", None), ("reservoir", KAPPA)):
        say(f"substitute ({key}): {SEED_SIZE} seed images, {ROUNDS} rounds")
        curves[key] = substitute_curve(oracle, seed_x, held, kappa, seed, device)
        timing[f"substitute_{key}"] = curves[key].seconds
    full, reservoir = curves["full"], curves["reservoir"]
    last, first = full.rounds[-1], full.rounds[0]
    assert last.accuracy is not None and last.agreement is not None
    assert first.accuracy is not None and reservoir.rounds[-1].accuracy is not None
    rows = [
        Row(
            "oracle_accuracy",
            "oracle (LeNet) test accuracy",
            None,
            oracle_accuracy,
            "the paper's oracle was MetaMind's remote DNN, not reported",
        ),
        Row(
            "substitute_accuracy",
            f"substitute accuracy after {ROUNDS} rounds",
            PAPER_SUBSTITUTE_ACCURACY,
            last.accuracy,
            "paper: section 5, Table 1, rho = 6",
        ),
        Row(
            "substitute_agreement",
            "substitute agrees with the oracle (share of test images)",
            None,
            last.agreement,
        ),
        Row(
            "transfer_rate",
            f"FGSM eps={EPS} on the substitute, misclassified by the oracle",
            PAPER_TRANSFER_RATE,
            full.transfer[-1],
            "paper: MetaMind's oracle",
        ),
        Row("queries", "labels asked of the oracle", None, float(full.queries[-1]), fraction=False),
        Row(
            "seed_substitute_accuracy",
            "substitute accuracy on the 150 seed images alone",
            None,
            first.accuracy,
        ),
        Row(
            "seed_transfer_rate",
            "transfer rate of the seed-only substitute",
            None,
            full.transfer[0],
        ),
        Row(
            "reservoir_substitute_accuracy",
            f"substitute accuracy, reservoir sampling (sigma={SIGMA}, kappa={KAPPA})",
            None,
            reservoir.rounds[-1].accuracy,
        ),
        Row(
            "reservoir_transfer_rate",
            "transfer rate, reservoir sampling",
            None,
            reservoir.transfer[-1],
        ),
        Row(
            "reservoir_queries",
            "labels asked of the oracle, reservoir sampling",
            None,
            float(reservoir.queries[-1]),
            fraction=False,
        ),
    ]
    setting = {
        "data": about,
        "oracle": {
            "model": "zoo lenet",
            "epochs": epochs,
            "batch_size": BATCH_SIZE,
            "lr": LR,
            "optimizer": "adam",
            "seed": seed,
        },
        "substitute": {
            "model": f"zoo {SUBSTITUTE}",
            "seed_images": SEED_SIZE,
            "rounds": ROUNDS,
            "lambda": LAMBDA,
            "tau": TAU,
            "epochs_per_round": SUBSTITUTE_EPOCHS,
            "optimizer": "adam",
            "reservoir": {"sigma": SIGMA, "kappa": KAPPA},
            "seed": seed,
        },
        "attack": {"crafter": "fgsm", "eps": EPS, "norm": "linf", "attacked_images": len(attacked)},
        "differences": [
            "the oracle is a LeNet trained here, not MetaMind's remote DNN",
            f"the substitute is the zoo MLP trained with Adam (lr {LR:g}), weights carried "
            "over between rounds",
            f"measured on {len(attacked):,} test images, not the whole test set",
        ],
    }
    return Reproduction(
        name=NAME,
        paper=PAPER,
        setting=setting,
        rows=rows,
        figures=[
            Figure(
                "substitute accuracy, agreement and transfer rate per round", curves_figure(curves)
            )
        ],
        figure_data={key: curve.as_json() for key, curve in curves.items()},
        notes=bundled_note(about, "The accuracies and transfer rates"),
        timing=timing,
    )


def _oracle(
    out: Path,
    train: Dataset,
    test: Dataset,
    epochs: int,
    seed: int,
    device: torch.device,
    progress: bool,
    say: Log,
) -> tuple[Classifier, float]:
    """The oracle LeNet: cached in ``out`` or trained; its accuracy on the test split."""
    about = data_info(train, test, None)
    recipe = {
        "arch": "lenet",
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "seed": seed,
        "data": {k: about[k] for k in ("name", "train_images", "train_sha256")},
    }
    path = out / CHECKPOINT
    module: nn.Module | None = cached(path, recipe, device)
    if module is None:
        say(f"training the oracle LeNet on {len(train):,} images for {epochs} epoch(s)")
        module = build_model("lenet", train.input_shape, len(train.classes), seed=seed)
        start = time.perf_counter()
        train_model(
            module,
            train.x,
            train.y,
            epochs=epochs,
            batch_size=BATCH_SIZE,
            lr=LR,
            seed=seed,
            device=device,
            progress=progress,
        )
        out.mkdir(parents=True, exist_ok=True)
        save_trained(path, module, recipe, train, test, device, time.perf_counter() - start)
    module.eval()
    oracle = Classifier(module, bounds=(0.0, 1.0), device=device)
    accuracy = float((oracle.predict(test.x.to(device)) == test.y.to(device)).double().mean())
    return oracle, accuracy


def substitute_curve(
    oracle: Classifier,
    seed_x: torch.Tensor,
    held: HeldOut,
    kappa: int | None,
    seed: int,
    device: torch.device,
) -> Curve:
    """One substitute training, FGSM transferred after every round."""
    transfer: list[float] = []
    queries: list[int] = []
    spent = 0
    fgsm = FGSM(EPS)

    def measure(done: Round, net: nn.Module) -> None:
        nonlocal spent
        spent += done.queries
        queries.append(spent)
        surrogate = Classifier(net, bounds=(0.0, 1.0), device=device)
        crafted = fgsm(surrogate, held.x, held.y).x_adv
        transfer.append(float((oracle.predict(crafted) != held.y).double().mean()))

    start = time.perf_counter()
    fit = train_substitute(
        seed_x,
        target=oracle,
        module=SUBSTITUTE,
        rounds=ROUNDS,
        lam=LAMBDA,
        tau=TAU,
        kappa=kappa,
        sigma=SIGMA,
        epochs=SUBSTITUTE_EPOCHS,
        lr=LR,
        batch_size=BATCH_SIZE,
        seed=seed,
        device=device,
        held_out=held,
        on_round=measure,
    )
    return Curve(fit.rounds, transfer, queries, time.perf_counter() - start, fit)


def curves_figure(curves: Mapping[str, Curve]) -> bytes:
    """Two panels over the rounds rho: the substitute's accuracy and agreement, and the
    transfer rate, one line per run (full augmentation, reservoir sampling)."""
    fig = Canvas(figsize=(9.0, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    for key, curve in curves.items():
        rho = [r.rho for r in curve.rounds]
        left.plot(
            rho, _percent([r.accuracy for r in curve.rounds]), marker="o", label=f"{key}: accuracy"
        )
        left.plot(
            rho,
            _percent([r.agreement for r in curve.rounds]),
            marker="s",
            linestyle="--",
            label=f"{key}: agreement",
        )
        right.plot(rho, _percent(curve.transfer), marker="o", label=key)
    left.axhline(
        100 * PAPER_SUBSTITUTE_ACCURACY, color="grey", linestyle=":", label="paper, rho = 6"
    )
    right.axhline(100 * PAPER_TRANSFER_RATE, color="grey", linestyle=":", label="paper")
    for ax, title in (
        (left, "substitute on the test images"),
        (right, f"FGSM eps={EPS} transferred to the oracle"),
    ):
        ax.set_xlabel("substitute round rho")
        ax.set_ylabel("%")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(title, fontsize=9)
    return to_png(fig)


def _percent(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else 100 * v for v in values]
