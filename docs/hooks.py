"""MkDocs hooks: the parts of the site that are read from the code and the results at build
time, never retyped, so they cannot drift.

A page asks for them with a marker on a line of its own:

- ``<!-- params: NAME -->``: the signature of the attack registered as ``NAME`` and a table
  of its parameters, from the ``Param`` declarations (:mod:`brittle.attacks.params`): type,
  default, accepted values, command-line flag and help text. ``NAME`` may also be a class
  path, ``module:Class`` (an attack that is not registered, such as ``Minimize``).
- ``<!-- benchmark: NAME -->``: ``benchmarks/results/NAME.md`` as it is on disk, its headings
  moved under the page's.
- ``<!-- cli: COMMAND -->``: the ``--help`` of ``brittle COMMAND`` from the argparse parser
  (:func:`brittle.cli.commands.build_parser`); ``<!-- cli -->`` alone: the top-level help,
  ``<!-- cli: generator/train -->`` a command's own command.
- ``<!-- capabilities -->``: the capabilities of the threat model, strongest first, each with
  the registered attacks whose class declares it (``capability``) and the attacks
  ``brittle evaluate --capability C`` runs without ``--attack`` (``suite_attacks``).
- ``<!-- checks -->``: every flag of :data:`brittle.checks.catalogue.FLAGS`, its kind, what
  holds when all is well, what to do when it does not, and the function that decides it.

A marker may be indented (inside a collapsible note); its text is indented the same. A marker
naming an attack, a results file or a command that does not exist is an error: the build
fails, as for a broken link.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brittle.attacks.base import Attack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(
    r"^( *)<!-- (params|benchmark|cli|capabilities|checks)(?:: *([^ ]+))? -->$", re.MULTILINE
)


try:  # under MkDocs, a plugin error ends the build with its message alone
    from mkdocs.exceptions import PluginError as _Failure
except ImportError:  # the hooks imported by a test without MkDocs
    _Failure = Exception  # type: ignore[assignment, misc]


class MarkerError(_Failure):
    """A marker that names nothing that exists."""


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Expand every marker of the page."""

    def expand(match: re.Match[str]) -> str:
        indent, kind, name = match.groups()
        try:
            if kind == "params":
                text = params_table(name or "")
            elif kind == "benchmark":
                text = benchmark(name or "")
            elif kind == "capabilities":
                text = capabilities()
            elif kind == "checks":
                text = checks()
            else:
                text = cli_help(name)
        except MarkerError as err:
            raise MarkerError(f"{page.file.src_path}: {match.group(0).strip()}: {err}") from None
        # a marker indented inside a block (a collapsible note) keeps its text in the block
        return "\n".join(indent + line if line else line for line in text.splitlines())

    return MARKER.sub(expand, markdown)


# ------------------------------------------------------------------ attacks' parameters
def attack_class(name: str) -> type[Attack]:
    """The attack class a marker names: a registered name, or ``module:Class``."""
    if ":" in name:
        module, _, cls = name.partition(":")
        found: type[Attack] = getattr(importlib.import_module(module), cls)
        return found
    from brittle.attacks.registry import attack_class as registered
    from brittle.errors import InputError

    try:
        return registered(name)
    except InputError as err:
        raise MarkerError(str(err)) from None


def params_table(name: str) -> str:
    """The attack's signature and one row per declared parameter."""
    cls = attack_class(name)
    found = inspect.signature(cls)
    bare = [p.replace(annotation=inspect.Parameter.empty) for p in found.parameters.values()]
    signature = str(found.replace(parameters=bare, return_annotation=inspect.Signature.empty))
    lines = [
        f"`{cls.__name__}{signature}`",
        "",
        "| parameter | type | default | accepted | flag | what it sets |",
        "|---|---|---|---|---|---|",
    ]
    for p in cls.params:
        default = "required" if p.default is None and not p.optional else f"`{p.default!r}`"
        flag = f"`{p.flag}`" if p.flag else "not on the command line"
        accepted = p.describe_range().replace("|", "\\|")
        kind = p.kind.__name__ + (" or None" if p.optional else "")
        lines.append(
            f"| `{p.name}` | {kind} | {default} | {accepted} | {flag} | "
            f"{p.help.replace('|', chr(92) + '|')} |"
        )
    return "\n".join(lines) + "\n"


