"""A labelled data set read by sample id, one batch at a time: what an evaluation streams.

A :class:`Source` never has to hold its whole set as float32: :meth:`Source.fetch` decodes
only the samples asked for. Sample ids are the indices ``0 .. len - 1`` of the split. Its
:meth:`Source.identity` names where the data came from and hashes its content (never its
display name alone), so that two different data sets are never taken for one another.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from brittle.data.dataset import Dataset
from brittle.errors import DataError


class Source(ABC):
    """A labelled data set: ``len(source)`` samples of ``input_shape``, classes ``classes``.

    ``named_classes`` says whether ``classes`` are real names (folder names, a CIFAR
    ``batches.meta.txt``, a user's list) rather than ``"0" .. "K-1"`` made up for unnamed
    labels: only real names are compared with a model's recorded classes. ``kind`` is the
    format (``"npz"``, ``"folder"``, ...), ``location`` the path or ``module:factory`` it was
    read from (``None`` for data given in memory), ``split`` the split it holds.
    """

    kind: str = "tensors"

    def __init__(
        self,
        *,
        name: str,
        classes: Sequence[str],
        input_shape: Sequence[int],
        split: str | None = None,
        location: str | None = None,
        named_classes: bool = True,
    ) -> None:
        self.name = name
        self.classes = [str(c) for c in classes]
        self.input_shape = tuple(int(d) for d in input_shape)
        self.split = split
        self.location = location
        self.named_classes = named_classes

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def fetch(self, ids: Sequence[int]) -> tuple[Tensor, Tensor]:
        """The samples ``ids`` (in that order): float32 inputs ``(k, *input_shape)`` in
        ``[0, 1]`` and int64 labels ``(k,)``, on the CPU."""

    @abstractmethod
    def _digest(self) -> str:
        """The SHA-256 of the content (file bytes, or the samples themselves)."""

    @cached_property
    def sha256(self) -> str:
        """The content's SHA-256 (computed once)."""
        return self._digest()

    def identity(self) -> dict[str, Any]:
        """What the data are: format, where from, split, size, class names and content
        hash. Two sources with the same identity hold the same samples under the same ids."""
        return {
            "kind": self.kind,
            "name": self.name,
            "location": self.location,
            "split": self.split,
            "size": len(self),
            "classes": list(self.classes),
            "sha256": self.sha256,
        }

    def check_ids(self, ids: Sequence[int]) -> None:
        """Refuse ids outside ``0 .. len - 1``."""
        n = len(self)
        bad = [i for i in ids if not 0 <= int(i) < n]
        if bad:
            raise DataError(
                f"sample ids {bad[:5]} are outside the {n} samples of {self.name}; ids are "
                f"indices 0 .. {n - 1}"
            )


class TensorSource(Source):
    """Inputs and labels already in memory (a :class:`~brittle.data.Dataset`, or tensors)."""

    kind = "tensors"

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        name: str = "tensors",
        classes: Sequence[str] | None = None,
        split: str | None = None,
        location: str | None = None,
        kind: str | None = None,
    ) -> None:
        if x.ndim < 2 or y.shape != (x.shape[0],):
            raise DataError(
                f"x must be (N, ...) with one label per input in y (N,), got x "
                f"{tuple(x.shape)} and y {tuple(y.shape)}"
            )
        named = classes is not None
        if classes is None:
            top = int(y.max()) + 1 if len(y) else 0
            classes = [str(k) for k in range(top)]
        super().__init__(
            name=name,
            classes=classes,
            input_shape=tuple(x.shape[1:]),
            split=split,
            location=location,
            named_classes=named,
        )
        if kind is not None:
            self.kind = kind
        self.x = x.detach().cpu()
        self.y = y.detach().cpu().long()

    @classmethod
    def from_dataset(cls, data: Dataset, split: str | None = None, **kw: Any) -> TensorSource:
        """A loaded :class:`~brittle.data.Dataset` (its ``ids`` must be ``0 .. N - 1``)."""
        if not torch.equal(data.ids, torch.arange(len(data))):
            raise DataError("a source is a whole split: its ids must be 0 .. N - 1")
        return cls(data.x, data.y, name=data.name, classes=data.classes, split=split, **kw)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def fetch(self, ids: Sequence[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(list(ids), dtype=torch.long)
        x = self.x[index]
        return (x if x.is_floating_point() else x.float()), self.y[index]

    def _digest(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.x.contiguous().numpy().tobytes())
        digest.update(self.y.contiguous().numpy().tobytes())
        return digest.hexdigest()
