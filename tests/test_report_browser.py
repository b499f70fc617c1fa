"""The HTML pages in a real browser (headless Chromium through Playwright, see ``pagecheck``):
they load without console errors, every image decodes, nothing overflows the page at a
desktop or a phone's width, no element is empty, and the numbers the page shows are those of
its JSON. Skipped, saying why, only where no Chromium can be found (``make test`` installs
Debian's package when it can)."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure as MplFigure

from brittle import tasks
from brittle.data import load_dataset
from brittle.generators import VAE, save_generator, train_generator
from brittle.report.plots import to_png
from brittle.reproduce.report import Figure, Reproduction, Row, write_reproduction
from pagecheck import browser_path, check_page, json_at

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        browser_path() is None,
        reason="no Chromium on this machine (install Debian's chromium, as `make test` does "
        "when it runs as root, or set BRITTLE_CHROMIUM to a Chromium executable)",
    ),
]


def _png() -> bytes:
    fig = MplFigure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return to_png(fig)


def assert_claims_match(checks: list[Any], data: dict[str, Any]) -> None:
    """Every number the page marks with ``data-json`` equals the JSON's value there (``n/a``
    and a JSON ``null`` for infinite or undefined values); at least one is marked."""
    for check in checks:
        assert check.claims, "the page marks none of its numbers with data-json"
        for claim in check.claims:
            expected = json_at(data, claim["path"])
            shown = float(claim["value"])
            if expected is None:
                assert not math.isfinite(shown) and claim["text"] == "n/a", claim
            else:
                assert shown == pytest.approx(expected, rel=1e-9, abs=1e-12), claim


def test_a_reproduction_page_reads_well_in_a_browser(tmp_path: Path) -> None:
    long_name = "a-very-long-model-name-without-spaces-" * 6
    repro = Reproduction(
        name="demo",
        paper={"title": "A paper <with> markup & entities", "authors": "A. B.", "venue": "X"},
        setting={
            "data": {"name": "digits", "path": long_name},
            "models": {"a": {"accuracy": 0.9, "epochs": 2}, "b": {"accuracy": 0.8}},
            "differences": ["one", "two"],
        },
        rows=[
            Row("a_error", "error of a", 0.1, 0.125),
            Row("a_norm", "a norm", None, 1.5, fraction=False, note="measured"),
            Row("undefined", "a quantity with no value", None, math.nan),
        ],
        figures=[Figure("a figure", _png())],
    )
    paths = write_reproduction(tmp_path, repro, ["a_error", "a_norm", "undefined"])
    checks = check_page(paths.html)
    for check in checks:
        assert check.problems() == [], check.width
        assert len(check.images) == 1
    assert_claims_match(checks, json.loads(paths.json.read_text()))


def test_the_bound_page_reads_well_in_a_browser(tmp_path: Path) -> None:
    train = load_dataset("digits", "train")
    gen = VAE(8, train.input_shape)
    train_generator(gen, train.x, epochs=1, progress=False)
    generator = save_generator(tmp_path / "vae.pt", gen, {"dataset": "digits"})
    model = tasks.train(dataset="digits", epochs=1, out=tmp_path / "m.pt", progress=False).path
    outcome = tasks.bound(
        generator=generator,
        model=model,
        json_path=tmp_path / "bound.json",
        n=16,
        n_samples=500,
        theorem2=4,
        second_model=model,
    )
    checks = check_page(outcome.html)
    for check in checks:
        assert check.problems() == [], check.width
        assert len(check.images) == 5
    assert_claims_match(checks, json.loads(outcome.json.read_text()))


def test_the_evaluate_page_reads_well_in_a_browser(tmp_path: Path) -> None:
    """A real evaluation (two attacks, two budgets) of a model whose path needs escaping:
    the page loads cleanly at every width, each figure decodes, and its numbers are the
    JSON's."""
    folder = tmp_path / "a<b>&c"
    try:
        folder.mkdir()
    except OSError:  # a file system that refuses such names
        folder = tmp_path / "plain"
        folder.mkdir()
    model = tasks.train(dataset="digits", epochs=1, out=folder / "m.pt", progress=False).path
    outcome = tasks.evaluate_model(
        model=model,
        out=tmp_path / "ev",
        dataset="digits",
        eps_list=[0.1, 0.3],
        attacks=["fgsm", "pgd:steps=5"],
        n=64,
        progress=False,
    )
    data = json.loads(outcome.paths.json.read_text())
    page = outcome.paths.html.read_text()
    if "<" in str(model):
        assert str(model) not in page and escape(str(model), quote=False) in page
    figures = 2 + ("confusion" in data)  # curves, image grid, and the heatmap when given
    checks = check_page(outcome.paths.html)
    for check in checks:
        assert check.problems() == [], check.width
        assert len(check.images) == figures and not check.broken_images
        paths = {claim["path"] for claim in check.claims}
        for key in ("robust_accuracy", "robust_ci_low", "robust_ci_high", "robust_count"):
            assert {f"/results/{i}/{key}" for i in range(2)} <= paths, key
    assert_claims_match(checks, data)
