"""Shared fixtures: a small LeNet trained once on MNIST, for tests that need a real model.

The model is the zoo LeNet, narrowed (conv 16, conv 32, fc 100) so that attacks in tests are
quick, trained for one epoch on the first 10,000 MNIST training images: full MNIST when its
IDX files are found (``$BRITTLE_DATA/mnist`` or ``../shared/data/mnist`` beside the repo),
else brittle's bundled ``mnist5k``. Training is deterministic; the weights are cached in the
pytest cache under a key that hashes the recipe, the data and the models code, and a file
lock makes the xdist workers train it once between them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
SMALL_LENET = {
    "arch": "lenet",
    "arch_kwargs": {"channels": [16, 32], "hidden": [100]},
    "train_images": 10_000,
    "epochs": 1,
    "batch_size": 64,
    "lr": 2e-3,
    "seed": 0,
}


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny models: much faster than two (no spinning)
    and fair to the other test workers; the previous setting is restored after. Modules ask
    for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


SLOW_TESTS = Path(__file__).with_name("slow_tests.txt")
"""The measured slow tier: tests whose own time was long (see the file's header)."""


def slow_entries() -> list[str]:
    """The entries of :data:`SLOW_TESTS`: ``tests/file.py`` (the whole file) or
    ``tests/file.py::test_name`` (every parameter of that test); ``#`` starts a comment."""
    lines = SLOW_TESTS.read_text().splitlines()
    return [entry for line in lines if (entry := line.partition("#")[0].strip())]


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that tests/slow_tests.txt names; other tests are in the fast
    tier unless they carry ``@pytest.mark.slow`` themselves."""
    entries = set(slow_entries())
    for item in items:
        test = item.nodeid.partition("[")[0]  # tests/file.py::test_name, or ::Class::test
        if test in entries or test.partition("::")[0] in entries:
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, share the cores between the workers instead of oversubscribing them."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))
    _write_art_config()


def _write_art_config() -> None:
    """Create ART's ``~/.art/config.json`` before any worker imports ART.

    ART 1.20 writes that file on first import and, when two processes import it at once on a
    machine without it, one of them fails with ``NameError: _config``. The file holds what ART
    would write itself; it is written atomically and never overwritten.
    """
    home = Path.home()
    folder = (home if os.access(home, os.W_OK) else Path("/tmp")) / ".art"
    path = folder / "config.json"
    if path.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"config.json.{os.getpid()}"
    tmp.write_text(json.dumps({"ART_DATA_PATH": str(folder / "data")}, indent=4))
    os.replace(tmp, path)


def mnist_folder() -> Path | None:
    """The MNIST IDX folder, if the full data set is on this machine."""
    candidates = []
    if os.environ.get("BRITTLE_DATA"):
        candidates.append(Path(os.environ["BRITTLE_DATA"]) / "mnist")
    candidates.append(REPO.parent / "shared" / "data" / "mnist")
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("train-images-idx3-ubyte*")):
            return folder
    return None


@dataclass(frozen=True)
class MnistData:
    """Train and test tensors (float32 NCHW in [0, 1], int64 labels) and where they came from."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    source: str


@dataclass(frozen=True)
class TrainedModel:
    """A trained network, its brittle Classifier, and its accuracy on the test images."""

    module: nn.Module
    classifier: object  # brittle.Classifier
    test_accuracy: float
    source: str


@pytest.fixture(scope="session")
def mnist_data() -> MnistData:
    """10,000 MNIST training images and the test set (mnist5k when MNIST is absent)."""
    from brittle.data import load_dataset

    folder = mnist_folder()
    if folder is not None:
        train = load_dataset("mnist", "train", data_dir=folder)
        test = load_dataset("mnist", "test", data_dir=folder)
        source = "mnist"
    else:
        train, test = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")
        source = "mnist5k"
    n = SMALL_LENET["train_images"]
    return MnistData(train.x[:n], train.y[:n], test.x, test.y, source)


def _sources_digest() -> str:
    """Hash of the code that builds and trains the model: a change retrains."""
    h = hashlib.sha256()
    models = REPO / "src" / "brittle" / "models"
    for path in sorted(models.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _cache_dir(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("brittle-models"))
    # without the cache plugin: the temp root, shared by the xdist workers of one run
    return tmp_path_factory.getbasetemp().parent


@pytest.fixture(scope="session")
def small_lenet(
    mnist_data: MnistData, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> TrainedModel:
    """The small LeNet trained for one epoch, loaded from the cache or trained once."""
    from filelock import FileLock

    from brittle.classifier import Classifier
    from brittle.zoo import build_model, load_checkpoint, save_checkpoint, train_model
    from brittle.zoo.train import accuracy

    key = json.dumps(
        {
            **SMALL_LENET,
            "data": mnist_data.source,
            "n": len(mnist_data.x_train),
            "torch": torch.__version__.split("+")[0],
            "code": _sources_digest(),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = _cache_dir(pytestconfig, tmp_path_factory)
    path = folder / f"small_lenet_{digest}.pt"
    with FileLock(str(path) + ".lock"):
        model = None
        if path.is_file():
            try:
                model, _ = load_checkpoint(path)
            except Exception:  # a stale or broken cache entry: train again
                model = None
        if model is None:
            model = build_model(
                SMALL_LENET["arch"],
                (1, 28, 28),
                10,
                seed=SMALL_LENET["seed"],
                **SMALL_LENET["arch_kwargs"],
            )
            train_model(
                model,
                mnist_data.x_train,
                mnist_data.y_train,
                epochs=SMALL_LENET["epochs"],
                batch_size=SMALL_LENET["batch_size"],
                lr=SMALL_LENET["lr"],
                seed=SMALL_LENET["seed"],
                progress=False,
            )
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            save_checkpoint(tmp, model, {"dataset": mnist_data.source, "bounds": [0.0, 1.0]})
            os.replace(tmp, path)
    model.eval()
    acc = float(accuracy(model, mnist_data.x_test, mnist_data.y_test))
    clf = Classifier(model, bounds=(0.0, 1.0), num_classes=10, input_shape=(1, 28, 28))
    return TrainedModel(model, clf, acc, mnist_data.source)
