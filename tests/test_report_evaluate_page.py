"""The HTML page of ``brittle evaluate``, read as text (no browser): its sections in order,
every figure embedded, user text escaped, the numbers it marks equal to ``report.json``, the
per-attack tables, the sanity checks by status without a warning shown twice, and the bound
with its gap. The browser's view of the same page is in ``test_report_browser``."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest
import torch
from torch import nn

from brittle import Classifier, ThreatModel
from brittle.attacks.fgsm import FGSM
from brittle.attacks.iterative import PGD
from brittle.eval import ResultStore, evaluate
from brittle.eval.runner import Evaluation, single_plan
from brittle.report import build_report, render_html, write_report
from brittle.report import html as report_html
from brittle.report.content import finite
from brittle.report.html import ReportFigures, _raw, json_pointer
from brittle.report.plots import adversarial_title, clean_title
from pagecheck import json_at

N, EPS = 24, [0.05, 0.2]
CLASSES = ["zero", "<b>one</b>", "two", "three"]
DOTTED = "pgd:step_size=0.01"
"""An attack label with a dot, which a dotted path could not address (a JSON Pointer can)."""
SECTIONS = ("summary", "curves", "results", "examples", "heatmaps", "sanity", "setting")
FIGURES = {
    "curves": "Robust accuracy against",
    "examples": "The first samples",
    "heatmaps": "Confusion",
}
"""The sections with a figure, and how its caption begins."""
CHECK_WARNING = "robust accuracy rises from 20% to 30%: try PGD with more steps"
ATTACK_COLUMNS = ("eps", "success_rate", "robust_accuracy", "robust_count", "robust_ci_low",
                  "robust_ci_high", "n", "mean_l2", "gradient_evaluations", "seconds")  # fmt: skip
"""The numbers each row of every table shows (the worst case's shows more)."""
OTHER_WARNING = "gradient masking suspected: FGSM <fails> & PGD on the margin succeeds"


class Claims(HTMLParser):
    """The elements of a page that carry ``data-json``: (path, data-value, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[tuple[str, str, str]] = []
        self._open: list[tuple[str, str]] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-json" in found:
            self._open.append((found["data-json"] or "", found.get("data-value") or ""))
            self._text = []

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open:
            path, value = self._open.pop()
            self.claims.append((path, value, "".join(self._text).strip()))


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    """FGSM and a 3-step PGD (labelled with a dot) on a small random model, two budgets."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4))
    classifier = Classifier(module)
    x = torch.rand(N, 1, 8, 8)
    y = classifier.predict(x)
    y[::4] = (y[::4] + 1) % 4
    plans = [
        single_plan(lambda e: FGSM(e), EPS[0]),
        replace(single_plan(lambda e: PGD(e, steps=3), EPS[0]), label=DOTTED),
    ]
    folder = tmp_path_factory.mktemp("store")
    with ResultStore(folder / "results.sqlite") as store:
        return evaluate(
            classifier, plans, (x, y), EPS, batch_size=8, store=store, run_key="r", progress=False
        )


def _confusion(evaluation: Evaluation) -> dict[str, Any]:
    matrix = [[0] * len(CLASSES) for _ in CLASSES]
    for label, pred in zip(evaluation.y.tolist(), evaluation.pred_adv[-1].tolist(), strict=True):
        matrix[label][pred] += 1
    return {"eps": EPS[-1], "classes": CLASSES, "matrix": matrix}


def _report(evaluation: Evaluation, **extra: Any) -> dict[str, Any]:
    """The report of ``evaluation`` with a model path to escape, the keys the lead's
    ``build_report`` adds made by hand (sanity checks of each status, environment,
    confusion, bound), and ``extra`` keys on top."""
    report = build_report(
        evaluation,
        threat=ThreatModel(eps=EPS[-1]),
        model={"arch": "tiny", "path": "/runs/<script>alert(1)</script>/m.pt", "defense": None},
        dataset={"name": "random & <noise>", "split": "test", "n": N},
        attack={"name": "worst case", "params": {}},
        attacks=[
            {"label": label, "key": key, "name": label.upper(), "params": {"norm": "linf"}}
            for label, key in evaluation.keys.items()
        ],
        run={"seed": 0},
        store={"path": "/runs/a<b>&c/results.sqlite", "schema_version": 2},
    )
    report["warnings"] = [CHECK_WARNING, OTHER_WARNING]
    report["sanity_checks"] = [
        {
            "name": "monotone",
            "title": "Robust accuracy does not rise with eps",
            "status": "warning",
            "message": CHECK_WARNING,
            "numbers": {"robust_low_eps": 0.2, "robust_high_eps": 0.3, "unknown": None},
        },
        {
            "name": "iterative",
            "title": "Iterative attacks at least as strong as single-step",
            "status": "passed",
            "message": "PGD breaks every sample FGSM breaks",
            "numbers": {"samples": N, "kind": "per sample"},
        },
        {
            "name": "restarts",
            "title": "Restarts do not help",
            "status": "not run",
            "message": "no attack with restarts",
            "numbers": {},
        },
    ]
    report["environment"] = {
        "brittle": "0.1.0",
        "python": "3.11",
        "torch": torch.__version__,
        "numpy": "2.0",
        "platform": "Linux-" + "x86_64" * 20,
        "device": "cpu",
        "threads": 1,
    }
    report["confusion"] = _confusion(evaluation)
    report["bound"] = {
        "norm": "l2",
        "method": "Theorem 1 at the median robustness",
        "note": "the bound holds on the generator's samples <not> on real images",
        "rows": [
            {"eps": EPS[0], "robust_accuracy_bound": 0.9},
            {"eps": EPS[1], "robust_accuracy_bound": 0.6},
            {"eps": 0.5, "robust_accuracy_bound": 0.1},
        ],
    }
    return {**report, **extra}


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, evaluation: Evaluation) -> tuple[str, Any]:
    """The page of :func:`_report` as written by ``brittle evaluate``, and its JSON."""
    paths = write_report(
        tmp_path_factory.mktemp("report"), _report(evaluation), evaluation, CLASSES
    )
    return paths.html.read_text(), json.loads(paths.json.read_text())


