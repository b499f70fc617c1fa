"""A data set saved with ``numpy.savez``: arrays ``x`` and ``y``, or ``x_train`` ... ``y_test``.

Images may be uint8 0..255 or floats in [0, 1], shaped ``(N, H, W)``, ``(N, H, W, C)`` or
``(N, C, H, W)``. Nothing is unpickled. An archive with only ``x`` and ``y`` gives the same
data for both splits; class ``k`` is named ``str(k)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brittle.data.dataset import Dataset
from brittle.errors import DataError

_HOW_TO_SAVE = "save it with numpy.savez(path, x=images, y=labels) or x_train=..., y_train=..."


def _array_names(names: list[str], split: str, path: Path) -> tuple[str, str]:
    for x_name, y_name in ((f"x_{split}", f"y_{split}"), ("x", "y")):
        if x_name in names and y_name in names:
            return x_name, y_name
    raise DataError(
        f"{path} holds arrays {sorted(names)}; expected 'x_{split}' and 'y_{split}', or 'x' "
        f"and 'y': {_HOW_TO_SAVE}"
    )


def load_npz(path: Path, split: str) -> Dataset:
    """Load the images and labels of ``split`` from the .npz file at ``path``."""
    if not path.is_file():
        raise DataError(
            f"npz file {path} not found; pass the path of an existing .npz file as data_dir "
            "(--data-dir)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(
            f"{path} cannot be read as an .npz archive ({err}); {_HOW_TO_SAVE}"
        ) from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array, not named arrays; {_HOW_TO_SAVE}")
    with archive:
        x_name, y_name = _array_names(archive.files, split, path)
        try:
            images, labels = archive[x_name], archive[y_name]
        except ValueError as err:
            raise DataError(
                f"{path} cannot be loaded without unpickling ({err}); store numeric arrays"
            ) from err
    return Dataset.from_arrays(
        images,
        labels,
        name=path.stem,
        source=f"{path}['{x_name}']",
        label_source=f"{path}['{y_name}']",
    )
