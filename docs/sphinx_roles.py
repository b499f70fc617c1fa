"""A Griffe extension for the API reference: brittle's docstrings cross-reference with Sphinx
roles (:class:`~brittle.errors.InputError`, :func:`.parser.add_command`); mkdocstrings renders
docstrings as Markdown, where a role would show as a literal ``:class:`` before a code span.

Once the package is loaded, every role is rewritten as an optional cross-reference of
mkdocs-autorefs: a link to the object's entry in the reference when it has one, the name in
code otherwise (an optional reference never fails the strict build; the pages' own links
do). A name is resolved the way Sphinx would: a full ``brittle.`` path as it is, a leading
dot relative to the docstring's package, anything else in the docstring's scope (its
object, then the enclosing ones, through their imports). ``~`` shows the last part only.
Also, a paragraph ending in the reStructuredText ``::`` (a literal block follows) ends in
``:``.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`<>]+)`")
LITERAL = re.compile(r"(\S)::$", re.MULTILINE)


def resolve(obj: Any, target: str) -> str | None:
    """The full path ``target`` names in ``obj``'s docstring, or ``None``."""
    if target.startswith("brittle."):
        return target
    if target.startswith("."):
        module = obj.module
        base = module.path if module.is_init_module else module.parent.path
        dots = len(target) - len(target.lstrip("."))
        for _ in range(dots - 1):
            base = base.rpartition(".")[0]
        return f"{base}.{target.lstrip('.')}"
    head, _, rest = target.partition(".")
    scope = obj if obj.is_class or obj.is_module else obj.parent
    try:
        found = scope.resolve(head)
    except Exception:  # griffe's NameResolutionError, or a scope it cannot search
        return None
    return f"{found}.{rest}" if rest else str(found)


def rewrite(obj: Any, text: str) -> str:
    """The docstring with every role as an optional autorefs reference."""

    def link(match: re.Match[str]) -> str:
        short, target = match.group(2) == "~", match.group(3).strip().removesuffix("()")
        title = target.rpartition(".")[2] if short else target.lstrip(".")
        if match.group(1) in ("func", "meth"):
            title += "()"
        full = resolve(obj, target)
        code = f"<code>{escape(title)}</code>"
        if full is None:
            return code
        return f'<autoref identifier="{escape(full)}" optional>{code}</autoref>'

    return LITERAL.sub(r"\1:", ROLE.sub(link, text))


def walk(obj: Any) -> None:
    """Rewrite the docstrings of ``obj`` and of every member it defines (not its aliases)."""
    if obj.docstring is not None:
        obj.docstring.value = rewrite(obj, obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            walk(member)


class SphinxRoles(griffe.Extension):
    """Sphinx roles in docstrings as links of the reference (see the module's docstring)."""

    def on_package(self, *, pkg: Any, **kwargs: Any) -> None:
        walk(pkg)
