"""``load_dataset``: one entry point from a data set's name to a :class:`Dataset`."""

from __future__ import annotations

from pathlib import Path

from brittle.data.bundled import load_digits, load_mnist5k
from brittle.data.dataset import SPLITS, Dataset
from brittle.data.folder import load_folder
from brittle.data.mnist import IDX_CLASSES, find_idx_folder, load_idx_dataset
from brittle.data.npz import load_npz
from brittle.errors import DataError

DATASET_NAMES = ("auto", "mnist", "fashion-mnist", "mnist5k", "digits", "npz", "folder")


def resolve_dataset_name(name: str, data_dir: str | Path | None = None) -> str:
    """The data set that ``name`` stands for, checked and in lower case.

    ``"auto"`` is ``"mnist"`` when its IDX folder exists (``data_dir``, ``data_dir/mnist`` or
    ``$BRITTLE_DATA/mnist``), else ``"mnist5k"``.
    """
    key = name.strip().lower()
    if key not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(DATASET_NAMES)}")
    if key != "auto":
        return key
    return "mnist" if find_idx_folder("mnist", data_dir) is not None else "mnist5k"


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None) -> Dataset:
    """Load the ``split`` ("train" or "test") of data set ``name`` (one of :data:`DATASET_NAMES`).

    ``data_dir`` is the folder of the IDX files for "mnist" and "fashion-mnist" (default
    ``$BRITTLE_DATA/<name>``), the file for "npz", the root folder for "folder"; "mnist5k"
    and "digits" ship with the dependencies and ignore it.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    key = resolve_dataset_name(name, data_dir)
    if key in IDX_CLASSES:
        return load_idx_dataset(key, split, data_dir)
    if key == "mnist5k":
        return load_mnist5k(split)
    if key == "digits":
        return load_digits(split)
    if data_dir is None:
        what = "the .npz file" if key == "npz" else "the root folder of the images"
        raise DataError(f"dataset {key!r} needs data_dir (--data-dir): the path of {what}")
    return load_npz(Path(data_dir), split) if key == "npz" else load_folder(Path(data_dir), split)