def _render(report: dict[str, Any]) -> str:
    """The page of ``report`` with one placeholder figure per section (no drawing)."""
    figure = [("a figure", b"png")]
    return render_html(finite(report), ReportFigures(figure, figure, figure))


def test_user_text_is_escaped(page: tuple[str, Any]) -> None:
    html, _ = page
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>one" not in html and "&lt;b&gt;one&lt;/b&gt;" in html  # a class name
    assert "random &amp; &lt;noise&gt;" in html and "a&lt;b&gt;&amp;c" in html
    assert "FGSM &lt;fails&gt; &amp; PGD" in html and "&lt;not&gt; on real images" in html


def test_the_sections_come_in_order_with_every_figure(page: tuple[str, Any]) -> None:
    html, _ = page
    positions = [html.index(f'<h2 id="{section}"') for section in SECTIONS]
    assert positions == sorted(positions)
    assert html.count("data:image/png;base64,") == html.count("<img ") == 3
    for section, caption in FIGURES.items():
        part = html.split(f'<h2 id="{section}"')[1].split("<h2 ")[0]
        assert part.count("<figure>") == 1 and f'alt="{caption}' in part, section


def test_without_confusion_or_bound_their_parts_are_left_out(
    evaluation: Evaluation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_html, "accuracy_curve", lambda report: b"curves")
    monkeypatch.setattr(report_html, "example_grid", lambda *args: b"grid")
    without = _report(evaluation)
    del without["confusion"], without["bound"]
    figures = report_html.report_figures(without, evaluation, CLASSES)
    assert figures.count == 2 and not figures.heatmaps
    html = render_html(finite(without), figures)
    assert html.count("<img ") == 2 and 'id="heatmaps"' not in html
    assert "How far from the bound" not in html and "no classifier can exceed" not in html


def test_every_marked_number_is_the_json_value(page: tuple[str, Any]) -> None:
    html, data = page
    parser = Claims()
    parser.feed(html)
    paths = {path for path, _, _ in parser.claims}
    for path, value, text in parser.claims:
        expected = json_at(data, path)
        if expected is None:
            assert math.isnan(float(value)) and text == "n/a", path
        else:
            assert float(value) == pytest.approx(expected, rel=1e-12, abs=0), path
    for i in range(len(EPS)):
        for key in (*ATTACK_COLUMNS, "clean_accuracy", "mean_l0", "nonfinite_outputs"):
            assert f"/results/{i}/{key}" in paths
        for key in ATTACK_COLUMNS:
            assert f"/per_attack/FGSM/{i}/{key}" in paths
            assert f"/per_attack/{DOTTED}/{i}/{key}" in paths
        for label in ("FGSM", DOTTED):
            assert f"/results/{i}/broken_by/{label}" in paths
            assert f"/results/{i}/broken_alone/{label}" in paths
        assert f"/bound/rows/{i}/robust_accuracy_bound" in paths
    assert (
        "/sanity_checks/0/numbers/unknown" in paths and "/sanity_checks/1/numbers/samples" in paths
    )
    assert {f"/confusion/matrix/{i}/{i}" for i in range(len(CLASSES))} <= paths


def test_the_summary_gives_robust_accuracy_with_its_interval(page: tuple[str, Any]) -> None:
    html, data = page
    top = data["results"][-1]
    summary = html.split('<h2 id="summary"')[1].split('<h2 id="curves"')[0]
    ci = f"{100 * top['robust_ci_low']:.1f}%</span>&ndash;"
    assert ci in summary and f">{top['robust_count']}</span> of <span" in summary
    assert f">{100 * top['robust_accuracy']:.1f}%<" in summary
    assert "misclassification" in summary and "2 warnings" in summary


