"""Data sets as PyTorch users have them: a map-style ``torch.utils.data.Dataset``, a
``DataLoader`` over one, or a factory in the user's own Python code (``python:...``).

Items are ``(input, label)`` pairs: the input a tensor or numpy array, uint8 0..255 or floats
in ``[0, 1]``; the label an integer class index. Sample ids are the dataset's indices (a
DataLoader's batch size, order and sampler are not used). A :class:`TorchDatasetSource`
reads every item once when it is opened, to check it and to hash the content; it then
fetches the items a batch asks for. Items must be deterministic (no random augmentation):
the same index must give the same sample every time.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.data.source import Source
from brittle.errors import DataError
from brittle.validation import is_integer

_BYTE_MAX = 255


def map_style(data: Any, what: str) -> Any:
    """The map-style dataset ``data`` is, or a DataLoader reads; anything else refused."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, IterableDataset):
        raise DataError(
            f"{what} is an IterableDataset, which cannot be read by sample id; give a "
            "map-style Dataset (with __len__ and __getitem__), e.g. a TensorDataset of its items"
        )
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise DataError(
            f"{what} is a {type(data).__name__}, not a map-style torch Dataset (with __len__ "
            "and __getitem__) or a DataLoader over one"
        )
    return data


def _as_input(value: Any, where: str) -> Tensor:
    """An item's input as float32 in ``[0, 1]`` on the CPU: uint8 / 255, floats checked."""
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_:
            raise DataError(f"{where} is a numpy array of {value.dtype}; inputs must be numbers")
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor):
        raise DataError(
            f"{where} is a {type(value).__name__}; inputs must be tensors or numpy arrays "
            "(convert a PIL image with torch.from_numpy(np.asarray(image)))"
        )
    value = value.detach().cpu()
    if value.dtype == torch.uint8:
        return value.float().div_(_BYTE_MAX)
    if not value.is_floating_point():
        raise DataError(
            f"{where} has dtype {value.dtype}; inputs must be floats in [0, 1] or uint8 0..255"
        )
    value = value.float()
    finite = bool(torch.isfinite(value).all())
    if not finite or (value.numel() and (float(value.min()) < 0 or float(value.max()) > 1)):
        raise DataError(
            f"{where} holds values outside [0, 1] (or NaN); inputs must be in [0, 1]: undo "
            "any mean/std normalisation in the dataset (give it to the model instead)"
        )
    return value


def _as_label(value: Any, where: str, limits: Limits) -> int:
    """An item's label as a Python int in ``0 .. limits.max_classes - 1`` (given as a 0-d or
    1-element integer tensor or array, or an int)."""
    if isinstance(value, Tensor):
        value = value.detach().cpu()
    if isinstance(value, Tensor | np.ndarray | np.generic):
        array = np.asarray(value)
        if array.size != 1 or not np.issubdtype(array.dtype, np.integer):
            raise DataError(
                f"{where} is a {array.dtype} array of shape {array.shape}; labels must be "
                "integer class indices 0..K-1 (one per item)"
            )
        value = int(array.reshape(()))
    if not is_integer(value):
        raise DataError(
            f"{where} is {value!r}; labels must be integer class indices 0..K-1 (one per item)"
        )
    if value < 0:
        raise DataError(f"{where} is {value}; labels are class indices 0..K-1")
    limits.check("max_classes", value + 1, f"{where} is {value}, so at least {value + 1:,} classes")
    return value


