"""SHA-256 of data files, streamed (a file is never held whole in memory)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brittle.errors import DataError

_CHUNK = 1 << 20


def update_with_file(digest: Any, path: Path) -> None:
    """Feed ``path``'s size (8 bytes, so that files cannot run into each other) and its bytes
    to ``digest`` (a ``hashlib`` object)."""
    try:
        with path.open("rb") as file:
            digest.update(path.stat().st_size.to_bytes(8, "little"))
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except OSError as err:
        raise DataError(f"{path} cannot be read to hash it ({err})") from err


def files_sha256(paths: Sequence[Path]) -> str:
    """The SHA-256 of the files' bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        update_with_file(digest, path)
    return digest.hexdigest()
