"""Every Python example of the README and of the documentation runs as it is written.

Each page's ```` ```python ```` blocks are extracted and executed in order, in one namespace
per page (a later block uses what an earlier one made), in a fresh folder (the files an
example writes land there). The examples are written to be quick: small tensors and models,
or the bundled ``digits``; command lines go in ```` ```console ```` blocks, which are not run.
A fence whose language would look like Python to a reader but escape this test (``py``,
``python3``, ``pycon``...) is refused.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
RUN = "python"
NOT_RUN = frozenset({"console", "text", "json", "yaml", "toml", "ini", "sql", "html", ""})
LOOKS_LIKE_PYTHON = frozenset({"py", "python3", "pycon", "ipython", "pytb", "python console"})

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its code and the line its code starts on."""

    language: str
    code: str
    line: int


def pages() -> list[Path]:
    """The README and every page under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order (indented fences are not blocks here:
    a fence opens at the start of a line)."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start(2)) + 1
        found.append(Block(match.group(1).strip().lower(), match.group(2), line))
    return found


def runnable() -> list[Path]:
    return [p for p in pages() if any(b.language == RUN for b in blocks(p))]


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_extractor_reads_fences_as_a_reader_sees_them(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text\n\n```python\nx = 1\n```\n\n```console\n$ brittle --version\n```\n\n"
        "```python\ny = x + 1\nassert y == 2\n```\n"
    )
    found = blocks(page)
    assert [(b.language, b.line) for b in found] == [("python", 4), ("console", 8), ("python", 12)]
    assert found[2].code == "y = x + 1\nassert y == 2\n"


def test_every_fence_is_run_or_plainly_not_python() -> None:
    for path in pages():
        for block in blocks(path):
            where = f"{name(path)}:{block.line}"
            assert block.language not in LOOKS_LIKE_PYTHON, (
                f"{where}: a ```{block.language} block is never run; write ```python "
                "(it runs in tests/test_docs_examples.py) or ```console for command lines"
            )
            assert block.language == RUN or block.language in NOT_RUN, (
                f"{where}: ```{block.language} is not a language the docs use; "
                f"use python, or one of {sorted(NOT_RUN - {''})}"
            )


def test_there_are_examples_to_run() -> None:
    assert ROOT / "README.md" in runnable()
    assert len(runnable()) >= 10


# pages whose examples write an evaluation's report (matplotlib's figures take most of their
# time) or train a generator and search robustness on it: in the slow tier, still in make test
SLOW = frozenset(
    {
        "README.md",
        "docs/guides/your-model-and-data.md",
        "docs/evaluation/engine.md",
        "docs/bounds/index.md",
        "docs/bounds/estimators.md",
    }
)


def cases() -> list[object]:
    return [
        pytest.param(p, id=name(p), marks=[pytest.mark.slow] if name(p) in SLOW else [])
        for p in runnable()
    ]


@pytest.mark.parametrize("path", cases())
def test_the_examples_of_a_page_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # what the examples write lands here
    monkeypatch.syspath_prepend(str(tmp_path))  # a module an example writes can be imported
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the page's namespace is a module's, as a script's is: a class defined in an example
    # finds its module (dataclasses and annotations evaluated later look it up there)
    page = types.ModuleType("docs_example")
    monkeypatch.setitem(sys.modules, page.__name__, page)
    for block in blocks(path):
        if block.language != RUN:
            continue
        where = f"{name(path)}, the block at line {block.line}"
        code = compile(block.code, where, "exec")
        try:
            exec(code, page.__dict__)
        except Exception as err:
            raise AssertionError(f"{where} fails: {type(err).__name__}: {err}") from err
