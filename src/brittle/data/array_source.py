"""A :class:`~brittle.data.source.Source` over numpy arrays held in memory or memory-mapped.

The images stay as they are stored (bytes, usually) and become float32 in ``[0, 1]`` one
fetched batch at a time; a memory-mapped array is read only where the batch's ids point.
Everything that can be checked is checked when the source is opened, before any work: the
layout, every value's range (a chunk at a time), every label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from brittle.data.arrays import check_labels, image_batch, pixel_divisor, to_unit_float
from brittle.data.fingerprint import files_sha256
from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.data.source import Source
from brittle.errors import DataError


def check_label_names(labels: np.ndarray, classes: Sequence[str], source: str, name: str) -> None:
    """Refuse a label with no class name: ``source`` (the labels' file) is named."""
    if len(labels) and int(labels.max()) >= len(classes):
        where = int(np.argmax(labels))
        raise DataError(
            f"{source} holds label {int(labels[where])} (at index {where}) but {name} has "
            f"{len(classes)} classes (labels 0..{len(classes) - 1}); the file is corrupt or "
            "belongs to another data set"
        )


class ArraySource(Source):
    """Images ``(N, C, H, W)`` (any numeric dtype, possibly a memory-mapped view) and int64
    labels; fetched images are divided by ``divisor`` (255 for bytes, 1 for floats in
    ``[0, 1]``). The content hash is that of ``files`` (the bytes they were read from)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        divisor: int,
        files: Sequence[Path],
        kind: str,
        name: str,
        classes: Sequence[str],
        named_classes: bool,
        split: str | None,
        location: str | None,
    ) -> None:
        super().__init__(
            name=name,
            classes=classes,
            input_shape=images.shape[1:],
            split=split,
            location=location,
            named_classes=named_classes,
        )
        self.kind = kind
        self.images = images
        self.labels = labels
        self.divisor = divisor
        self.files = list(files)

    @classmethod
    def checked(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        source: str,
        label_source: str,
        files: Sequence[Path],
        kind: str,
        name: str,
        split: str | None,
        location: str | None,
        classes: Sequence[str] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> ArraySource:
        """Check the arrays and open a source over them.

        ``images`` are ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``; ``source`` and
        ``label_source`` name where images and labels were read from, for errors. With
        ``classes`` (real names) every label must have one; without, the classes are
        ``"0" .. "K-1"`` up to the largest label, and not named.
        """
        images = image_batch(images, source)
        divisor = pixel_divisor(images, source)
        y = check_labels(np.asarray(labels), len(images), label_source, limits)
        if classes is not None:
            check_label_names(y, classes, label_source, name)
        names = list(classes) if classes is not None else [str(k) for k in range(int(y.max()) + 1)]
        return cls(
            images,
            y,
            divisor=divisor,
            files=files,
            kind=kind,
            name=name,
            classes=names,
            named_classes=classes is not None,
            split=split,
            location=location,
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def fetch(self, ids: Sequence[int]) -> tuple[Tensor, Tensor]:
        self.check_ids(ids)
        index = np.asarray(ids, dtype=np.int64).reshape(-1)
        return to_unit_float(self.images[index], self.divisor), torch.from_numpy(self.labels[index])

    def _digest(self) -> str:
        return files_sha256(self.files)
