"""Reading exactly as many bytes as a header announced from a (decompressing) stream."""

from __future__ import annotations

from typing import Protocol

import numpy as np

_CHUNK = 1 << 24


class ByteStream(Protocol):
    """A binary file or stream (a zip member, a gzip file, a plain file)."""

    def read(self, size: int = ..., /) -> bytes: ...


def read_announced(stream: ByteStream, nbytes: int) -> tuple[np.ndarray, int, bool]:
    """Read ``nbytes`` from ``stream`` into a new uint8 array, a chunk at a time (never more:
    a decompression bomb is cut off where the header said the data end).

    Returns the array, how many bytes the stream held of it, and whether the stream holds
    more after them (one byte is tried).
    """
    buffer = np.empty(nbytes, dtype=np.uint8)
    done = 0
    while done < nbytes and (chunk := stream.read(min(_CHUNK, nbytes - done))):
        buffer[done : done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        done += len(chunk)
    more = done == nbytes and bool(stream.read(1))
    return buffer, done, more
