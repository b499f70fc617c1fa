"""The exit codes of the ``brittle`` command and the help text that lists them."""

from __future__ import annotations

from brittle.errors import STORAGE_EXIT

ERROR_EXIT = 2
"""Exit code of bad input: an unknown option, a bad value, any
:class:`~brittle.errors.BrittleError` other than a storage error."""
INTERRUPTED_EXIT = 130
"""Exit code of an interrupted command (128 + SIGINT, as shells report it)."""
BROKEN_PIPE_EXIT = 141
"""Exit code when the reader of the output went away (``brittle ... | head -1``): 128 +
SIGPIPE, what a shell reports for any program a closed pipe stops (``yes | head -1``)."""

EXIT_CODES = f"""\
exit codes:
  0    success
  {ERROR_EXIT}    bad input: an unknown option, a bad value, a missing file, ...
  {STORAGE_EXIT}    an output cannot be stored: disk full, read-only, result store locked or
       damaged, folder in use by another evaluation; fix it, run the same command again
  {INTERRUPTED_EXIT}  interrupted; an evaluation keeps its finished batches and resumes
  {BROKEN_PIPE_EXIT}  the output's reader went away (| head): stopped quietly"""

__all__ = ["BROKEN_PIPE_EXIT", "ERROR_EXIT", "EXIT_CODES", "INTERRUPTED_EXIT", "STORAGE_EXIT"]
