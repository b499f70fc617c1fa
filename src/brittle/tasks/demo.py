"""``brittle demo``: train a LeNet, evaluate FGSM at four budgets and write the report."""

from __future__ import annotations

from pathlib import Path

from brittle.attacks.base import DEFAULT_BATCH_SIZE
from brittle.data import load_dataset
from brittle.errors import InputError
from brittle.files import check_outputs
from brittle.validation import check_positive_integer

from .common import Log, draw, quiet
from .evaluate import DEFAULT_EPS_LIST, EvaluateOutcome, evaluate_model
from .train import Recipe, TrainOutcome, train_on

DEMO_EPS = DEFAULT_EPS_LIST
"""The FGSM budgets of ``brittle demo``: an evaluation's default ones."""
DEMO_TRAIN = 15000
DEMO_LR = 3e-3
"""The demo trains for one epoch on this many samples at this learning rate: about 97% test
accuracy on MNIST in well under a minute of two CPU cores."""


def demo(
    *,
    out: str | Path = "runs/demo",
    dataset: str = "auto",
    data_dir: str | Path | None = None,
    n_train: int | None = None,
    epochs: int = 1,
    n: int = 500,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    log: Log = quiet,
) -> tuple[TrainOutcome, EvaluateOutcome]:
    """Train a LeNet on ``dataset``, then evaluate FGSM at :data:`DEMO_EPS` and report.

    ``n_train`` training samples are used; by default :data:`DEMO_TRAIN`, or all when the
    training split holds fewer (the bundled 4,000 digits when MNIST is not found).
    """
    if n_train is not None:
        check_positive_integer(n_train, "--n-train")
    out = Path(out)
    place = "--out (lenet.pt)"
    checkpoint = check_outputs({place: out / "lenet.pt"}, {"--data-dir": data_dir})[place]
    train_set = load_dataset(dataset, "train", data_dir)
    trained = train_on(
        draw(train_set, n_train, seed, "train", "--n-train", DEMO_TRAIN),
        load_dataset(dataset, "test", data_dir),
        recipe=Recipe("lenet", epochs=epochs, lr=DEMO_LR, seed=seed),
        out=checkpoint,
        device=device,
        progress=progress,
    )
    log(
        f"trained a LeNet on {trained.meta['dataset']}: test accuracy {trained.meta['accuracy']:.1%}"
    )
    evaluated = evaluate_model(
        model=trained.path,
        out=out,
        data_dir=data_dir,
        eps_list=DEMO_EPS,
        attack="fgsm",
        n=n,
        batch_size=batch_size,
        seed=seed,
        device=device,
        progress=progress,
        log=log,
    )
    if evaluated is None:
        raise InputError("the demo runs in one process: start it without torchrun")
    return trained, evaluated