def test_each_attack_has_its_own_table(page: tuple[str, Any]) -> None:
    html, data = page
    own = html.split('<h3 id="per-attack">')[1].split('<h2 id="examples"')[0]
    for label in ("FGSM", DOTTED):
        assert f"<h4>{label}</h4>" in own
        table = own.split(f"<h4>{label}</h4>")[1].split("</table>")[0]
        assert table.count("<tr>") == 1 + len(EPS)
        robust = data["per_attack"][label][-1]["robust_accuracy"]
        assert f">{100 * robust:.1f}%<" in table
    broken = html.split('<h3 id="broken-by">')[1].split("</table>")[0]
    assert "broken by FGSM: first / alone" in broken and f"broken by {DOTTED}: first" in broken
    assert broken.count("<tr>") == 1 + len(EPS)


def test_sanity_checks_by_status_and_no_warning_twice(
    page: tuple[str, Any], evaluation: Evaluation
) -> None:
    html, _ = page
    assert html.count("robust accuracy rises from 20% to 30%") == 1
    assert html.count("gradient masking suspected: FGSM") == 1
    sanity = html.split('<h2 id="sanity"')[1].split('<h2 id="setting"')[0]
    warning = sanity.split('<div class="check warn">')[1].split("</div>")[0]
    assert "Warning: Robust accuracy does not rise with eps" in warning
    assert "robust_low_eps = <span" in warning
    rows = sanity.split("<table>")[1]
    assert '<tr class="passed">' in rows and "PGD breaks every sample FGSM breaks" in rows
    assert '<tr class="notrun">' in rows and "no attack with restarts" in rows
    assert "Robust accuracy does not rise" not in rows  # the warning is shown once, above
    assert "kind = per sample" in sanity and "unknown = <span" in sanity
    assert 'href="#sanity"' in html
    passing = _report(evaluation, warnings=[])
    passing["sanity_checks"] = [c for c in passing["sanity_checks"] if c["status"] != "warning"]
    html = _render(passing)
    assert "All 1 sanity checks that ran passed (1 not run)" in html and "Warning:" not in html
    none_ran = _report(evaluation, warnings=[])
    none_ran["sanity_checks"] = none_ran["sanity_checks"][2:]
    assert "No sanity check ran (1 could not)" in _render(none_ran)


def test_the_bound_beside_the_measure_with_its_gap(page: tuple[str, Any]) -> None:
    html, data = page
    bound = html.split("How far from the bound")[1].split("</table>")[0]
    for i, row in enumerate(data["results"]):
        gap = data["bound"]["rows"][i]["robust_accuracy_bound"] - row["robust_accuracy"]
        assert f"{100 * gap:+.1f} points" in bound
    assert "not measured" in bound  # the bound's third budget was not evaluated
    assert "Fawzi, Fawzi &amp; Fawzi 2018, Theorem 1" in html


def test_the_setting_names_the_environment(page: tuple[str, Any]) -> None:
    html, _ = page
    setting = html.split('<h2 id="setting"')[1]
    for key in ("brittle", "python", "torch", "numpy", "platform", "device", "threads"):
        assert f"<dt>{key}</dt>" in setting
    assert "<dt>store path</dt>" in setting and "<dt>run key</dt>" in setting


def test_image_titles_give_labels_and_confidences() -> None:
    assert clean_title("7", "7", 0.994) == ("label 7, 99%", "#333333")
    text, color = clean_title("7", "1", 0.6)
    assert text == "label 7\npred 1, 60%" and color != "#333333"
    assert clean_title("7", "7", math.nan)[0] == "label 7"  # confidence not known
    assert adversarial_title("3", 0.87, True) == ("pred 3, 87%", "#c0392b")
    assert adversarial_title("3", 0.87, False)[1] == "#333333"
    assert adversarial_title("airplane", 0.5, True)[0] == "pred airplane\n50%"  # a long name


def test_marked_values_are_exact_and_paths_addressable() -> None:
    for value in (0.1, 0.10000000149011612, 1e-300, 2 / 3):
        assert float(_raw(value)) == value and "0.1000000" not in _raw(value)
    assert _raw(None) == "nan" and _raw(math.inf) == "nan" and _raw(7) == "7"
    assert json_pointer("per_attack", DOTTED, 0, "eps") == f"/per_attack/{DOTTED}/0/eps"
    odd = {"a/b~c": [0, {"": 5}]}  # RFC 6901's escapes, and an empty key
    assert json_pointer("a/b~c", 1, "") == "/a~1b~0c/1/"
    assert json_at(odd, json_pointer("a/b~c", 1, "")) == 5
