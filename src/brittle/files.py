"""Writing output files safely: a file is either its previous self or complete, never partial.

A crash, a full disk or a failing writer in the middle of a write must not destroy the
previous checkpoint or report, nor leave a truncated file that looks valid. So every file
brittle writes goes to a temporary file in the target's own folder (same file system, so the
rename is atomic), is flushed to disk with ``fsync`` and only then renamed over the target
with :func:`os.replace`. On any failure the temporary file is removed, the target is left
exactly as it was, and a :class:`~brittle.errors.StorageError` says what failed and what to
do. :func:`check_writable` tests the output place up front, before any work is spent.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from brittle.errors import StorageError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS,)
_DENIED = (errno.EACCES, errno.EPERM)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; install it on success.

    For writers that need a file name (``torch.save``, ``np.savez``, ``savefig``). The
    temporary file, ``.<name>.<random>.tmp<suffix>`` beside the target, exists (empty) when
    the block starts; it keeps the target's suffix because ``np.savez`` appends ``.npz`` to
    names without it and matplotlib picks the format from it. It gets the permissions a plain
    ``open(path, "w")`` would give (the old file's, or the umask's for a new one). When the
    block ends it is fsynced and renamed over ``path``, and the folder is fsynced. If the
    block or any step raises, the temporary file is removed, ``path`` is unchanged, and an
    ``Exception`` becomes a :class:`StorageError` (``KeyboardInterrupt`` passes through).
    Parent folders are created.
    """
    target = Path(path)
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(target)
    except OSError as err:
        raise _write_error(target, err, existed) from err
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, Exception):
            raise _write_error(target, err, existed) from err
        raise
    _fsync_folder(target.parent)


def write_atomic(path: str | Path, writer: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` atomically with ``writer(file)``, given the open binary file; return it.

    See :func:`atomic_path`: on any failure, of the disk or of ``writer``, ``path`` keeps its
    previous content and a :class:`StorageError` is raised.
    """
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        writer(file)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Replace ``path``'s content with ``data`` atomically (see :func:`atomic_path`)."""
    return write_atomic(path, lambda file: file.write(data))


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path``'s content with ``text`` atomically (see :func:`atomic_path`)."""
    return write_bytes_atomic(path, text.encode(encoding))


def check_writable(path: str | Path, *, option: str | None = None) -> Path:
    """Check, before any work is spent, that ``path`` can be written; return it as a Path.

    The parent folder must exist or be creatable (it is created) and accept a new file: a
    probe file is created, written and removed there. ``path`` itself must not be a folder.
    ``option`` names where the path came from (e.g. ``"--out"``) for the message of the
    :class:`StorageError` raised otherwise.
    """
    target = Path(path)
    elsewhere = f"choose another {option}" if option else "choose another place"
    if target.is_dir():
        raise StorageError(f"cannot write {target}: it is a folder; give a file name")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise StorageError(
            f"cannot write {target}: {folder} (or a folder above it) is a file, not a folder; "
            f"{elsewhere}"
        ) from err
    except OSError as err:
        raise StorageError(
            f"cannot write {target}: the folder {folder} cannot be created "
            f"({_reason(err)}); {_advice(err, folder, elsewhere)}"
        ) from err
    try:
        _probe(target)
    except OSError as err:
        raise StorageError(
            f"cannot write {target}: a test file cannot be written in {folder} "
            f"({_reason(err)}); {_advice(err, folder, elsewhere)}"
        ) from err
    return target


def _create_temp(target: Path) -> Path:
    """Create an empty, new temporary file beside ``target`` with ``open``'s permissions.

    ``os.open`` with mode 0o666 applies the umask as a plain ``open`` does (``mkstemp``
    would make it 0o600); an existing target's mode is copied. ``O_EXCL`` and 64 random bits
    make the name unique.
    """
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp{target.suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
    except FileNotFoundError:
        pass  # a new file: the umask's mode stays
    except OSError:
        _remove(tmp)
        raise
    return tmp


def _probe(target: Path) -> None:
    """Create, write and remove a temporary file beside ``target`` (a full disk refuses the
    first byte, while it may still let an empty file be created)."""
    probe = _create_temp(target)
    try:
        probe.write_bytes(b"\0")
    finally:
        _remove(probe)


def _fsync(path: Path) -> None:
    """Flush ``path``'s content to the disk, so the rename never installs a partial file."""
    with path.open("rb+") as file:
        os.fsync(file.fileno())


def _fsync_folder(folder: Path) -> None:
    """Flush the folder entry of the rename where the platform allows it (best effort: the
    new file is already in place, so a failure here must not report the write as failed)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _reason(err: BaseException) -> str:
    """What failed, in one line: the OS error's text, or the writer's exception."""
    if isinstance(err, OSError) and err.strerror:
        code = errno.errorcode.get(err.errno or 0, "")
        return f"{err.strerror} [{code}]" if code else err.strerror
    first = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _advice(err: BaseException, folder: Path, elsewhere: str) -> str:
    """What to do about ``err``, given where the file was to go."""
    code = err.errno if isinstance(err, OSError) else None
    if code in _FULL:
        return f"free some space on the disk of {folder} or {elsewhere}, then run again"
    if code in _READ_ONLY:
        return f"the folder {folder} is read-only; {elsewhere}"
    if code in _DENIED:
        return (
            f"the folder {folder} is not writable by this user; fix its permissions or {elsewhere}"
        )
    return f"check that {folder} has free space and is writable, or {elsewhere}, then run again"


def _write_error(target: Path, err: BaseException, existed: bool) -> StorageError:
    kept = f"the previous {target.name} is unchanged" if existed else "no file was left behind"
    advice = _advice(err, target.parent, "choose another place")
    return StorageError(
        f"cannot write {target}: {_reason(err)}; {kept}. {advice[0].upper()}{advice[1:]}"
    )
