"""The report and the outputs for colour images and suites: the perturbation drawn in
colour, tick labels that never run together, budgets shown as written (``8/255``), a suite's
later attacks named "after the earlier attacks" with their n, ``samples.csv``'s
``counted_success`` whose mean is the reported success rate, tables that fit a 1280-pixel
page, the check of the clean accuracy against the recorded one, and progress written to a
log when standard error is not a terminal."""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from torch import Tensor, nn

from brittle import Classifier, ThreatModel
from brittle.attacks.fgsm import FGSM
from brittle.attacks.iterative import PGD
from brittle.checks.outcome import NOT_RUN, PASSED, WARNING
from brittle.checks.sweep import RECORDED_MARGIN
from brittle.checks.sweep import recorded_accuracy_check as recorded_check
from brittle.eval import ResultStore, evaluate
from brittle.eval.runner import Evaluation, Examples, single_plan
from brittle.eval.tables import SAMPLE_TABLE_COLUMNS, export_tables
from brittle.progress import LogProgress, show_progress
from brittle.report import build_report, write_report
from brittle.report import plots as report_plots
from brittle.report.content import eps_label, eps_labels
from brittle.report.html import report_figures
from pagecheck import browser_path, check_page

pytestmark = pytest.mark.usefixtures("one_thread")

N = 40
EPS = [8 / 255, 64 / 255]
EPS_TEXT = ["8/255", "64/255"]
LATER = "pgd:steps=3 (on those standing)"
"""The label of the suite's second attack, run on the samples the first left standing."""
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CROWDED = [1 / 255, 2 / 255, 3 / 255, 4 / 255, 6 / 255, 8 / 255, 12 / 255, 16 / 255]
"""Budgets crowded at the small end of the axis, whose labels would run together."""


def _evaluate(classifier: Classifier, plans: list[Any], x: Tensor, y: Tensor, folder: Path) -> Any:
    with ResultStore(folder / "results.sqlite") as store:
        evaluation = evaluate(
            classifier, plans, (x, y), EPS, batch_size=16, store=store, run_key="r", progress=False
        )
        export_tables(store, evaluation, folder)
    return evaluation


@pytest.fixture(scope="module")
def colour(tmp_path_factory: pytest.TempPathFactory) -> tuple[Evaluation, Path]:
    """FGSM on every sample, then PGD on those still standing, on 3x8x8 colour inputs of a
    small random model (every fourth sample misclassified before the attack); the tables
    exported into the returned folder."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 16), nn.Tanh(), nn.Linear(16, 4))
    classifier = Classifier(module)
    x = torch.rand(N, 3, 8, 8)
    y = classifier.predict(x)
    y[::4] = (y[::4] + 1) % 4
    plans = [
        single_plan(lambda e: FGSM(e), EPS[0]),
        replace(single_plan(lambda e: PGD(e, steps=3), EPS[0]), label=LATER, survivors_only=True),
    ]
    folder = tmp_path_factory.mktemp("colour")
    return _evaluate(classifier, plans, x, y, folder), folder


def _report(evaluation: Evaluation, eps_text: list[str] | None = EPS_TEXT) -> dict[str, Any]:
    return build_report(
        evaluation,
        threat=ThreatModel(eps=EPS[-1]),
        model={"arch": "tiny colour net", "accuracy": 0.75},
        dataset={"name": "random colour", "split": "test", "n": N},
        attack={"name": "worst case", "params": {}},
        attacks=[
            {
                "label": label,
                "key": key,
                "name": label,
                "params": {"norm": "linf"},
                "survivors_only": label == LATER,
            }
            for label, key in evaluation.keys.items()
        ],
        eps_text=eps_text,
    )


def _boxes(fig: Figure, labels: list[Any]) -> list[Bbox]:
    """The drawn boxes of the non-empty tick labels, from matplotlib's own renderer."""
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]


