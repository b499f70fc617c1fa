"""One evaluation at a time per output folder.

Two evaluations writing into one folder would interleave their batches in
``results.sqlite`` and overwrite each other's report, so an evaluation holds an exclusive,
non-blocking ``flock`` on ``DIR/.lock`` for its whole duration. A second one is refused at
once with the holder's pid, command and start time, which the holder writes into the file.
The lock belongs to the open file, so it ends with the process however that ends (even
``kill -9``): a stale ``.lock`` file never blocks a later run. The file itself is kept,
emptied: removing it would let two processes lock two different files of the same name.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from brittle.errors import StorageError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, option: str = "--out") -> Iterator[Path]:
    """Hold ``folder``'s lock for the block; refuse at once if another process holds it.

    Raises :class:`StorageError` naming the other run (``option`` names the folder's option
    in the advice), or saying why the lock cannot be taken at all.
    """
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise StorageError(
            f"cannot create the lock file {path} ({err.strerror}); choose another {option}"
        ) from err
    try:
        _acquire(fd, path, option)
    except BaseException:
        os.close(fd)
        raise
    try:
        _write_holder(fd)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock


def _acquire(fd: int, path: Path, option: str) -> None:
    """Take the lock of the open ``path`` without waiting, or say who holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StorageError(
                f"cannot lock {path} ({err.strerror}): its file system may not support "
                f"locks; choose another {option}"
            ) from err
        raise StorageError(
            f"{path.parent} is in use by another evaluation ({_holder(fd)}); wait until it "
            f"ends, stop it, or choose another {option}"
        ) from None


def _write_holder(fd: int) -> None:
    """Say who holds the lock: this process's pid, command line and start time (best
    effort: the lock works without it)."""
    holder = {
        "pid": os.getpid(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)


def _holder(fd: int) -> str:
    """The other run, as its holder wrote it (it may not have written it yet)."""
    try:
        info = json.loads(os.pread(fd, 1 << 16, 0))
        return f"pid {info['pid']}, started {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has just started it"
