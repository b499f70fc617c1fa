"""A data set saved with ``numpy.savez``: arrays ``x`` and ``y``, or ``x_train`` ... ``y_test``.

Images may be uint8 0..255 or floats in [0, 1], shaped ``(N, H, W)``, ``(N, H, W, C)`` or
``(N, C, H, W)``. An archive with only ``x`` and ``y`` gives the same data for both splits;
class ``k`` is named ``str(k)`` (the names are not real ones).

Nothing is unpickled and nothing is decoded whole: the archive's zip directory and each
member's ``.npy`` header are read first, and what they claim is checked against the file's
real size and the :class:`~brittle.data.limits.Limits` before anything is allocated. An
uncompressed member (``numpy.savez``) is memory-mapped where it lies inside the zip file, so
a batch reads only its own samples; a compressed one (``numpy.savez_compressed``) is
decompressed into memory, at most ``max_bytes``.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from brittle.data.array_source import ArraySource
from brittle.data.bounded import ByteStream, read_announced
from brittle.data.limits import DEFAULT_LIMITS, Limits
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


_NPY_MAGIC = b"\x93NUMPY"
_LOCAL_HEADER = struct.Struct("<4s22xHH")
"""A zip member's local header: signature, 22 bytes, name and extra-field lengths."""
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        with path.open("rb") as file:
            single = file.read(len(_NPY_MAGIC)) == _NPY_MAGIC
        if single:
            raise DataError(
                f"{path} holds a single array (.npy), not named arrays; {_HOW_TO_SAVE}"
            ) from err
        raise DataError(
            f"{path} is not a readable .npz archive ({err}): it is truncated or another kind "
            f"of file; {_HOW_TO_SAVE}"
        ) from err


def _npy_header(
    stream: ByteStream, what: str, limits: Limits
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a ``.npy`` header; numbers of values checked."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise DataError(f"{what} is a .npy array of format {version}; {_HOW_TO_SAVE}")
    except DataError:
        raise
    except ValueError as err:
        raise DataError(f"{what} is not a readable .npy array ({err}); {_HOW_TO_SAVE}") from err
    except _DAMAGED as err:
        raise DataError(
            f"{what} cannot be read ({err}): the archive is damaged or truncated; write it again"
        ) from err
    if dtype.hasobject:
        raise DataError(
            f"{what} holds Python objects (dtype {dtype}) that could only be read by "
            "unpickling, which brittle never does; store numeric arrays"
        )
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{what} has dtype {dtype}, which is not numbers; store numeric arrays")
    count = math.prod(shape)
    limits.check("max_elements", count, f"{what} declares shape {shape}, {count:,} values")
    return shape, fortran, dtype


def _mapped(path: Path, info: zipfile.ZipInfo, what: str, limits: Limits) -> np.ndarray:
    """An uncompressed member, memory-mapped where its values lie in the zip file."""
    with path.open("rb") as file:
        file.seek(info.header_offset)
        local = file.read(_LOCAL_HEADER.size)
        if len(local) < _LOCAL_HEADER.size or local[:4] != _LOCAL_SIGNATURE:
            raise DataError(
                f"{what}: the archive is damaged (no member header at byte "
                f"{info.header_offset}); write it again"
            )
        _, name_length, extra_length = _LOCAL_HEADER.unpack(local)
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        file.seek(start)
        shape, fortran, dtype = _npy_header(file, what, limits)
        offset = file.tell()
        size = file.seek(0, 2)
    nbytes = math.prod(shape) * dtype.itemsize
    held = max(0, min(start + info.compress_size, size) - offset)
    if nbytes > held:
        raise DataError(
            f"{what} declares shape {shape} of {dtype}, {nbytes:,} bytes, but the file holds "
            f"only {held:,} bytes of it: it is truncated or forged; write it again"
        )
    if nbytes == 0:
        return np.empty(shape, dtype)
    return np.memmap(
        path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )


def _decompressed(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, limits: Limits
) -> np.ndarray:
    """A compressed member, decompressed into memory: what its headers claim is checked
    against ``max_bytes`` first, and no more than that is ever decompressed."""
    limits.check(
        "max_bytes", info.file_size, f"{what} claims {info.file_size:,} bytes once decompressed"
    )
    try:
        with zf.open(info) as stream:
            shape, fortran, dtype = _npy_header(stream, what, limits)
            nbytes = math.prod(shape) * dtype.itemsize
            limits.check(
                "max_bytes", nbytes, f"{what} declares shape {shape} of {dtype}, {nbytes:,} bytes"
            )
            buffer, done, more = read_announced(stream, nbytes)
            if done < nbytes:
                raise DataError(
                    f"{what} declares {nbytes:,} bytes of values but holds {done:,}: the file "
                    "is truncated; write it again"
                )
            if more:
                raise DataError(
                    f"{what} holds more data than its header declares: the file is damaged or "
                    "forged; write it again"
                )
    except DataError:
        raise
    except _DAMAGED as err:
        raise DataError(
            f"{what} cannot be decompressed ({err}): the file is damaged or truncated; write "
            "it again"
        ) from err
    return buffer.view(dtype).reshape(shape, order="F" if fortran else "C")


def _read_member(
    path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, limits: Limits
) -> np.ndarray:
    if info.flag_bits & 0x1:
        raise DataError(f"{what} is encrypted; {_HOW_TO_SAVE}")
    if info.compress_type == zipfile.ZIP_STORED:
        return _mapped(path, info, what, limits)
    return _decompressed(zf, info, what, limits)


def open_npz(path: Path, split: str, limits: Limits = DEFAULT_LIMITS) -> ArraySource:
    """The images and labels of ``split`` in the .npz file at ``path``, checked, as a source
    whose content hash is the file's bytes."""
    if not path.is_file():
        raise DataError(
            f"npz file {path} not found; pass the path of an existing .npz file as data_dir "
            "(--data-dir)"
        )
    with _open_zip(path) as zf:
        members = {
            info.filename.removesuffix(".npy"): info
            for info in zf.infolist()
            if info.filename.endswith(".npy")
        }
        x_name, y_name = _array_names(list(members), split, path)
        x_what, y_what = f"{path}['{x_name}']", f"{path}['{y_name}']"
        images = _read_member(path, zf, members[x_name], x_what, limits)
        labels = _read_member(path, zf, members[y_name], y_what, limits)
    return ArraySource.checked(
        images,
        labels,
        source=x_what,
        label_source=y_what,
        files=[path],
        kind="npz",
        name=path.stem,
        split=split,
        location=str(path),
        limits=limits,
    )