class TorchDatasetSource(Source):
    """A map-style ``torch.utils.data.Dataset`` (or a DataLoader's dataset) as a source.

    ``classes`` (real names) default to the dataset's ``classes`` attribute when it has one;
    without either, the classes are ``"0" .. "K-1"`` up to the largest label, not named.
    Every item is read once here: its shape must be the first item's, its values in range,
    its label within ``limits.max_classes``; the content hash covers every input and label.
    """

    kind = "dataset"

    def __init__(
        self,
        dataset: Any,
        classes: Sequence[str] | None = None,
        *,
        name: str = "dataset",
        split: str | None = None,
        location: str | None = None,
        kind: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.dataset = map_style(dataset, name)
        try:
            count = len(self.dataset)
        except TypeError as err:
            raise DataError(f"{name} has no length ({err}); give a map-style Dataset") from err
        if count == 0:
            raise DataError(f"{name} holds no samples")
        if classes is None and hasattr(self.dataset, "classes"):
            classes = [str(c) for c in self.dataset.classes]
        self.limits = limits
        digest = hashlib.sha256()
        labels = np.empty(count, dtype=np.int64)
        first, labels[0] = self._item(0, name)
        shape = tuple(first.shape)
        for i in range(count):
            x, labels[i] = (first, labels[0]) if i == 0 else self._item(i, name)
            if tuple(x.shape) != shape:
                raise DataError(
                    f"{name}[{i}]'s input has shape {tuple(x.shape)} but {name}[0]'s has "
                    f"{shape}; every input must have the same shape"
                )
            digest.update(x.numpy().tobytes())
            digest.update(int(labels[i]).to_bytes(8, "little"))
        top = int(labels.max())
        if classes is not None and top >= len(classes):
            raise DataError(
                f"{name} holds label {top} (at index {int(np.argmax(labels))}) but names "
                f"{len(classes)} classes; give one class name per label"
            )
        super().__init__(
            name=name,
            classes=classes if classes is not None else [str(k) for k in range(top + 1)],
            input_shape=shape,
            split=split,
            location=location,
            named_classes=classes is not None,
        )
        if kind is not None:
            self.kind = kind
        self.labels = labels
        self._sha256 = digest.hexdigest()

    def _item(self, i: int, name: str) -> tuple[Tensor, int]:
        where = f"{name}[{i}]"
        try:
            item = self.dataset[i]
        except Exception as err:  # the user's own __getitem__
            raise DataError(f"{where} raised {type(err).__name__}: {err}") from err
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DataError(
                f"{where} is a {type(item).__name__}; items must be (input, label) pairs"
            )
        label = _as_label(item[1], f"{where}'s label", self.limits)
        return _as_input(item[0], f"{where}'s input"), label

    def __len__(self) -> int:
        return len(self.labels)

    def fetch(self, ids: Sequence[int]) -> tuple[Tensor, Tensor]:
        self.check_ids(ids)
        index = [int(i) for i in ids]
        x = torch.empty((len(index), *self.input_shape), dtype=torch.float32)
        for row, i in enumerate(index):
            value, label = self._item(i, self.name)
            if tuple(value.shape) != self.input_shape or label != self.labels[i]:
                raise DataError(
                    f"{self.name}[{i}] differs from when the data set was opened; its items "
                    "must be the same every time (no random transforms)"
                )
            x[row] = value
        return x, torch.from_numpy(self.labels[index])

    def _digest(self) -> str:
        return self._sha256


def _import_target(target: str) -> Any:
    """The module ``target`` names: a ``.py`` file's path, or a module importable by name."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise DataError(f"python file {path} not found; give python:path/to/file.py:factory")
        module_name = (
            "brittle_user_data_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        )
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise DataError(f"{path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # the user's own code
            del sys.modules[module_name]
            raise DataError(f"importing {path} raised {type(err).__name__}: {err}") from err
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        raise DataError(
            f"no Python module {target!r} ({err}); put it on PYTHONPATH, or give its file: "
            "python:path/to/file.py:factory"
        ) from err
    except Exception as err:  # the user's own code
        raise DataError(f"importing {target} raised {type(err).__name__}: {err}") from err


def load_factory(spec: str) -> Callable[..., Any]:
    """The callable that ``module:factory`` or ``path/file.py:factory`` names.

    This imports the module, so it runs the user's own code.
    """
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise DataError(
            f"python:{spec} does not name a factory; write python:module:factory or "
            "python:path/to/file.py:factory"
        )
    module = _import_target(target)
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise DataError(
            f"{target} has no callable {attribute!r}; it must define a function or class "
            "returning a map-style torch Dataset"
        )
    return factory


def open_python(
    spec: str, split: str, data_dir: Path | None, limits: Limits = DEFAULT_LIMITS
) -> TorchDatasetSource:
    """The Dataset returned by the factory ``spec`` names (``module:factory`` or
    ``path/file.py:factory``), as a source.

    This runs the user's own code: importing the module and calling the factory. The
    factory is given ``split`` and ``data_dir`` as keyword arguments when its signature
    names them (or takes ``**kwargs``); it returns a map-style Dataset, or a DataLoader over
    one, whose items are ``(input, label)``; class names come from its ``classes``
    attribute when it has one.
    """
    factory = load_factory(spec)
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    given = {"split": split, "data_dir": data_dir}
    kwargs = {key: value for key, value in given.items() if open_ended or key in parameters}
    try:
        dataset = factory(**kwargs)
    except Exception as err:  # the user's own code
        raise DataError(f"python:{spec} raised {type(err).__name__}: {err}") from err
    return TorchDatasetSource(
        dataset,
        name=spec.rpartition(":")[2],
        split=split,
        location=spec,
        kind="python",
        limits=limits,
    )
