"""Reader for the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.

An IDX file is a 4-byte big-endian magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order. Compression is
detected by gzip's magic bytes, whatever the file is called. The header is read and checked
(against the file's length and the :class:`~brittle.data.limits.Limits`) before the values.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from brittle.data.bounded import ByteStream, read_announced
from brittle.data.limits import DEFAULT_LIMITS, Limits
from brittle.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
IMAGES_MAGIC = 0x00000803
"""Unsigned bytes, 3 dimensions (N, H, W): 2051."""
LABELS_MAGIC = 0x00000801
"""Unsigned bytes, 1 dimension (N,): 2049."""

_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _header(
    stream: ByteStream, path: Path, expected_magic: int | None, unpacked: str, limits: Limits
) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of the IDX file read by ``stream``; the number of
    values is counted exactly (Python integers: a forged shape cannot wrap) and checked."""
    magic_bytes = stream.read(4)
    if len(magic_bytes) < 4:
        raise DataError(
            f"{path} is truncated: expected at least 4 bytes (the IDX magic number), found "
            f"{len(magic_bytes)}{unpacked}"
        )
    magic = int.from_bytes(magic_bytes, "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path} has IDX magic number {magic} (0x{magic:08x}) but {expected_magic} "
            f"(0x{expected_magic:08x}) was expected: the file is corrupt, or not the one its "
            "name says (images and labels swapped?)"
        )
    ndim = magic_bytes[3]
    if magic_bytes[:2] != b"\0\0" or magic_bytes[2] not in _TYPES or ndim == 0:
        raise DataError(
            f"{path} is not an IDX file: magic number 0x{magic:08x} does not start with two "
            "zero bytes, a known type code (0x08-0x0e) and a dimension count"
        )
    header = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(
            f"{path} is truncated: expected a {header}-byte header, found {4 + len(dims)} "
            f"bytes{unpacked}"
        )
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    count = math.prod(shape)
    limits.check(
        "max_elements", count, f"{path}'s header announces shape {shape}, {count:,} values"
    )
    return shape, np.dtype(_TYPES[magic_bytes[2]]), header


def _size_error(
    path: Path, shape: tuple[int, ...], expected: int, found: int, unpacked: str
) -> DataError:
    problem = "truncated" if found < expected else "longer than its header says"
    return DataError(
        f"{path} is {problem}: its header announces shape {shape}, so {expected} bytes, "
        f"but it has {found} bytes{unpacked}; download the file again"
    )


def _read_plain(path: Path, expected_magic: int | None, limits: Limits) -> np.ndarray:
    """An uncompressed file: the header read, the values memory-mapped."""
    with path.open("rb") as file:
        shape, dtype, header = _header(file, path, expected_magic, "", limits)
        size = file.seek(0, 2)
    expected = header + math.prod(shape) * dtype.itemsize
    if size != expected:
        raise _size_error(path, shape, expected, size, "")
    if expected == header:
        return np.empty(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=header, shape=shape)


def _read_gzip(path: Path, expected_magic: int | None, limits: Limits) -> np.ndarray:
    """A gzip-compressed file, decompressed only as far as its header announces, once that
    is within ``max_bytes``: a gzip bomb is refused or cut off, never inflated."""
    unpacked = " after decompression"
    try:
        with gzip.open(path, "rb") as stream:
            shape, dtype, header = _header(stream, path, expected_magic, unpacked, limits)
            nbytes = math.prod(shape) * dtype.itemsize
            limits.check(
                "max_bytes",
                header + nbytes,
                f"{path} is gzip-compressed and its header announces shape {shape}, "
                f"{header + nbytes:,} bytes once decompressed",
            )
            buffer, done, more = read_announced(stream, nbytes)
            if done < nbytes:
                raise _size_error(path, shape, header + nbytes, header + done, unpacked)
            if more:
                raise _size_error(path, shape, header + nbytes, header + nbytes + 1, unpacked)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path} is gzip-compressed but cannot be decompressed ({err}); the file is "
            "probably incomplete: download it again"
        ) from err
    return buffer.view(dtype).reshape(shape)


def read_idx(
    path: str | Path, expected_magic: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> np.ndarray:
    """Read an IDX file into a numpy array of its shape (memory-mapped when the file is not
    compressed).

    With ``expected_magic`` (e.g. :data:`IMAGES_MAGIC`), any other magic number is refused.
    What the header announces is checked against ``limits`` and against the file's length
    before anything is allocated.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            compressed = file.read(2) == GZIP_MAGIC
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err})") from err
    if compressed:
        return _read_gzip(path, expected_magic, limits)
    return _read_plain(path, expected_magic, limits)
