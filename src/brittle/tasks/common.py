"""What the tasks share: the device, the samples they draw, and the model they attack.

Messages name the command-line options (``--n``, ``--dataset``, ...) because the tasks are
what the ``brittle`` command runs; the keyword arguments of the task functions carry the
same names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from brittle.classifier import Classifier
from brittle.data import Dataset, load_dataset
from brittle.errors import InputError
from brittle.eval.store import file_sha256
from brittle.models import load_checkpoint, load_classifier

DEFAULT_N = 1000
"""How many samples ``attack`` and ``evaluate`` draw when not told (all when fewer)."""

Log = Callable[[str], None]
"""Where a task says what it is doing while it runs (the command line prints it)."""


def quiet(message: str) -> None:
    """A log that drops its messages."""


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> torch.device:
    """The torch device named ``device`` (default :func:`default_device`), checked."""
    name = device or default_device()
    try:
        resolved = torch.device(name)
    except RuntimeError as err:
        raise InputError(f"unknown device {name!r}: use cpu, cuda or cuda:N ({err})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} was asked for but no CUDA GPU is available; use cpu")
    return resolved


def check_count(n: int | None, option: str) -> None:
    """Refuse a sample count below 1 (``None`` means all samples), naming its ``option``."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InputError(f"{option} must be at least 1, got {n!r}")


def draw(
    data: Dataset, n: int | None, seed: int, split: str, option: str, default: int | None = None
) -> Dataset:
    """``n`` samples of ``data`` drawn with ``seed``.

    ``n=None`` draws ``default`` samples, or all when the split holds fewer (all, shuffled,
    when ``default`` is None too). Asking for more samples than the split holds is refused,
    with how many there are: silently using fewer would report numbers on another sample
    size than the one asked for.
    """
    check_count(n, option)
    if n is None:
        return data.subset(None if default is None else min(default, len(data)), seed)
    if n > len(data):
        raise InputError(
            f"{option} {n} is more than the {len(data)} samples of the {split} split of "
            f"{data.name}; give {option} {len(data)} or less"
        )
    return data.subset(n, seed)


@dataclass(frozen=True)
class Target:
    """Who is attacked: the classifier, its checkpoint metadata and the evaluated samples.

    ``meta`` is the checkpoint's metadata with the file's ``path`` and ``sha256``.
    """

    classifier: Classifier
    meta: dict[str, Any]
    data: Dataset
    split: str
    seed: int

    @property
    def features(self) -> int:
        """The number of features of one input."""
        return int(self.data.x[0].numel())

    def model_info(self) -> dict[str, Any]:
        """Where the model came from and how good it is, for a summary."""
        return {k: self.meta.get(k) for k in ("path", "sha256", "arch", "dataset", "accuracy")}

    def dataset_info(self, data_dir: str | Path | None) -> dict[str, Any]:
        """The evaluated samples: data set, split, size, seed, folder and content hash."""
        data = self.data
        digest = hashlib.sha256(data.x.numpy().tobytes() + data.y.numpy().tobytes())
        return {
            "name": data.name,
            "split": self.split,
            "n": len(data),
            "seed": self.seed,
            "data_dir": None if data_dir is None else str(data_dir),
            "sha256": digest.hexdigest(),
        }


def load_target(
    model: str | Path,
    dataset: str | None,
    data_dir: str | Path | None,
    split: str,
    n: int | None,
    seed: int,
    device: str | None,
) -> Target:
    """The checkpoint at ``model`` and ``n`` samples (drawn with ``seed``) of ``split``.

    ``dataset=None`` uses the data set the model was trained on; ``n=None`` draws
    :data:`DEFAULT_N` samples, or the whole split when it holds fewer. ``n`` is checked
    before anything is loaded.
    """
    check_count(n, "--n")
    torch_device = resolve_device(device)
    _, meta = load_checkpoint(model)
    classifier = load_classifier(model, torch_device)
    name = dataset or meta.get("dataset")
    if not name:
        raise InputError(f"{model} does not record its data set; give one with --dataset")
    data = draw(load_dataset(name, split, data_dir), n, seed, split, "--n", DEFAULT_N)
    info = {**meta, "path": str(model), "sha256": file_sha256(model)}
    return Target(classifier=classifier, meta=info, data=data, split=split, seed=seed)
