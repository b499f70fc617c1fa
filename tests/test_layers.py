"""The package's layers import downwards only: no module under ``brittle`` reads the
package's top (``brittle/__init__.py``, which imports the layers above it), except the entry
points of the command line; and the concepts the design review named have one home each."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import brittle

SRC = Path(brittle.__file__).parent
ENTRY_POINTS = {"__init__.py", "__main__.py"}


def _top_imports(path: Path) -> list[str]:
    """The names ``path`` takes from the package's top: ``import brittle`` or ``from brittle
    import X`` where X is not a submodule."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name == "brittle" for a in node.names):
            found.append("import brittle")
        if isinstance(node, ast.ImportFrom) and node.module == "brittle" and node.level == 0:
            for alias in node.names:
                if importlib.util.find_spec(f"brittle.{alias.name}") is None:
                    found.append(f"from brittle import {alias.name}")
    return found


def test_no_layer_imports_the_package_top() -> None:
    offenders = {
        str(path.relative_to(SRC)): names
        for path in SRC.rglob("*.py")
        if path.name not in ENTRY_POINTS
        and path.parent.name != "cli"
        and (names := _top_imports(path))
    }
    assert not offenders


def test_the_concepts_have_one_home_each() -> None:
    """The modules the design review found doubled or misplaced are gone from their old
    places: the zoo is not ``models/`` beside ``model.py``, the checks are not in ``eval/``
    or ``metrics/``."""
    for gone in (
        "models",
        "eval/sanity.py",
        "eval/probes.py",
        "eval/defended.py",
        "metrics/masking.py",
    ):
        assert not (SRC / gone).exists(), gone
    for home in (
        "checks/probes.py",
        "checks/sweep.py",
        "checks/masking.py",
        "zoo",
        "loading",
        "validation.py",
    ):
        assert (SRC / home).exists(), home
