"""Progress of a long loop: a bar on a terminal, plain lines in a log, or nothing.

:func:`show_progress` is what the engine and the CLI count their work with. On a terminal it
is a :mod:`tqdm` bar. When the stream is not a terminal (a log file, a pipe, a batch job's
output) a bar would write a carriage return and a redrawn line many times a second, so
:class:`LogProgress` writes instead one plain line at most every :data:`LOG_INTERVAL`
seconds, and the last line when the loop ends:

    evaluate: 1,536/10,000 samples (15.4%), 12 s elapsed, about 66 s left (FGSM eps=0.1)

Both take the part of tqdm's interface the loops use: ``update``, ``set_postfix_str``,
``set_description``, ``refresh``, ``close``, ``total`` and ``n``, and ``with``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal, Protocol, TextIO

from tqdm import tqdm

Mode = Literal["auto", "bar", "log", "off"]
"""How to show progress: ``auto`` a bar on a terminal and log lines elsewhere, ``bar``,
``log``, or ``off`` (nothing; what ``--quiet`` asks for)."""
LOG_INTERVAL = 5.0
"""The fewest seconds between two lines of :class:`LogProgress` (the last line excepted)."""


class Progress(Protocol):
    """What :func:`show_progress` returns: the part of tqdm's interface the loops use."""

    total: float
    n: float

    def update(self, n: float = 1) -> object: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None: ...

    def refresh(self) -> object: ...

    def close(self) -> None: ...

    def __enter__(self) -> Progress: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...


class LogProgress:
    """Progress as plain lines on ``stream``: at most one every ``interval`` seconds (the
    first once ``interval`` seconds have passed), and the last when it is closed, unless the
    line before already counted as many. ``total`` 0 is not known: the lines count without
    it. ``clock`` gives the time in seconds (a test passes its own)."""

    def __init__(
        self,
        total: float,
        desc: str,
        *,
        unit: str = "it",
        stream: TextIO | None = None,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n: float = 0
        self.postfix = ""
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._written: float | None = None
        self._closed = False

    def update(self, n: float = 1) -> None:
        """Count ``n`` more done; write a line if ``interval`` seconds passed since the last
        and the count moved since."""
        self.n += n
        if self._clock() - self._last >= self._interval and self.n != self._written:
            self._write()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """What is being done now, written in brackets after the count."""
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """The loop's name, at the start of each line."""
        self.desc = desc or ""

    def refresh(self) -> None:
        """Nothing to redraw: a log line is written by :meth:`update` and :meth:`close`."""

    def close(self) -> None:
        """Write the last line (unless the line before counted as many); only once."""
        if self._closed:
            return
        self._closed = True
        if self._written != self.n:
            self._write()

    def line(self) -> str:
        """The progress as one line (the time left is estimated from the rate so far)."""
        elapsed = self._clock() - self._start
        done, unit = int(self.n), _plural(self.unit)
        if self.total > 0:
            total = int(self.total)
            text = f"{self.desc}: {done:,}/{total:,} {unit} ({100 * self.n / total:.1f}%)"
        else:
            text = f"{self.desc}: {done:,} {unit}"
        text += f", {elapsed:.0f} s elapsed"
        if 0 < self.n < self.total and not self._closed:
            text += f", about {elapsed * (self.total - self.n) / self.n:.0f} s left"
        return f"{text} ({self.postfix})" if self.postfix else text

    def _write(self) -> None:
        text = self.line()
        self._stream.write(text + "\n")
        self._stream.flush()
        self._written = self.n
        self._last = self._clock()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def show_progress(
    total: float,
    desc: str,
    mode: Mode | bool = "auto",
    *,
    unit: str = "it",
    stream: TextIO | None = None,
    interval: float = LOG_INTERVAL,
) -> Progress:
    """A progress counter for ``total`` steps of ``unit`` named ``desc``, written to
    ``stream`` (default: standard error).

    ``mode`` (:data:`Mode`; ``True`` is ``auto``, ``False`` is ``off``): ``auto`` gives a
    tqdm bar when ``stream`` is a terminal and a :class:`LogProgress` (a line every
    ``interval`` seconds, and the last) when it is not; ``off`` a disabled tqdm bar, which
    counts and writes nothing. Use it as tqdm: ``with show_progress(...) as bar:
    bar.update(k)``.
    """
    if isinstance(mode, bool):
        mode = "auto" if mode else "off"
    if mode not in ("auto", "bar", "log", "off"):
        raise ValueError(f"progress mode must be auto, bar, log or off, got {mode!r}")
    out = stream if stream is not None else sys.stderr
    if mode == "auto":
        mode = "bar" if _is_terminal(out) else "log"
    if mode == "log":
        return LogProgress(total, desc, unit=unit, stream=out, interval=interval)
    return tqdm(total=total, desc=desc, unit=unit, file=out, disable=mode == "off")


def _plural(unit: str) -> str:
    """``sample`` as ``samples``, ``batch`` as ``batches`` (tqdm's ``it`` as it is)."""
    if unit == "it" or unit.endswith("s"):
        return unit
    return f"{unit}es" if unit.endswith(("ch", "sh", "x")) else f"{unit}s"


def _is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
