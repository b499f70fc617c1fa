"""Who is attacked: the model, where it came from, and the samples drawn from the data.

:func:`open_victim` opens a model and a data set as users keep them (a file, a
``file.py:factory`` with weights, an ``nn.Module``, a :class:`~brittle.Classifier` or
:class:`~brittle.Oracle`; a data format, a :class:`~brittle.data.source.Source`, tensors,
a ``torch.utils.data.Dataset`` or a DataLoader), checks that they belong together (the
input shape, the class names the model records against the data's), and draws the sample
ids. Nothing is decoded: the samples are fetched when they are attacked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from brittle.classifier import Classifier
from brittle.data import Dataset, Limits, TorchDatasetSource, open_source
from brittle.data.source import Source, TensorSource
from brittle.devices import check_device, default_device
from brittle.errors import InputError
from brittle.eval.spec import DEFAULT_N, DataRef, ModelRef
from brittle.model import Model
from brittle.validation import check_positive_integer, check_seed


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device named ``device`` (default: ``cuda`` when a GPU is available, else
    ``cpu``), checked (:func:`~brittle.devices.check_device`)."""
    return default_device() if device is None else check_device(device)


@dataclass(frozen=True)
class Victim:
    """The model (``model``, its ``meta``: format, path, sha256, classes and what its file
    records), the data (``source``, the ``split``) and the drawn sample ``ids``."""

    model: Model
    meta: dict[str, Any]
    source: Source
    ids: list[int]
    seed: int

    @property
    def classifier(self) -> Model:
        """The model (the name the attacks' API uses)."""
        return self.model

    @property
    def split(self) -> str | None:
        return self.source.split

    @property
    def features(self) -> int:
        """The number of features of one input."""
        return int(np.prod(self.source.input_shape))

    @cached_property
    def data(self) -> Dataset:
        """The drawn samples, fetched into memory (for the tasks that hold them whole)."""
        x, y = self.source.fetch(self.ids)
        return Dataset(
            x=x,
            y=y,
            classes=list(self.source.classes),
            input_shape=tuple(int(d) for d in x.shape[1:]),  # type: ignore[arg-type]
            name=self.source.name,
            ids=torch.as_tensor(self.ids, dtype=torch.long),
        )

    def first(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first ``k`` drawn samples: inputs, labels and ids."""
        chosen = self.ids[:k]
        x, y = self.source.fetch(chosen)
        return x, y, torch.as_tensor(chosen, dtype=torch.long)

    def model_info(self) -> dict[str, Any]:
        """Where the model came from and how good it was recorded to be, for a summary."""
        keys = ("format", "path", "sha256", "arch", "dataset", "accuracy", "weights", "eot")
        return {k: self.meta.get(k) for k in keys if k in self.meta}

    def dataset_info(self) -> dict[str, Any]:
        """The evaluated samples: the data's identity, how many were drawn and the seed."""
        return {**self.source.identity(), "n": len(self.ids), "seed": self.seed}


def draw_ids(
    size: int, n: int | None, seed: int, what: str, default: int | None = DEFAULT_N
) -> list[int]:
    """``n`` sample ids of ``0 .. size - 1`` drawn without replacement with ``seed``.

    ``n=None`` draws ``default`` (all when the split holds fewer). Asking for more samples
    than there are is refused, with how many there are: silently using fewer would report
    numbers on another sample size than the one asked for.
    """
    if n is not None and check_positive_integer(n, "--n") > size:
        raise InputError(
            f"--n {n} is more than the {size} samples of {what}; give --n {size} or less"
        )
    count = min(default, size) if n is None and default is not None else (size if n is None else n)
    return [int(i) for i in np.random.default_rng(seed).permutation(size)[:count]]


def as_source(
    data: Any,
    *,
    split: str = "test",
    data_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
    limits: Limits | None = None,
) -> Source:
    """Data as users hold them, as a :class:`~brittle.data.source.Source`: a source; a
    format or data set name (with ``data_dir``); a :class:`~brittle.data.Dataset`; a pair
    ``(x, y)`` of tensors or arrays; a map-style ``torch.utils.data.Dataset`` or a
    DataLoader over one (its items ``(input, label)``)."""
    if isinstance(data, Source):
        return data
    if isinstance(data, str):
        return open_source(data, split, data_dir, limits=limits)
    if isinstance(data, Dataset):
        return TensorSource(
            data.x, data.y, name=data.name, classes=classes or data.classes, split=split
        )
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = (
            torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v for v in data
        )
        return TensorSource(x, y, classes=classes, split=split)
    if isinstance(data, DataLoader | TorchDataset):
        return TorchDatasetSource(data, classes=classes)
    raise InputError(
        f"cannot read data of type {type(data).__name__}: give a pair (x, y), a "
        "torch.utils.data.Dataset or DataLoader, a brittle Source, or a data set name"
    )


def live_model(
    model: nn.Module | Model,
    *,
    preprocess: tuple[Sequence[float], Sequence[float]] | None = None,
    classes: Sequence[str] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    input_shape: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    amp: str | None = None,
) -> tuple[Model, dict[str, Any]]:
    """A model given as a Python object: an ``nn.Module`` (wrapped in a
    :class:`~brittle.Classifier` with ``bounds``, ``preprocess`` and ``amp``), a Classifier or
    an Oracle; and its metadata, named by its class and (for a module) the SHA-256 of its
    parameters and buffers, so that a store is never resumed with other weights."""
    if isinstance(model, Model):
        if preprocess is not None or amp is not None:
            raise InputError(
                "preprocess and amp are for a plain nn.Module; a Classifier states its own "
                "(Classifier(module, preprocessing=..., amp=...))"
            )
        wrapped = model
    elif isinstance(model, nn.Module):
        pre = None if preprocess is None else (list(preprocess[0]), list(preprocess[1]))
        wrapped = Classifier(
            model,
            bounds=bounds,
            preprocessing=pre,
            input_shape=input_shape,
            device=resolve_device(device) if device is not None else None,
            amp=amp,  # type: ignore[arg-type]
        )
    else:
        raise InputError(
            f"model must be a torch.nn.Module, a brittle Classifier or Oracle, or a path; got "
            f"{type(model).__name__}"
        )
    module = getattr(wrapped, "module", None)
    digest = hashlib.sha256(type(module if module is not None else wrapped).__qualname__.encode())
    if isinstance(module, nn.Module):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    else:
        predict = getattr(wrapped, "predict", None)
        digest.update(getattr(predict, "__qualname__", repr(predict)).encode())
    meta: dict[str, Any] = {
        "format": "python",
        "path": None,
        "name": type(module if module is not None else wrapped).__name__,
        "sha256": digest.hexdigest(),
        "classes": None if classes is None else [str(c) for c in classes],
    }
    return wrapped, meta


def open_model(
    ref: ModelRef, input_shape: Sequence[int] | None, device: str | torch.device | None
) -> tuple[Model, dict[str, Any]]:
    """The model ``ref`` names, loaded by its format
    (:func:`~brittle.loading.loaders.load_model`), and its metadata."""
    from brittle.loading.loaders import load_model

    loaded = load_model(
        ref.spec,
        weights=ref.weights,
        preprocess=ref.preprocess,
        classes=ref.classes,
        input_shape=input_shape,
        device=resolve_device(device),
    )
    if ref.amp is not None:
        if not isinstance(loaded.model, Classifier):
            raise InputError(
                f"--amp sets the precision of a white-box model's forward passes, but "
                f"{ref.spec} is a query-only oracle, which runs at its own precision; "
                "leave --amp out"
            )
        loaded.model.amp = ref.amp  # type: ignore[assignment]
    return loaded.model, dict(loaded.meta)


def open_victim(
    model: ModelRef | tuple[Model, Mapping[str, Any]],
    data: DataRef | Source,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> Victim:
    """The model and the drawn samples of an evaluation, checked to belong together.

    ``data`` without a data set (``DataRef.dataset`` None) is the one the model's file
    records. The model's recorded class names, when it has any, must be the data's
    (same names in the same order) wherever the data name their classes.
    """
    check_seed(seed)
    ref = data if isinstance(data, DataRef) else None
    if isinstance(model, ModelRef):
        if isinstance(data, Source) or (ref is not None and ref.dataset is not None):
            source = data if isinstance(data, Source) else _open_data(ref, {})  # type: ignore[arg-type]
            loaded, meta = open_model(model, source.input_shape, device)
        else:
            loaded, meta = open_model(model, None, device)
            source = _open_data(ref, meta)  # type: ignore[arg-type]
    else:
        loaded, meta = model[0], dict(model[1])
        source = data if isinstance(data, Source) else _open_data(data, meta)
    check_belong(loaded, meta, source)
    n = ref.n if ref is not None else None
    default = DEFAULT_N if ref is not None else None
    what = f"the {source.split} split of {source.name}" if source.split else source.name
    ids = draw_ids(len(source), n, seed, what, default)
    return Victim(model=loaded, meta=meta, source=source, ids=ids, seed=seed)


def _open_data(ref: DataRef, meta: Mapping[str, Any]) -> Source:
    """The data ``ref`` names; without a name, those the model's file records."""
    name, data_dir = ref.dataset, ref.data_dir
    if name is None:
        data = meta.get("data")
        recorded: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        name = recorded.get("dataset") or meta.get("dataset")
        data_dir = data_dir or recorded.get("data_dir")
    if not name:
        raise InputError(
            f"{meta.get('path') or 'the model'} does not record its data set; give one with "
            "--dataset (and --data-dir)"
        )
    return open_source(str(name), ref.split, data_dir, limits=ref.limits)


def check_belong(model: Model, meta: Mapping[str, Any], source: Source) -> None:
    """Refuse a model and data that do not belong together: another input shape, labels
    beyond the model's classes, or class names that differ from those the model records
    (another set, or the same in another order: the labels would be read wrongly)."""
    expected = getattr(model, "input_shape", None)
    if expected is not None and tuple(expected) != tuple(source.input_shape):
        raise InputError(
            f"the model takes inputs of shape {tuple(expected)} but {source.name} holds "
            f"{tuple(source.input_shape)}; evaluate it on data of its own shape"
        )
    recorded = meta.get("classes")
    classes_k = getattr(model, "num_classes", None)
    if classes_k is not None and len(source.classes) > classes_k:
        raise InputError(
            f"{source.name} has {len(source.classes)} classes but the model outputs "
            f"{classes_k}; evaluate it on data of its own classes"
        )
    if recorded and source.named_classes and list(recorded) != list(source.classes):
        same_set = sorted(recorded) == sorted(source.classes)
        why = "the same names in another order" if same_set else "other names"
        raise InputError(
            f"the data's classes are not the model's ({why}): the model records "
            f"{list(recorded)}, {source.name} has {list(source.classes)}; rename or reorder "
            "the data's classes to the model's (for an image folder, the class folders)"
        )
