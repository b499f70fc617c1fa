"""A data set of image files, one folder per class: ``root/<split>/<class>/*`` or ``root/<class>/*``.

Classes are the sub-folders, sorted by name. PNG, JPEG and BMP files are read with PIL; the
images stay grayscale (1 channel) when every one of them is, else all become RGB. All
images must have the same size. Without ``train``/``test`` sub-folders both splits are the
whole folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from brittle.data.dataset import SPLITS, Dataset
from brittle.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_GRAYSCALE_MODES = ("1", "L", "LA")


def _split_folder(root: Path, split: str) -> Path:
    present = [name for name in SPLITS if (root / name).is_dir()]
    if not present:
        return root
    if split not in present:
        raise DataError(
            f"{root} has a {present[0]}/ folder but no {split}/ folder; add {root / split} or "
            "drop the split folders and put the class folders directly under the root"
        )
    return root / split


def _image_files(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    classes = sorted((path for path in folder.iterdir() if path.is_dir()), key=lambda p: p.name)
    if not classes:
        raise DataError(f"{folder} has no class folders; put images in {folder}/<class>/")
    files: list[Path] = []
    labels: list[int] = []
    for label, class_folder in enumerate(classes):
        found = sorted(
            path
            for path in class_folder.iterdir()
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise DataError(
                f"class folder {class_folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        files += found
        labels += [label] * len(found)
    return files, labels, [path.name for path in classes]


def _check_headers(files: list[Path]) -> str:
    """Check that every file is a readable image of the first one's size; return the mode."""
    size: tuple[int, int] | None = None
    grayscale = True
    for path in files:
        try:
            with Image.open(path) as image:
                mode, this_size = image.mode, image.size
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(f"{path} cannot be read as an image ({err})") from err
        if size is None:
            size = this_size
        elif this_size != size:
            raise DataError(
                f"{path} is {this_size[0]}x{this_size[1]} pixels but {files[0]} is "
                f"{size[0]}x{size[1]}; all images must have the same size (resize them first)"
            )
        grayscale = grayscale and mode in _GRAYSCALE_MODES
    return "L" if grayscale else "RGB"


def _read(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except OSError as err:
        raise DataError(f"{path} cannot be decoded as an image ({err})") from err


def load_folder(root: Path, split: str) -> Dataset:
    """Load the images of ``split`` under ``root`` (see the module docstring for the layout)."""
    if not root.is_dir():
        raise DataError(
            f"image folder {root} not found; pass a folder holding <class>/ or "
            "train/<class>/ and test/<class>/ sub-folders as data_dir (--data-dir)"
        )
    folder = _split_folder(root, split)
    files, labels, classes = _image_files(folder)
    mode = _check_headers(files)
    stacked = np.stack([_read(path, mode) for path in files])
    images = stacked[:, None] if mode == "L" else stacked.transpose(0, 3, 1, 2)
    return Dataset.from_arrays(
        images, np.asarray(labels), name=root.name, source=str(folder), classes=classes
    )
