"""CIFAR-10's binary version: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (train) and
``test_batch.bin`` (test), each a run of 3,073-byte records: one label byte, then the 32x32
image's 1,024 red, 1,024 green and 1,024 blue bytes, rows first.

The batches are memory-mapped: a fetched batch reads only its own records. Class names come
from ``batches.meta.txt`` (one per line) when the folder holds it; without it the classes
are ``"0" .. "9"``, not named. The pickled "python version" of CIFAR-10 is never read (it
would have to be unpickled): download the binary version.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from brittle.data.array_source import check_label_names
from brittle.data.fingerprint import files_sha256
from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.data.mnist import ENV_VAR, candidate_folders
from brittle.data.source import Source
from brittle.errors import DataError

BATCHES = {
    "train": tuple(f"data_batch_{k}.bin" for k in range(1, 6)),
    "test": ("test_batch.bin",),
}
META = "batches.meta.txt"
IMAGE_SHAPE = (3, 32, 32)
RECORD = 1 + 3 * 32 * 32
"""Bytes per record: the label, then the pixels."""
CLASSES = 10
RELEASE_FOLDER = "cifar-10-batches-bin"
"""The folder that CIFAR-10's binary tarball unpacks to."""


def find_cifar_folder(data_dir: str | Path | None) -> Path:
    """The first of ``data_dir``, ``data_dir/cifar10`` (or ``$BRITTLE_DATA/cifar10``) and
    their ``cifar-10-batches-bin`` sub-folders that holds a batch file."""
    names = [name for files in BATCHES.values() for name in files]
    looked = []
    for base in candidate_folders("cifar10", data_dir):
        for folder in (base, base / RELEASE_FOLDER):
            looked.append(str(folder))
            if any((folder / name).is_file() for name in names):
                return folder
    where = f"looked in {', '.join(looked)}" if looked else f"{ENV_VAR} is not set"
    raise DataError(
        f"no CIFAR-10 binary batches found ({where}): pass the folder holding "
        f"{', '.join(names)} (CIFAR-10's binary version, {RELEASE_FOLDER}/) as data_dir "
        f"(--data-dir), or set {ENV_VAR} to the folder that holds cifar10/"
    )


def _map_batch(path: Path) -> np.memmap:
    if not path.is_file():
        raise DataError(
            f"CIFAR-10 batch {path} is missing; the folder must hold all of "
            f"{', '.join(BATCHES['train'] + BATCHES['test'])}"
        )
    size = path.stat().st_size
    if size == 0 or size % RECORD:
        raise DataError(
            f"{path} is not a CIFAR-10 binary batch: {size:,} bytes is not a whole number of "
            f"{RECORD:,}-byte records (1 label byte, 3,072 pixel bytes); it is truncated, or "
            "another version (download the binary version, not the python or matlab one)"
        )
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(size // RECORD, RECORD))


def _read_names(path: Path, limits: Limits) -> list[str]:
    size = path.stat().st_size
    limits.check("max_bytes", size, f"{path} is {size:,} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path} cannot be read as class names, one per line ({err})") from err
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path} holds no class names; write one name per line, or remove it")
    limits.check("max_classes", len(names), f"{path} names {len(names):,} classes")
    return names


class Cifar10Source(Source):
    """The ``split`` of CIFAR-10's binary batches in ``data_dir`` (see the module docstring)."""

    kind = "cifar10"

    def __init__(
        self, split: str, data_dir: str | Path | None, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        folder = find_cifar_folder(data_dir)
        self.paths = [folder / name for name in BATCHES[split]]
        self.batches = [_map_batch(path) for path in self.paths]
        meta = folder / META
        self.meta = meta if meta.is_file() else None
        classes = _read_names(meta, limits) if self.meta else [str(k) for k in range(CLASSES)]
        for path, batch in zip(self.paths, self.batches, strict=True):
            check_label_names(batch[:, 0], classes, str(path), "CIFAR-10")
        super().__init__(
            name="cifar10",
            classes=classes,
            input_shape=IMAGE_SHAPE,
            split=split,
            location=str(folder),
            named_classes=self.meta is not None,
        )
        self.starts = np.cumsum([0] + [len(batch) for batch in self.batches])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def fetch(self, ids: Sequence[int]) -> tuple[Tensor, Tensor]:
        self.check_ids(ids)
        index = np.asarray(ids, dtype=np.int64).reshape(-1)
        which = np.searchsorted(self.starts, index, side="right") - 1
        records = np.empty((len(index), RECORD), dtype=np.uint8)
        for k, batch in enumerate(self.batches):
            here = which == k
            records[here] = batch[index[here] - self.starts[k]]
        images = np.divide(records[:, 1:], 255, dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
        return torch.from_numpy(images), torch.from_numpy(records[:, 0].astype(np.int64))

    def _digest(self) -> str:
        return files_sha256(self.paths + ([self.meta] if self.meta else []))
