"""A labelled image data set as tensors: what every attack, model and evaluation consumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from brittle.data.arrays import images_to_tensor, labels_to_tensor
from brittle.errors import DataError

SPLITS = ("train", "test")
"""The splits every data set comes in."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images ``x`` (float32, ``(N, C, H, W)``, in ``[0, 1]``) and labels ``y`` (int64, ``(N,)``).

    ``classes[k]`` names class ``k``; ``input_shape`` is ``(C, H, W)``; ``name`` says where the
    data came from (for reports). ``ids`` holds each sample's index in the split it was loaded
    from (kept through :meth:`subset`): the sample ids that seed attacks' random draws.
    ``origin`` is how to open the data again (``dataset`` and ``data_dir`` as
    :func:`~brittle.data.load_dataset` was given them), recorded by the models trained on it.
    """

    x: Tensor
    y: Tensor
    classes: list[str]
    input_shape: tuple[int, int, int]
    name: str
    ids: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    origin: dict[str, str | None] | None = None

    def __post_init__(self) -> None:
        if not len(self.ids) and len(self.x):
            object.__setattr__(self, "ids", torch.arange(len(self.x)))
        if self.ids.shape != (len(self.x),):
            raise DataError(f"Dataset.ids must hold one id per image, got {tuple(self.ids.shape)}")
        if self.x.dtype != torch.float32 or self.x.ndim != 4:
            raise DataError(
                f"Dataset.x must be float32 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}"
            )
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise DataError(
                f"Dataset.y must be int64 ({self.x.shape[0]},), one label per image; got "
                f"{self.y.dtype} {tuple(self.y.shape)}"
            )
        if tuple(self.input_shape) != tuple(self.x.shape[1:]):
            raise DataError(
                f"Dataset.input_shape {self.input_shape} does not match x's per-sample shape "
                f"{tuple(self.x.shape[1:])}"
            )
        if len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= len(self.classes)):
            raise DataError(
                f"Dataset labels span [{int(self.y.min())}, {int(self.y.max())}] but there are "
                f"{len(self.classes)} class names; give one name per class index"
            )

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        name: str,
        source: str,
        classes: Sequence[str] | None = None,
        *,
        label_source: str | None = None,
    ) -> Dataset:
        """Validate and convert numpy images and labels (see :mod:`brittle.data.arrays`).

        ``source`` names where the arrays came from, for error messages; ``label_source``
        names where the labels came from when that is another array or file (an error about
        the labels then names it, not the images). Without ``classes``, class ``k`` is named
        ``str(k)`` for ``k`` up to the largest label.
        """
        if label_source is None:
            source, label_source = f"{source} (images)", f"{source} (labels)"
        x = images_to_tensor(images, source)
        y = labels_to_tensor(labels, len(x), label_source)
        names = list(classes) if classes is not None else [str(k) for k in range(int(y.max()) + 1)]
        shape = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
        return cls(x=x, y=y, classes=names, input_shape=shape, name=name)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, n: int | None = None, seed: int | None = None) -> Dataset:
        """The first ``n`` samples or, with ``seed``, ``n`` drawn at random without replacement.

        The same seed draws the same samples. ``n=None`` keeps every sample (shuffled when a
        seed is given); ``n`` larger than the data set keeps every sample.
        """
        if n is not None and n < 0:
            raise DataError(f"subset size n must be >= 0 (or None for all), got {n}")
        count = len(self) if n is None else min(n, len(self))
        if seed is None:
            return replace(self, x=self.x[:count], y=self.y[:count], ids=self.ids[:count])
        index = torch.from_numpy(np.random.default_rng(seed).permutation(len(self))[:count])
        return replace(self, x=self.x[index], y=self.y[index], ids=self.ids[index])