def _overlaps(boxes: list[Bbox]) -> list[tuple[int, int]]:
    return [
        (i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j and a.overlaps(b)
    ]


def _curve_report(eps: list[float], eps_text: list[str] | None) -> dict[str, Any]:
    rows = [
        {
            "eps": e,
            "clean_accuracy": 0.9,
            "robust_accuracy": 0.9 - 0.05 * i,
            "robust_ci_low": 0.8 - 0.05 * i,
            "robust_ci_high": 0.95 - 0.05 * i,
            "success_rate": 0.05 * i,
        }
        for i, e in enumerate(eps)
    ]
    threat: dict[str, Any] = {"norm": "linf", "eps_list": eps}
    if eps_text is not None:
        threat["eps_text"] = eps_text
    return {
        "per_attack": {"PGD": rows},
        "results": rows,
        "attack": {"name": "PGD"},
        "threat_model": threat,
        "confidence": {"level": 0.95},
    }


# --- the perturbation in colour ---------------------------------------------------------


def _examples(channels: int) -> Examples:
    torch.manual_seed(1)
    clean = torch.rand(3, channels, 6, 6)
    adversarial = (clean + 0.05 * torch.randn_like(clean)).clamp(0, 1)
    ones = torch.ones(3)
    return Examples(
        [0, 1, 2],
        torch.tensor([0, 1, 2]),
        torch.tensor([0, 1, 2]),
        ones,
        torch.tensor([1, 1, 2]),
        ones,
        torch.tensor([True, True, False]),
        clean,
        adversarial,
    )


def test_a_colour_perturbation_is_an_rgb_image_centred_on_gray() -> None:
    examples = _examples(3)
    fig = report_plots.example_figure([EPS[0]], [examples], ["a", "b", "c"], ["8/255"])
    assert fig is not None
    axes = fig.axes
    delta = (examples.adversarial - examples.clean).numpy()
    for k in range(3):  # row 0 clean, row 1 adversarial, row 2 perturbation
        shown = np.asarray(axes[6 + k].get_images()[0].get_array())
        assert shown.shape == (6, 6, 3)
        scale = np.abs(delta[k]).max()
        assert np.allclose(shown, 0.5 + delta[k].transpose(1, 2, 0) / (2 * scale))
        assert (
            shown.min() >= 0
            and shown.max() <= 1
            and math.isclose(np.abs(shown - 0.5).max(), 0.5, rel_tol=1e-6)
        )  # the largest change reaches black or white
        clean = np.asarray(axes[k].get_images()[0].get_array())
        assert clean.shape == (6, 6, 3)
    assert "eps=8/255" in axes[3].get_ylabel()
    gray = report_plots.example_figure([EPS[0]], [_examples(1)], ["a", "b", "c"])
    assert gray is not None
    assert np.asarray(gray.axes[6].get_images()[0].get_array()).ndim == 2  # diverging map
    image, scale = report_plots.colour_perturbation(np.zeros((3, 2, 2)))
    assert scale == 0 and (image == 0.5).all()


def test_the_caption_says_how_a_colour_perturbation_is_drawn(
    colour: tuple[Evaluation, Path],
) -> None:
    evaluation, _ = colour
    figures = report_figures(_report(evaluation), evaluation, ["0", "1", "2", "3"])
    ((caption, _),) = figures.examples
    assert "in colour: 0.5 + delta / (2 max |delta|) per image" in caption
    assert "mid-gray is no change" in caption


# --- tick labels and budgets as written -------------------------------------------------


@pytest.mark.parametrize("eps_text", [[f"{round(e * 255)}/255" for e in CROWDED], None])
def test_budget_tick_labels_never_run_together(
    eps_text: list[str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _curve_report(CROWDED, eps_text)
    fig = report_plots.accuracy_figure(report)
    for ax in fig.axes[:2]:
        labels = ax.get_xticklabels()
        assert not _overlaps(_boxes(fig, labels))
        shown = [t.get_text() for t in labels if t.get_text()]
        assert shown[0] == "0" and shown[-1] == (eps_text[-1] if eps_text else "0.06275")
        assert all(len(t.replace("0.", "")) <= 6 for t in shown)  # at most 4 digits
    # the same figure without the separation: the labels do run together
    monkeypatch.setattr(report_plots, "separate_tick_labels", lambda fig, axes: None)
    crowded = report_plots.accuracy_figure(report)
    assert _overlaps(_boxes(crowded, crowded.axes[0].get_xticklabels()))


@pytest.mark.parametrize("classes", [CIFAR, [f"class {i}" for i in range(100)]])
def test_class_names_on_the_heatmap_never_run_together(classes: list[str]) -> None:
    k = len(classes)
    confusion = {"eps": EPS[-1], "classes": classes, "matrix": np.eye(k, dtype=int).tolist()}
    fig = report_plots.confusion_figure(confusion, "8/255")
    ax = fig.axes[0]
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        boxes = _boxes(fig, labels)
        assert boxes and not _overlaps(boxes)
    assert ax.get_title().startswith("eps = 8/255")


def test_budgets_are_shown_as_written_else_to_four_digits(
    colour: tuple[Evaluation, Path],
) -> None:
    evaluation, _ = colour
    report = _report(evaluation)
    assert report["threat_model"]["eps_text"] == EPS_TEXT
    labels = eps_labels(report)
    assert [eps_label(labels, e) for e in EPS] == EPS_TEXT
    assert eps_label(labels, 0.0313725490196) == "8/255"  # as JSON may round it
    plain = eps_labels(_report(evaluation, eps_text=None))
    assert [eps_label(plain, e) for e in EPS] == ["0.03137", "0.251"]
    assert eps_label(plain, math.nan) == "n/a"
    with pytest.raises(Exception, match="one text for each of the 2 budgets"):
        _report(evaluation, eps_text=["8/255"])


# --- a suite's later attacks, samples.csv ----------------------------------------------


def test_a_later_suite_attack_is_after_the_earlier_ones_with_its_n(
    colour: tuple[Evaluation, Path], tmp_path: Path
) -> None:
    evaluation, _ = colour
    report = _report(evaluation)
    paths = write_report(tmp_path, report, evaluation, ["0", "1", "2", "3"])
    html = paths.html.read_text()
    data = json.loads(paths.json.read_text())
    own = html.split('<h3 id="per-attack">')[1].split('<h2 id="examples"')[0]
    assert "<h4>FGSM</h4>" in own and f"<h4>{LATER}: after the earlier attacks</h4>" in own
    assert "ran only on the samples still standing after the attacks listed before it" in own
    for i in range(len(EPS)):
        standing = data["results"][i]["robust_after"]["FGSM"]["robust_accuracy"] * N
        n = data["per_attack"][LATER][i]["n"]
        assert n == round(standing) < N and data["per_attack"]["FGSM"][i]["n"] == N
        assert f'data-json="/per_attack/{LATER}/{i}/n" data-value="{n}">{n}<' in own
        assert f'data-json="/results/{i}/robust_after/{LATER}/robust_accuracy"' in own
    for i, text in enumerate(EPS_TEXT):  # each budget as written, never 0.0313725
        assert re.search(f'data-json="/results/{i}/eps" data-value="[^"]+">{text}<', html)
        assert re.search(f'data-json="/per_attack/FGSM/{i}/eps" data-value="[^"]+">{text}<', own)
    assert "adversarial input at eps = <span" in html and "up to eps = 64/255." in html


def test_the_mean_of_counted_success_is_the_reported_success_rate(
    colour: tuple[Evaluation, Path],
) -> None:
    pd = pytest.importorskip("pandas")
    evaluation, folder = colour
    frame = pd.read_csv(folder / "samples.csv")
    assert tuple(frame.columns) == SAMPLE_TABLE_COLUMNS
    for (label, eps), rows in frame.groupby(["attack_name", "eps"]):
        i = min(range(len(EPS)), key=lambda j: abs(EPS[j] - eps))
        reported = evaluation.per_attack[label][i]["success_rate"]
        assert rows["counted_success"].mean() == pytest.approx(reported, rel=1e-6), label
        assert rows["counted_success"].count() == round(
            evaluation.per_attack[label][i]["n"] * evaluation.per_attack[label][i]["clean_accuracy"]
        )
    fgsm = frame[frame["attack_name"] == "FGSM"]
    wrong = fgsm[fgsm["pred_clean"] != fgsm["y"]]
    assert len(wrong) and wrong["success"].all() and wrong["counted_success"].isna().all()
    assert fgsm["success"].mean() > fgsm["counted_success"].mean()  # the old column overstates
    records = json.loads((folder / "samples.json").read_text())
    assert [r["counted_success"] for r in records] == [
        None if pd.isna(v) else int(v) for v in frame["counted_success"]
    ]


# --- tables that fit the page --------------------------------------------------------------

_TABLE_SCRIPT = """
() => Array.from(document.querySelectorAll('table')).map(t => {
  const box = t.closest('.scroll') || t.parentElement;
  return {head: (t.querySelector('tr') || t).textContent.trim().slice(0, 40),
          scroll: box.scrollWidth, client: box.clientWidth};
})
"""


@pytest.mark.skipif(browser_path() is None, reason="no Chromium on this machine")
def test_every_table_fits_a_1280_pixel_page(
    colour: tuple[Evaluation, Path], tmp_path: Path
) -> None:
    """The page of a suite with long attack labels and large counts (the widest numbers a
    table shows): no table scrolls sideways at 1280 pixels, nothing overflows at 1280 or
    400 pixels (a table may scroll in its own box on a phone)."""
    from playwright.sync_api import sync_playwright

    evaluation, _ = colour
    report = _report(evaluation)
    for rows in (report["results"], *report["per_attack"].values()):
        for row in rows:
            row.update(
                n=10_000,
                robust_count=9_999,
                gradient_evaluations=123_456_789,
                nonfinite_outputs=10_000,
                seconds=12_345.678,
                mean_l2=0.123456,
                mean_linf=0.0313725,
                median_l2=0.123456,
            )
    paths = write_report(tmp_path, report, evaluation, CIFAR[:4])
    for check in check_page(paths.html):
        assert check.problems() == [], check.width
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=browser_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(paths.html.resolve().as_uri(), wait_until="load")
            tables = page.evaluate(_TABLE_SCRIPT)
        finally:
            browser.close()
    assert len(tables) >= 5
    wide = [t for t in tables if t["scroll"] > t["client"]]
    assert not wide, wide


# --- the clean accuracy against the recorded one -------------------------------------------


def test_the_recorded_accuracy_check_at_the_interval_end() -> None:
    """With no sample correct of n, the Clopper-Pearson interval's upper end is
    ``1 - (alpha / 2) ** (1 / n)`` (alpha = 0.05): the check passes up to that plus the
    margin, and warns beyond it; with every sample correct the upper end is 1."""
    n = 10
    high = 1 - 0.025 ** (1 / n)
    assert recorded_check(0.0, n, high + RECORDED_MARGIN - 1e-9).status == PASSED
    warned = recorded_check(0.0, n, high + RECORDED_MARGIN + 1e-9)
    assert warned.status == WARNING and warned.warned
    assert warned.numbers["ci_high"] == pytest.approx(high, rel=1e-9)
    assert "records an accuracy of" in warned.message
    assert recorded_check(1.0, n, 1.0).status == PASSED
    assert recorded_check(0.39, 100, 0.992).status == WARNING  # a folder in another order
    assert recorded_check(0.98, 1000, 0.992).status == PASSED
    for args in ((0.9, 100, None), (0.9, 100, 99.2), (math.nan, 0, 0.99)):
        assert recorded_check(*args).status == NOT_RUN, args


# --- progress in a log ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_log_gets_a_line_every_five_seconds_and_the_last() -> None:
    stream, clock = io.StringIO(), Clock()
    with LogProgress(100, "evaluate", unit="sample", stream=stream, clock=clock) as bar:
        bar.set_postfix_str("FGSM eps=8/255")
        for _ in range(88):  # a sample every 0.25 s, stopped after 22 s
            clock.now += 0.25
            bar.update(1)
    assert stream.getvalue().splitlines() == [
        *(
            f"evaluate: {20 * k}/100 samples ({20 * k}.0%), {5 * k} s elapsed, about "
            f"{25 - 5 * k} s left (FGSM eps=8/255)"
            for k in (1, 2, 3, 4)
        ),
        "evaluate: 88/100 samples (88.0%), 22 s elapsed (FGSM eps=8/255)",
    ]
    quiet, clock = io.StringIO(), Clock()
    with LogProgress(3, "attack", unit="batch", stream=quiet, clock=clock) as bar:
        bar.update(3)  # at once: no line yet
        clock.now = 9.0
        bar.update(0)
        clock.now = 20.0
        bar.update(0)  # nothing new since the line before: no line, and none at the end
    assert quiet.getvalue() == "attack: 3/3 batches (100.0%), 9 s elapsed\n"


def test_progress_is_a_bar_on_a_terminal_lines_in_a_log_and_nothing_when_quiet() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log = io.StringIO()
    assert isinstance(show_progress(5, "x", stream=log), LogProgress)
    assert isinstance(show_progress(5, "x", True, stream=log), LogProgress)
    with show_progress(5, "x", False, stream=log) as bar:
        bar.update(5)
    with show_progress(5, "x", "off", stream=Terminal()) as bar:
        bar.update(5)
    assert log.getvalue() == ""
    terminal = Terminal()
    with show_progress(5, "bar", stream=terminal) as bar:
        bar.update(5)
    assert not isinstance(bar, LogProgress) and "5/5" in terminal.getvalue()
    with pytest.raises(ValueError, match="auto, bar, log or off"):
        show_progress(5, "x", "loud")  # type: ignore[arg-type]


def test_an_evaluation_logs_its_progress_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    classifier = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)))
    x = torch.rand(6, 3, 2, 2)
    with ResultStore(tmp_path / "results.sqlite") as store:
        evaluate(
            classifier,
            lambda e: FGSM(e),
            (x, classifier.predict(x)),
            [0.1],
            batch_size=4,
            store=store,
            run_key="r",
            progress=True,
        )
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("evaluate: 6/6 samples (100.0%)")
    assert "\r" not in err
