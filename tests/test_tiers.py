"""The measured slow tier (tests/slow_tests.txt) names only files and tests that exist, once
each, so that a renamed or deleted test cannot leave a stale line behind (and a renamed slow
test is not silently moved to the fast tier without the list saying so)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO, SLOW_TESTS, slow_entries


def _test_names(path: Path) -> set[str]:
    """The test functions of a file: ``test_x`` and ``TestClass::test_x``."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for inner in node.body:
                if isinstance(inner, ast.FunctionDef) and inner.name.startswith("test"):
                    names.add(f"{node.name}::{inner.name}")
    return names


def test_every_slow_entry_names_an_existing_test_once() -> None:
    entries = slow_entries()
    assert len(entries) == len(set(entries)), "an entry is repeated"
    for entry in entries:
        file, _, test = entry.partition("::")
        path = REPO / file
        assert file.startswith("tests/test_") and path.is_file(), f"{entry}: no such test file"
        if test:
            assert test in _test_names(path), f"{entry}: no such test in {file}"


def test_the_entries_mark_the_tests_slow(request: pytest.FixtureRequest) -> None:
    """This run's collected tests that an entry names carry the ``slow`` marker."""
    entries = set(slow_entries())
    for item in request.session.items:
        test = item.nodeid.partition("[")[0]
        if test in entries or test.partition("::")[0] in entries:
            assert item.get_closest_marker("slow") is not None, item.nodeid
    assert SLOW_TESTS.read_text().startswith("# The slow tier")
