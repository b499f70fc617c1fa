"""The ``brittle`` command: parses options, calls :mod:`brittle.tasks`, prints.

Commands: ``train``, ``attack``, ``evaluate``, ``demo``, ``reproduce``, ``transfer``,
``generator``, ``bound`` and ``compare`` (``brittle COMMAND --help``).
The modules, one job each:

- :mod:`.parser`: the argument parser, the help formatter and the value converters;
- :mod:`.attack_options`: the attack's options, generated from the parameters every
  registered attack declares (shared by ``attack`` and ``evaluate``);
- :mod:`.options`: the other options (model and data, training, seed, device);
- :mod:`.commands`: one handler per command and :func:`build_parser`;
- :mod:`.output`: what is printed;
- :mod:`.exits`: the exit codes.

Exit codes (:mod:`.exits`):

- 0: success.
- 2 (:data:`ERROR_EXIT`): bad input, i.e. an unknown option, a value that does not parse,
  or any :class:`~brittle.errors.BrittleError` other than a storage error.
- 3 (:data:`~brittle.errors.STORAGE_EXIT`): an output cannot be stored
  (:class:`~brittle.errors.StorageError`: a full disk, a read-only place, a result store
  that is locked or damaged, a folder another evaluation is using). Fix the place, then run
  the same command again; an evaluation resumes.
- 130 (:data:`INTERRUPTED_EXIT`): interrupted (Ctrl-C). An evaluation keeps every finished
  batch; the same command resumes it.
- 141 (:data:`BROKEN_PIPE_EXIT`): the reader of stdout went away (``brittle ... | head -1``).
  Nothing more is printed, not even an error: the rest of the output is dropped, as by
  any command a closed pipe stops, and the code is the one a shell reports for those (128
  + SIGPIPE), so a script with ``set -o pipefail`` sees the output was cut short.

Every error is one ``error: ...`` line on stderr, never a traceback nor a usage box.
Progress bars are shown only when stderr is a terminal, so logs are not flooded.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from brittle.errors import BrittleError, StorageError

from .commands import build_parser
from .exits import BROKEN_PIPE_EXIT, ERROR_EXIT, INTERRUPTED_EXIT, STORAGE_EXIT
from .parser import Done, Handler, UsageError

__all__ = [
    "BROKEN_PIPE_EXIT",
    "ERROR_EXIT",
    "INTERRUPTED_EXIT",
    "STORAGE_EXIT",
    "UsageError",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``brittle`` command on ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    try:
        code = _run(sys.argv[1:] if argv is None else list(argv))
        sys.stdout.flush()  # a reader that went away shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        _drop_closed_pipes()
        return BROKEN_PIPE_EXIT
    except StorageError as err:
        _error(err)
        return STORAGE_EXIT
    except (BrittleError, UsageError, OSError) as err:
        _error(err)
        return ERROR_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT


def _run(argv: list[str]) -> int:
    """Parse ``argv`` and run its command's handler."""
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    try:
        args, unknown = parser.parse_known_args(argv)
    except Done as done:
        return done.status
    if unknown:
        options = [a for a in unknown if a.startswith("-")] or unknown
        where = f"brittle {args.command}" if hasattr(args, "command") else "brittle"
        raise UsageError(f"unknown option {' '.join(options)} (see {where} --help)")
    run: Handler = args.run
    return run(args)


def _error(err: BaseException) -> None:
    """Print ``err`` as the one ``error: ...`` line on stderr."""
    print(f"error: {' '.join(str(err).splitlines())}", file=sys.stderr)


def _drop_closed_pipes() -> None:
    """Point stdout and stderr at the null device if their reader is gone.

    What could not be written stays in the streams' buffers; without this, Python's flush at
    exit would fail on it again and print "Exception ignored ... BrokenPipeError".
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            with contextlib.suppress(OSError, ValueError):  # no descriptor: nothing to flush
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
        except (OSError, ValueError):
            pass
