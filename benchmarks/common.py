"""Shared pieces of the benchmarks: one trained LeNet, and that same network for each peer.

``trained_lenet()`` trains the zoo LeNet on full MNIST once (deterministically: fixed seeds
for the initialisation and the shuffling) and caches the checkpoint in ``runs/cache/``; later
calls load it. The adapters below wrap the *same* ``nn.Module`` object for torchattacks,
Foolbox and ART, so every library attacks identical weights.

:class:`CountingModule` sits between every library and the network: it counts the samples
that go through a forward pass and, through a hook on the input, the per-sample gradients
that flow back to the input. That gives the gradient evaluations of the peers, which do not
report them, measured the same way as brittle's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "runs" / "cache"
INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10

# the training recipe of the benchmark LeNet (part of the cache key)
RECIPE: dict[str, Any] = {
    "arch": "lenet",
    "epochs": 3,
    "batch_size": 128,
    "lr": 1e-3,
    "optimizer": "adam",
    "seed": 0,
}


def mnist_dir() -> Path:
    """The folder of the MNIST IDX files: ``$BRITTLE_DATA/mnist`` or ``../shared/data/mnist``."""
    root = os.environ.get("BRITTLE_DATA")
    if root:
        return Path(root) / "mnist"
    return REPO.parent / "shared" / "data" / "mnist"


def _files_digest(folder: Path) -> str:
    """Names and sizes of the data files: enough to notice another copy of the data."""
    entries = sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file())
    return json.dumps(entries)


def _cache_path(extra: dict[str, Any]) -> Path:
    key = json.dumps({**RECIPE, **extra, "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return CACHE / f"lenet_mnist_{digest}.pt"


def trained_lenet(progress: bool = True) -> tuple[Any, Any]:
    """The zoo LeNet trained on full MNIST, as ``(brittle.Classifier, test Dataset)``.

    Trained once with :data:`RECIPE` (Adam, 3 epochs, seed 0; a minute or two on 2 idle CPU
    cores; above 98.5% test accuracy) and cached in ``runs/cache/``; the cache key holds the
    recipe, the torch version and the data files' sizes.
    """
    from brittle.classifier import Classifier
    from brittle.data import load_dataset
    from brittle.zoo import build_model, load_checkpoint, save_checkpoint, train_model
    from brittle.zoo.train import accuracy

    folder = mnist_dir()
    test = load_dataset("mnist", "test", data_dir=folder)
    path = _cache_path({"data": _files_digest(folder)})
    if not path.is_file():
        train = load_dataset("mnist", "train", data_dir=folder)
        model = build_model(RECIPE["arch"], INPUT_SHAPE, NUM_CLASSES, seed=RECIPE["seed"])
        start = time.perf_counter()
        train_model(
            model,
            train.x,
            train.y,
            epochs=RECIPE["epochs"],
            batch_size=RECIPE["batch_size"],
            lr=RECIPE["lr"],
            optimizer=RECIPE["optimizer"],
            seed=RECIPE["seed"],
            progress=progress,
        )
        seconds = time.perf_counter() - start
        model.eval()
        acc = float(accuracy(model, test.x, test.y))
        save_checkpoint(
            path,
            model,
            {
                "dataset": "mnist",
                "bounds": [0.0, 1.0],
                "test_accuracy": acc,
                "train_seconds": seconds,
                **{k: v for k, v in RECIPE.items() if k != "arch"},
            },
        )
    loaded, meta = load_checkpoint(path)
    loaded.eval()
    clf = Classifier(loaded, bounds=(0.0, 1.0), num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)
    clf.checkpoint = path  # type: ignore[attr-defined]
    clf.meta = meta  # type: ignore[attr-defined]
    return clf, test


# the PGD-trained LeNet (bench_suite): the recipe of lenet_advtrained in reproduce/fawzi2018.py,
# Madry's PGD-7 at Linf 0.3 mixed with the clean loss (alpha 0.5), one epoch fine-tuning the
# benchmark LeNet above (part of the cache key, with RECIPE)
ADV_RECIPE: dict[str, Any] = {
    "objective": "pgd",
    "eps": 0.3,
    "steps": 7,
    "alpha": 0.5,
    "epochs": 1,
    "batch_size": 128,
    "lr": 1e-3,
    "optimizer": "adam",
    "seed": 0,
    "start_from": "trained_lenet",
}
ADV_CHECK: dict[str, Any] = {"attack": "pgd", "steps": 40, "restarts": 1, "eps": 0.3, "n": 1000}
"""The PGD robust accuracy recorded with the PGD-trained LeNet: brittle's PGD (40 steps of
2.5 eps / 40, one random start) at Linf 0.3 on the first 1,000 MNIST test images."""


def pgd_trained_lenet(progress: bool = True) -> tuple[Any, Any]:
    """The benchmark LeNet (:func:`trained_lenet`) fine-tuned by PGD adversarial training, as
    ``(brittle.Classifier, test Dataset)``.

    The recipe of ``lenet_advtrained`` in ``brittle.reproduce.fawzi2018`` (:data:`ADV_RECIPE`:
    ``PGDTraining(0.3, 7, alpha=0.5)``, one epoch on full MNIST, Adam at 1e-3, batches of 128,
    seed 0; about nine clean epochs of work). Trained once and cached in ``runs/cache/``
    under a key holding both recipes, the torch version and the data files' sizes. The
    checkpoint's metadata hold the full test set's accuracy (``test_accuracy``) and the PGD
    robust accuracy of :data:`ADV_CHECK` (``pgd_robust_accuracy``).
    """
    from brittle.attacks import PGD
    from brittle.classifier import Classifier
    from brittle.data import load_dataset
    from brittle.defenses import PGDTraining
    from brittle.zoo import load_checkpoint, save_checkpoint, train_model
    from brittle.zoo.train import accuracy

    base, test = trained_lenet(progress=progress)
    folder = mnist_dir()
    path = _cache_path({"data": _files_digest(folder), "adversarial": ADV_RECIPE})
    path = path.with_name(path.name.replace("lenet_mnist_", "lenet_pgd_mnist_"))
    if not path.is_file():
        train = load_dataset("mnist", "train", data_dir=folder)
        model, _ = load_checkpoint(base.checkpoint)
        objective = PGDTraining(ADV_RECIPE["eps"], ADV_RECIPE["steps"], alpha=ADV_RECIPE["alpha"])
        start = time.perf_counter()
        train_model(
            model,
            train.x,
            train.y,
            epochs=ADV_RECIPE["epochs"],
            batch_size=ADV_RECIPE["batch_size"],
            lr=ADV_RECIPE["lr"],
            optimizer=ADV_RECIPE["optimizer"],
            seed=ADV_RECIPE["seed"],
            progress=progress,
            objective=objective,
        )
        seconds = time.perf_counter() - start
        model.eval()
        acc = float(accuracy(model, test.x, test.y))
        clf = Classifier(model, bounds=(0.0, 1.0), num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)
        n = ADV_CHECK["n"]
        attack = PGD(ADV_CHECK["eps"], steps=ADV_CHECK["steps"], restarts=ADV_CHECK["restarts"])
        robust = [
            attack(clf, test.x[ids], test.y[ids], ids=ids).robust
            for ids in torch.arange(n).split(500)
        ]
        save_checkpoint(
            path,
            model,
            {
                "dataset": "mnist",
                "bounds": [0.0, 1.0],
                "test_accuracy": acc,
                "pgd_robust_accuracy": float(torch.cat(robust).float().mean()),
                "pgd_check": ADV_CHECK,
                "train_seconds": seconds,
                "defense": objective.describe(),
                "base_checkpoint": base.checkpoint.name,
                **{k: v for k, v in ADV_RECIPE.items() if k != "objective"},
            },
        )
    loaded, meta = load_checkpoint(path)
    loaded.eval()
    clf = Classifier(loaded, bounds=(0.0, 1.0), num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)
    clf.checkpoint = path  # type: ignore[attr-defined]
    clf.meta = meta  # type: ignore[attr-defined]
    return clf, test


# ---------------------------------------------------------------------------- counting
class CountingModule(nn.Module):
    """Wraps a network; counts forward samples and per-sample input gradients.

    ``forwards`` grows by the batch size at each forward pass; ``gradients`` by the batch
    size each time a gradient flows back to the input of a pass (one backward pass through
    the network for those samples). Attacks that take several backward passes from one
    forward (a Jacobian row by row) are counted once per backward pass.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.forwards = 0
        self.gradients = 0

    def reset(self) -> None:
        self.forwards = 0
        self.gradients = 0

    def _count_backward(self, grad: Tensor) -> None:
        self.gradients += int(grad.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        self.forwards += int(x.shape[0])
        if x.requires_grad:
            x.register_hook(self._count_backward)
        out: Tensor = self.module(x)
        return out


# ---------------------------------------------------------------------------- adapters
def torchattacks_model(module: nn.Module) -> nn.Module:
    """torchattacks takes the module itself (inputs in [0, 1], logits out)."""
    return module.eval()


def foolbox_model(module: nn.Module) -> Any:
    """Foolbox 3: ``PyTorchModel(model, bounds=(0, 1))``."""
    import foolbox as fb

    return fb.PyTorchModel(module.eval(), bounds=(0.0, 1.0), device="cpu")


def art_classifier(module: nn.Module) -> Any:
    """ART: ``PyTorchClassifier`` with cross-entropy loss and clip values (0, 1), on the CPU."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=module.eval(),
        loss=nn.CrossEntropyLoss(),
        input_shape=INPUT_SHAPE,
        nb_classes=NUM_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def machine() -> dict[str, Any]:
    """What the figures were measured on: the CPU's name, its logical CPUs, the versions."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
