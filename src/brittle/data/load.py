"""``load_dataset``: a data set's name to a whole :class:`Dataset` of images in memory.

It reads through :func:`~brittle.data.formats.open_source` (every format, every check), then
fetches every sample; an evaluation streams the :class:`~brittle.data.source.Source` instead.
"""

from __future__ import annotations

from pathlib import Path

from brittle.data.dataset import Dataset
from brittle.data.formats import AUTO, DATA_FORMATS, open_source, parse_dataset_name
from brittle.data.limits import Limits
from brittle.errors import DataError

DATASET_NAMES = (AUTO, *DATA_FORMATS)
"""The names a data set may be given by (``python`` takes an argument: ``python:mod:factory``)."""


def resolve_dataset_name(name: str, data_dir: str | Path | None = None) -> str:
    """The data set that ``name`` stands for, checked and in lower case (a ``python:``
    argument is kept as written).

    ``"auto"`` is ``"mnist"`` when its IDX folder exists (``data_dir``, ``data_dir/mnist`` or
    ``$BRITTLE_DATA/mnist``), else ``"mnist5k"``.
    """
    key, argument = parse_dataset_name(name, data_dir)
    return key if argument is None else f"{key}:{argument}"


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    limits: Limits | None = None,
) -> Dataset:
    """Load the ``split`` ("train" or "test") of data set ``name`` (see :data:`DATASET_NAMES`)
    whole, as float32 images in memory.

    ``data_dir`` is the folder of the IDX files for "mnist" and "fashion-mnist" (default
    ``$BRITTLE_DATA/<name>``), the file for "npz", the root folder for "folder", and so on
    (:func:`~brittle.data.formats.open_source`); "mnist5k" and "digits" ship with the
    dependencies and ignore it.
    """
    source = open_source(name, split, data_dir, limits=limits)
    shape = source.input_shape
    if len(shape) != 3:
        raise DataError(
            f"{source.name}'s inputs have shape {shape}, not images (C, H, W): load_dataset "
            "gives images; read other inputs with brittle.data.open_source"
        )
    x, y = source.fetch(range(len(source)))
    return Dataset(
        x=x,
        y=y,
        classes=source.classes,
        input_shape=(shape[0], shape[1], shape[2]),
        name=source.name,
        origin={
            "dataset": resolve_dataset_name(name, data_dir),
            "data_dir": None if data_dir is None else str(data_dir),
        },
    )
