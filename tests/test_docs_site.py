"""The documentation site: what it generates from the code covers the code, it builds with
``mkdocs build --strict`` (warnings are errors: a broken link, anchor or marker fails), and its
pages open in headless Chromium without a console error or a broken image.

The build is skipped, saying why, only where MkDocs is not installed (``make test`` installs
the ``docs`` extra); the browser check, where no Chromium can be found (see ``pagecheck``).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from brittle.attacks.registry import attack_names
from brittle.cli.commands import build_parser
from pagecheck import browser_path, check_pages

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HAVE_MKDOCS = all(
    importlib.util.find_spec(m) is not None
    for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
)
NO_MKDOCS = "MkDocs is not installed (pip install -e '.[docs]', as make test does)"


def markers(kind: str) -> set[str]:
    """The names the docs' ``<!-- KIND: NAME -->`` markers ask for."""
    pattern = re.compile(rf"^ *<!-- {kind}: *([^ ]+) -->$", re.MULTILINE)
    found: set[str] = set()
    for page in DOCS.rglob("*.md"):
        found.update(pattern.findall(page.read_text(encoding="utf-8")))
    return found


# ------------------------------------------------------------------ the generated parts cover the code
def test_every_registered_attack_has_its_generated_parameter_table() -> None:
    missing = sorted(set(attack_names()) - markers("params"))
    assert not missing, f"no <!-- params: NAME --> marker in docs/attacks/ for {missing}"


def test_every_results_file_is_read_into_the_site() -> None:
    results = {p.stem for p in (ROOT / "benchmarks" / "results").glob("*.md")}
    missing = sorted(results - markers("benchmark"))
    assert not missing, f"no <!-- benchmark: NAME --> marker in docs/ for {missing}"


def test_every_command_has_its_generated_reference() -> None:
    parser = build_parser()
    commands = next(a.choices for a in parser._actions if isinstance(a.choices, dict))
    missing = sorted(set(commands) - markers("cli"))
    assert not missing, f"no <!-- cli: COMMAND --> marker in docs/reference/cli.md for {missing}"


def test_the_hooks_generate_from_the_declarations() -> None:
    sys.path.insert(0, str(DOCS))
    try:
        import hooks
    finally:
        sys.path.remove(str(DOCS))
    table = hooks.params_table("jsma")
    assert table.startswith("`JSMA(eps=0.145, theta=1.0,"), table.splitlines()[0]
    assert "| `eps` | float | `0.145` | a number >= 0 and <= 1 | `--eps` |" in table
    assert "`MIFGSM(eps, steps=10, step_size=None, decay=1.0, targeted=False)`" in (
        hooks.params_table("mifgsm")
    )
    assert "| `targeted` | bool | `False` | true or false | not on the command line |" in (
        hooks.params_table("mifgsm")
    )
    assert "usage: brittle compare" in hooks.cli_help("compare")
    assert "| `white_box` |" in hooks.capabilities() and "`pgd`" in hooks.capabilities()
    with pytest.raises(hooks.MarkerError, match="unknown attack"):
        hooks.params_table("no-such-attack")
    with pytest.raises(hooks.MarkerError, match="no results file"):
        hooks.benchmark("no-such-results")
    with pytest.raises(hooks.MarkerError, match="no command 'nope'"):
        hooks.cli_help("nope")


def test_the_readme_stays_what_a_newcomer_reads_in_five_minutes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 200, "the README grew past 200 lines: move it to docs/"
    for needed in ("make demo", "make test", "make docs", "site/index.html"):
        assert needed in readme, needed


def test_the_readme_capability_table_is_what_evaluate_runs() -> None:
    """Each row's attacks, in order, are the suite ``--capability`` expands to on images."""
    from brittle.eval.suite import STANDARD, suite_attacks
    from brittle.threat import Capability

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = {"APGD-CE": "apgd", "APGD-T": "apgd-t", "FAB-T": "fab-t", "Square": "square",
             "SimBA": "simba", "HopSkipJump": "hopskipjump", "RayS": "rays",
             "a substitute": "substitute"}  # fmt: skip
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|$", readme, re.MULTILINE)
    assert len(rows) == 5
    for capability, runs in rows:
        said = [names[m] for m in re.findall("|".join(map(re.escape, names)), runs)]
        suite = suite_attacks(STANDARD, "linf", Capability[capability.upper()], (1, 28, 28),
                              data="mnist")  # fmt: skip
        assert said == [a.name for a in suite], capability


# ------------------------------------------------------------------ the strict build, in a browser
def build(out: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the repository's site into ``out``."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's banner about its future
        capture_output=True,
        text=True,
        timeout=900,
    )


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """The folder served over HTTP on a free local port (the site's search runs a web
    worker, which a ``file://`` page may not start); its address."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_MKDOCS, reason=NO_MKDOCS)
def test_the_site_builds_with_warnings_as_errors_and_opens_in_a_browser(tmp_path: Path) -> None:
    """One test, so that a parallel run builds the site once."""
    site = tmp_path / "site"
    done = build(site)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    gradient = (site / "attacks" / "gradient.html").read_text(encoding="utf-8")
    assert "MIFGSM(eps, steps=10, step_size=None, decay=1.0, targeted=False)" in gradient
    benchmarks = (site / "benchmarks.html").read_text(encoding="utf-8")
    peers = (ROOT / "benchmarks" / "results" / "peers.md").read_text(encoding="utf-8")
    first_row = next(line for line in peers.splitlines() if line.startswith("| FGSM"))
    assert first_row.split("|")[3].strip() in benchmarks  # the table read, not retyped
    reference = (site / "reference" / "attacks.html").read_text(encoding="utf-8")
    assert ":class:`" not in reference  # Sphinx roles rewritten as links or code
    assert 'href="core.html#brittle.errors.InputError"' in reference

    if browser_path() is None:
        pytest.skip(
            "the strict build passed; no Chromium to open it in (install Debian's chromium, as "
            "`make test` does when it runs as root, or set BRITTLE_CHROMIUM)"
        )
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if p.name != "404.html")
    assert len(pages) >= len(list(DOCS.rglob("*.md")))  # every page of the docs was built
    with serve(site) as address:
        seen = check_pages([f"{address}/{page}" for page in pages], widths=(1280,))
    problems = {
        page: [f"console: {e}" for e in check.console_errors]
        + [f"image does not decode: {alt}" for alt in check.broken_images]
        for page, (check,) in zip(pages, seen, strict=True)
    }
    assert not {page: found for page, found in problems.items() if found}
