"""Writing output files safely: a file is either its previous self or complete, never partial.

A crash, a full disk or a failing writer in the middle of a write must not destroy the
previous checkpoint or report, nor leave a truncated file that looks valid. So every file
brittle writes goes to a temporary file in the target's own folder (same file system, so the
rename is atomic), is flushed to disk with ``fsync`` and only then renamed over the target
with :func:`os.replace`. On any failure the temporary file is removed, the target is left
exactly as it was, and a :class:`~brittle.errors.StorageError` says what failed and what to
do. :func:`check_writable` tests the output place up front, before any work is spent.

Only regular files are ever replaced. A place that holds something else (a FIFO, a device
node, a socket, a folder) or a symbolic link (even one whose target is missing) is refused:
renaming a new file over it would silently replace the pipe, the device or the link itself.
brittle does not follow links when it writes; give the real path. :func:`check_outputs`
checks all of one command's outputs at its door, and also refuses two outputs that are the
same file and an output that is one of the command's inputs; :func:`atomic_path` refuses a
place that is not a regular file even when a caller did not check it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, TypeAlias

from brittle.errors import InputError, StorageError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS,)
_DENIED = (errno.EACCES, errno.EPERM)
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)

Place: TypeAlias = str | os.PathLike[str]
"""A file's path, as a command's options give it."""


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
    Parent folders are created. A ``path`` that is a symbolic link or holds anything but a
    regular file (a FIFO, a device, a socket, a folder) is never replaced: a
    :class:`StorageError` is raised before the block and again before the rename, and nothing
    is written.
    """
    target = Path(path)
    _refuse_to_replace(target)
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(target)
    except OSError as err:
        raise _write_error(target, err, existed) from err
    try:
        yield tmp
        _fsync(tmp)
        _refuse_to_replace(target)  # again: something may have taken the place meanwhile
        os.replace(tmp, target)
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, _NotReplaced):
            raise
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
    :class:`StorageError` raised otherwise. A symbolic link, or a place holding a FIFO, a
    device or a socket, is refused with an :class:`~brittle.errors.InputError` before anything
    is created (see :func:`check_outputs`).
    """
    target = Path(path)
    elsewhere = f"choose another {option}" if option else "choose another place"
    _check_place(target, option or "the output")
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


def check_outputs(
    outputs: Mapping[str, Place | None],
    inputs: Mapping[str, Place | Iterable[Place] | None] | None = None,
) -> dict[str, Path]:
    """Check all of one command's output places at its door, before any work; return them.

    ``outputs`` maps each output's name, as the user knows it (``"--json"``, ``"--out
    (report.html)"``), to its path; ``inputs`` maps each input option (``"--model"``) to the
    path, or paths, the command reads. ``None`` entries are skipped. Refused, with an
    :class:`~brittle.errors.InputError` whose message names the options involved:

    - an output that is a symbolic link (even a dangling one): brittle does not write through
      links, and replacing it would silently turn the link into a file;
    - an output place that holds something other than a regular file: a FIFO, a device node,
      a socket (a folder gets :func:`check_writable`'s :class:`StorageError`);
    - two outputs that are the same file: one would overwrite the other;
    - an output that is one of the inputs: writing it would destroy what the command reads.

    Paths are compared resolved (links and ``..`` followed), and with
    :func:`os.path.samefile` when both exist (hard links, other spellings). Then every output
    is checked with :func:`check_writable`. Returns the outputs that were given, as Paths.
    """
    given = {name: Path(path) for name, path in outputs.items() if path is not None}
    for name, path in given.items():
        _check_place(path, name)
    seen: dict[str, Path] = {}
    for name, path in given.items():
        for other, earlier in seen.items():
            if _same_file(path, earlier):
                raise InputError(
                    f"{other} and {name} are the same file ({path}): one would overwrite the "
                    f"other; give them different paths"
                )
        seen[name] = path
    read = [(name, Path(p)) for name, value in (inputs or {}).items() for p in _each(value)]
    for name, path in given.items():
        for option, source in read:
            if _same_file(path, source):
                raise InputError(
                    f"{name} {path} is the file {option} reads ({source}): writing it would "
                    f"replace that input; give {name} another path"
                )
    return {name: check_writable(path, option=name) for name, path in given.items()}


class _NotReplaced(StorageError):
    """The writer refused a place that is not a regular file (passed through unwrapped)."""


def _kind(mode: int) -> str | None:
    """What a place that is not a regular file, a folder or a link holds; ``None`` else."""
    return next((kind for test, kind in _KINDS if test(mode)), None)


def _check_place(target: Path, option: str) -> None:
    """Refuse a ``target`` that is a symbolic link or holds a FIFO, device or socket."""
    try:
        mode = os.lstat(target).st_mode
    except OSError:
        return  # absent (or unreadable: check_writable's probe reports that)
    if stat.S_ISLNK(mode):
        raise InputError(
            f"{option} {target} is a symbolic link (to {os.readlink(target)}): brittle does not "
            f"write through links, and replacing it would turn the link into a file; give the "
            f"real path or another {option}"
        )
    kind = _kind(mode)
    if kind is not None:
        raise InputError(
            f"{option} {target} is {kind}, not a regular file: writing there would replace it "
            f"with a file; give {option} the path of a regular file"
        )


def _refuse_to_replace(target: Path) -> None:
    """The writer's own guard: never rename a file over a link or anything not a file."""
    try:
        mode = os.lstat(target).st_mode
    except OSError:
        return
    what = "a symbolic link" if stat.S_ISLNK(mode) else _kind(mode)
    if what is None and stat.S_ISDIR(mode):
        what = "a folder"
    if what is not None:
        raise _NotReplaced(
            f"cannot write {target}: it is {what}, not a regular file, and brittle replaces "
            f"only regular files; nothing was written. Choose the path of a regular file"
        )


def _each(value: Place | Iterable[Place] | None) -> list[Place]:
    """An input option's paths: none, one, or several."""
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [value]
    return list(value)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file: resolved, or by device and inode."""
    try:
        if a.resolve() == b.resolve():
            return True
        return os.path.samefile(a, b)
    except (OSError, RuntimeError):  # one does not exist (yet), or a loop of links
        return a.absolute() == b.absolute()


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
