"""Reader for the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.

An IDX file is a 4-byte big-endian magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order. Compression is
detected by gzip's magic bytes, whatever the file is called.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from brittle.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
IMAGES_MAGIC = 0x00000803
"""Unsigned bytes, 3 dimensions (N, H, W): 2051."""
LABELS_MAGIC = 0x00000801
"""Unsigned bytes, 1 dimension (N,): 2049."""

_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """The file's content, decompressed when it starts with gzip's magic bytes; and whether."""
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw, False
    try:
        return gzip.decompress(raw), True
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path} is gzip-compressed but cannot be decompressed ({err}); the file is "
            "probably incomplete: download it again"
        ) from err


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file into a numpy array of its shape and (native-endian) type.

    With ``expected_magic`` (e.g. :data:`IMAGES_MAGIC`), any other magic number is refused.
    """
    path = Path(path)
    data, compressed = _read_bytes(path)
    unpacked = " after decompression" if compressed else ""
    if len(data) < 4:
        raise DataError(
            f"{path} is truncated: expected at least 4 bytes (the IDX magic number), found "
            f"{len(data)}{unpacked}"
        )
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path} has IDX magic number {magic} (0x{magic:08x}) but {expected_magic} "
            f"(0x{expected_magic:08x}) was expected: the file is corrupt, or not the one its "
            "name says (images and labels swapped?)"
        )
    ndim = data[3]
    if data[:2] != b"\0\0" or data[2] not in _TYPES or ndim == 0:
        raise DataError(
            f"{path} is not an IDX file: magic number 0x{magic:08x} does not start with two "
            "zero bytes, a known type code (0x08-0x0e) and a dimension count"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path} is truncated: expected a {header}-byte header, found {len(data)} "
            f"bytes{unpacked}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_TYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{path} is {problem}: its header announces shape {shape}, so {expected} bytes, "
            f"but it has {len(data)} bytes{unpacked}; download the file again"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)
