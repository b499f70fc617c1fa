"""The argparse machinery of the ``brittle`` command: a parser whose errors are exceptions,
the help formatter, the sub-command factory and the value converters.

A converter turns one command-line word into the declared type or raises
:class:`argparse.ArgumentTypeError` with the reason, which :class:`Parser` words as
``--flag reason``.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from brittle.budget import Budget, BudgetError, parse_budget, parse_budgets
from brittle.errors import InputError
from brittle.threat import Capability
from brittle.validation import check_seed

from .exits import EXIT_CODES

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

Handler = Callable[[argparse.Namespace], int]
"""A command's handler: runs its task on the parsed options and prints; the exit code."""


class UsageError(Exception):
    """A command line that does not parse: printed as one ``error:`` line, exit 2."""


class Done(Exception):
    """``--help`` or ``--version`` was printed: stop with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Formatter(argparse.HelpFormatter):
    """Help at most 100 columns wide; each paragraph of a description is filled on its
    own and indented lines (lists) are kept as written."""

    def __init__(self, prog: str) -> None:
        width = min(shutil.get_terminal_size().columns, 100) - 2
        super().__init__(prog, max_help_position=30, width=width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = textwrap.dedent(text).strip().split("\n\n")
        return "\n\n".join(
            textwrap.indent(p, indent)
            if p.startswith(" ") or "\n " in p
            else textwrap.fill(
                " ".join(p.split()), width, initial_indent=indent, subsequent_indent=indent
            )
            for p in paragraphs
        )


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors and exits are exceptions, for ``main`` to print."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):  # "argument --n: must be an integer, got 'x'"
            flag, _, reason = message.removeprefix("argument ").partition(": ")
            reason = "needs a value" if reason == "expected one argument" else reason
            message = f"{flag.split('/')[0]} {reason}"
        raise UsageError(f"{message} (see {self.prog} --help)")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        """Print help, usage or version; unlike argparse, let a closed pipe be seen."""
        if message:
            (file or sys.stderr).write(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr, end="")
        raise Done(status)


def add_command(
    commands: argparse._SubParsersAction, name: str, run: Handler, usage: str = "[options]"
) -> argparse.ArgumentParser:
    """A sub-command whose description is ``run``'s docstring, with the exit codes;
    ``usage`` follows the command's name in its usage line."""
    doc = inspect.cleandoc(run.__doc__ or "")
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=doc.split("\n\n")[0],
        description=doc,
        epilog=EXIT_CODES,
        usage=f"brittle {name} {usage}",
        formatter_class=Formatter,
        allow_abbrev=False,
    )
    parser.set_defaults(run=run, command=name, default_of=parser.get_default)
    return parser


# ------------------------------------------------------------------ value converters
def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def seed(text: str) -> int:
    """A seed: an integer in [0, 2**63 - 1] (:func:`brittle.validation.check_seed`, what
    numpy's and torch's generators accept), refused here for every command."""
    try:
        return check_seed(integer(text))
    except InputError:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [0, 2**63 - 1], got {text!r}"
        ) from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def budget(text: str) -> Budget:
    """One budget: a number or a fraction such as ``8/255``."""
    try:
        return parse_budget(text)
    except BudgetError as err:
        raise argparse.ArgumentTypeError(err.reason) from None


def budgets(text: str) -> tuple[Budget, ...]:
    """Comma-separated budgets, numbers or fractions, e.g. ``0.05,0.1`` or ``2/255,8/255``."""
    try:
        return parse_budgets(text)
    except BudgetError as err:
        raise argparse.ArgumentTypeError(err.reason) from None


def paths(text: str) -> list[Path]:
    """Comma-separated file paths, e.g. ``a.pt,b.pt``."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated paths such as a.pt,b.pt, got {text!r}"
        )
    return [Path(part) for part in parts]


def choice(choices: Sequence[str]) -> Callable[[str], str]:
    """A converter that accepts one of ``choices`` (in any case)."""

    def convert(text: str) -> str:
        key = text.strip().lower()
        if key not in choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(choices)}, got {text!r}")
        return key

    return convert


CAPABILITIES = [c.name.lower() for c in sorted(Capability, reverse=True)]
"""The capabilities of ``--capability``, strongest first."""


def capability(text: str) -> Capability:
    return Capability[choice(CAPABILITIES)(text).upper()]


CONVERTERS: dict[type, Callable[[str], Any]] = {int: integer, float: number, str: str}
"""The converter of each declared parameter type (``bool`` is a flag pair instead)."""
METAVARS = {int: "N", float: "X", str: "TEXT"}