# what each capability of the threat model runs (Papernot et al. 2016's taxonomy, Figure 2)
ADVERSARY = {
    "TRAINING_DATA_AND_ARCHITECTURE": "everything: the white box plus the training data",
    "WHITE_BOX": "architecture and parameters: gradients and forward derivatives",
    "TRAINING_DATA": "the training data, not the model: train a surrogate and transfer",
    "ORACLE_SCORES": "queries that return scores (probabilities or logits)",
    "ORACLE_LABELS": "queries that return the predicted label only (decision-based)",
    "SAMPLES": "input/output pairs only; no queries",
}


def capabilities() -> str:
    """One row per capability, strongest first: the registered attacks whose class needs it,
    and what ``brittle evaluate --capability C`` runs without ``--attack`` (the standard
    suite for Linf images)."""
    from brittle.attacks.registry import attack_class as registered
    from brittle.attacks.registry import attack_names
    from brittle.errors import BrittleError
    from brittle.eval.suite import STANDARD, suite_attacks
    from brittle.threat import Capability

    needs: dict[Capability, list[str]] = {c: [] for c in Capability}
    for name in attack_names():
        needs[registered(name).capability].append(f"`{name}`")
    lines = [
        "| capability (`--capability`) | the adversary has | attacks whose class needs it "
        "| `--capability` alone runs |",
        "|---|---|---|---|",
    ]
    for cap in sorted(Capability, reverse=True):
        try:
            suite = suite_attacks(STANDARD, "linf", cap, (1, 28, 28), data="mnist")
            runs = ", then ".join(f"`{spec.name}`" for spec in suite)
        except BrittleError as err:  # shown as the command would show it
            runs = f"refused: {err}".replace("|", "\\|")
        attacks = ", ".join(needs[cap]) or "none"
        lines.append(
            f"| `{cap.name.lower()}` | {ADVERSARY.get(cap.name, '')} | {attacks} | {runs} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ benchmark results
def checks() -> str:
    """The catalogue of flags as a table, grouped as :data:`~brittle.checks.catalogue.FLAGS`
    orders them, each flag's home linked to its reference entry."""
    from brittle.checks.catalogue import FLAGS

    rows = ["| flag | kind | holds when all is well | what to do when flagged | decided by |"]
    rows.append("|---|---|---|---|---|")
    for flag in FLAGS:
        module, function = flag.home.split(":")
        rows.append(
            f"| `{flag.name}` | {flag.kind} | {flag.holds} | {flag.action} | "
            f"[`{function}`][{module}.{function}] |"
        )
    return "\n".join(rows) + "\n"


def benchmark(name: str) -> str:
    """``benchmarks/results/NAME.md``, its headings two levels down."""
    path = RESULTS / f"{name}.md"
    if not path.is_file():
        raise MarkerError(f"no results file {path.relative_to(ROOT)}")
    text = path.read_text(encoding="utf-8")
    text = re.sub(
        r"^(#{1,4}) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", text, flags=re.M
    )
    return f"*From `benchmarks/results/{name}.md`, read when the site was built:*\n\n{text}\n"


# ------------------------------------------------------------------ the command line
def cli_help(command: str | None) -> str:
    """The help text of ``brittle COMMAND`` (or of ``brittle``), as a text block."""
    os.environ["COLUMNS"] = "100"  # the help formatter wraps at the terminal's width
    from brittle.cli.commands import build_parser

    parser = build_parser()
    for word in command.split("/") if command else ():
        found = subcommands(parser)
        if word not in found:
            raise MarkerError(f"no command {word!r} here: {', '.join(found) or 'none'}")
        parser = found[word]
    return "```text\n" + parser.format_help().rstrip() + "\n```\n"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's commands by name, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
