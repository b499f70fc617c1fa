"""A data set of image files, one folder per class: ``root/<split>/<class>/*`` or ``root/<class>/*``.

Classes are the sub-folders, sorted by name; hidden entries (names starting with ``.``, such
as ``.thumbs/`` or ``._x.png``) and files that are not PNG, JPEG or BMP are skipped. Without
``train``/``test`` sub-folders both splits are the whole folder.

A :class:`FolderSource` reads every image's header when it is opened (size and mode only,
nothing decoded): all images must have the same size, each within ``Limits.max_pixels``. It
decodes only the images a batch asks for. The images stay grayscale (1 channel) when every
one of them is, else all become RGB; 8-bit samples are divided by 255 and 16-bit ones (PNG
mode ``I;16``) by 65535, each image by its own bit depth. The content hash covers each
file's path, label and bytes, without decoding.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from brittle.data.dataset import SPLITS
from brittle.data.fingerprint import update_with_file
from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.data.source import Source
from brittle.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N")
_DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
"""Modes of 16-bit grayscale PNGs (``I`` in older Pillow): samples 0..65535."""
_COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
_BYTE_MAX = 255
_DEEP_MAX = 65535
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


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
    classes = sorted(
        (path for path in folder.iterdir() if path.is_dir() and not _hidden(path)),
        key=lambda p: p.name,
    )
    if not classes:
        raise DataError(f"{folder} has no class folders; put images in {folder}/<class>/")
    files: list[Path] = []
    labels: list[int] = []
    for label, class_folder in enumerate(classes):
        found = sorted(
            path
            for path in class_folder.iterdir()
            if path.is_file() and not _hidden(path) and path.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise DataError(
                f"class folder {class_folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        files += found
        labels += [label] * len(found)
    return files, labels, [path.name for path in classes]


def _open_header(path: Path, limits: Limits) -> tuple[str, tuple[int, int]]:
    """The image's mode and size, from its header alone; its pixels checked first."""
    pillow_ceiling = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                mode, size = image.mode, image.size
    except Image.DecompressionBombError as err:
        what = f"{path} is an image of more than {pillow_ceiling:,} pixels ({err})"
        if limits.max_pixels < pillow_ceiling:
            raise limits.exceeded("max_pixels", what) from err
        raise DataError(
            f"{what}; Pillow decodes it once PIL.Image.MAX_IMAGE_PIXELS is raised"
        ) from err
    except _UNREADABLE as err:
        raise DataError(f"{path} cannot be read as an image ({err})") from err
    width, height = size
    limits.check("max_pixels", width * height, f"{path} is {width}x{height} pixels")
    if mode not in _GRAYSCALE_MODES + _COLOUR_MODES:
        raise DataError(
            f"{path} has image mode {mode!r}, which brittle does not read; save it as 8-bit "
            "or 16-bit grayscale, or RGB"
        )
    return mode, size


def _check_headers(files: list[Path], limits: Limits) -> tuple[int, tuple[int, int]]:
    """Check every file's header (readable, within the limits, the first one's size);
    return the channels (1 when all are grayscale, else 3) and the size (width, height)."""
    first_mode, size = _open_header(files[0], limits)
    grayscale = first_mode in _GRAYSCALE_MODES
    for path in files[1:]:
        mode, this_size = _open_header(path, limits)
        if this_size != size:
            raise DataError(
                f"{path} is {this_size[0]}x{this_size[1]} pixels but {files[0]} is "
                f"{size[0]}x{size[1]}; all images must have the same size (resize them first)"
            )
        grayscale = grayscale and mode in _GRAYSCALE_MODES
    return (1 if grayscale else 3), size


def _decode(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """One image as float32 ``(channels, H, W)`` in ``[0, 1]``, scaled by its bit depth."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.size != size:
                    raise DataError(
                        f"{path} is now {image.size[0]}x{image.size[1]} pixels, not "
                        f"{size[0]}x{size[1]} as when the folder was opened; open it again"
                    )
                if image.mode in _DEEP_MODES:
                    samples = np.asarray(image)
                    depth = _DEEP_MAX
                else:
                    samples = np.asarray(image.convert("L" if channels == 1 else "RGB"))
                    depth = _BYTE_MAX
    except DataError:
        raise
    except _UNREADABLE as err:
        raise DataError(f"{path} cannot be decoded as an image ({err})") from err
    if samples.dtype == np.int32 and (samples.min() < 0 or samples.max() > depth):
        raise DataError(f"{path} holds samples outside 0..{depth}; save it as a 16-bit PNG")
    planes = samples[None] if samples.ndim == 2 else samples.transpose(2, 0, 1)
    if planes.shape[0] != channels:
        planes = np.repeat(planes, channels, axis=0)
    return np.divide(planes, depth, dtype=np.float32)


class FolderSource(Source):
    """The images of ``split`` under ``root`` (see the module docstring), decoded a batch at
    a time. Opening reads every header, never the pixels."""

    kind = "folder"

    def __init__(self, root: Path, split: str, limits: Limits = DEFAULT_LIMITS) -> None:
        if not root.is_dir():
            raise DataError(
                f"image folder {root} not found; pass a folder holding <class>/ or "
                "train/<class>/ and test/<class>/ sub-folders as data_dir (--data-dir)"
            )
        folder = _split_folder(root, split)
        files, labels, classes = _image_files(folder)
        limits.check("max_classes", len(classes), f"{folder} has {len(classes):,} class folders")
        channels, (width, height) = _check_headers(files, limits)
        super().__init__(
            name=root.name,
            classes=classes,
            input_shape=(channels, height, width),
            split=split,
            location=str(root),
            named_classes=True,
        )
        self.root = root
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def fetch(self, ids: Sequence[int]) -> tuple[Tensor, Tensor]:
        self.check_ids(ids)
        index = [int(i) for i in ids]
        channels, height, width = self.input_shape
        x = np.empty((len(index), channels, height, width), dtype=np.float32)
        for row, i in enumerate(index):
            x[row] = _decode(self.files[i], channels, (width, height))
        return torch.from_numpy(x), torch.from_numpy(self.labels[index])

    def _digest(self) -> str:
        digest = hashlib.sha256()
        for path, label in zip(self.files, self.labels.tolist(), strict=True):
            name = path.relative_to(self.root).as_posix().encode()
            digest.update(len(name).to_bytes(4, "little") + name + label.to_bytes(8, "little"))
            update_with_file(digest, path)
        return digest.hexdigest()
