"""The human-readable report: ``report.html`` (figures embedded) beside ``report.json``.

The page is one self-contained file (its figures are inline PNGs) that a browser opens
without a server. It shows the summary first (the threat model, clean and robust accuracy
with its interval, attack success, the distance to the theoretical bound when there is one,
the verdict of the sanity checks), then the curves, the tables, the image grid, the
heatmaps, the sanity checks, and the setting with the versions. Every number of the
summary and of the tables is marked with ``data-json`` (its place in ``report.json`` as a
JSON Pointer, list indices as numbers) and ``data-value`` (the unrounded number), so that a
test can check the page against the JSON. Text from users (paths, names) is escaped by Jinja's autoescaping.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from brittle.eval.runner import Evaluation
from brittle.files import write_text_atomic
from brittle.validation import is_real

from .content import eps_label, eps_labels, finite, write_json
from .plots import accuracy_curve, confusion_heatmap, example_grid, is_colour

_BOUND_REFERENCE = "Fawzi, Fawzi & Fawzi 2018, Theorem 1"


@dataclass(frozen=True)
class ReportPaths:
    """Where the report was written."""

    html: Path
    json: Path


@dataclass(frozen=True)
class ReportFigures:
    """The figures of a report, by the section that shows them: each a (caption, PNG)."""

    curves: list[tuple[str, bytes]] = field(default_factory=list)
    examples: list[tuple[str, bytes]] = field(default_factory=list)
    heatmaps: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many figures the page embeds."""
        return len(self.curves) + len(self.examples) + len(self.heatmaps)


def _pct(value: Any) -> str:
    if not is_real(value) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


def _num(value: Any) -> str:
    if not is_real(value):
        return "n/a" if value is None else str(value)
    if not math.isfinite(value):
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _seconds(value: Any) -> str:
    """A duration in seconds: 3 significant digits below 100 (``12.3``), else whole seconds
    with thousands separators (``12,346``); ``n/a`` when it is not a number."""
    if not is_real(value) or not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _count(value: Any) -> str:
    """A count with thousands separators (``9,712``); ``n/a`` when it is not a number."""
    if not is_real(value) or not math.isfinite(value):
        return "n/a"
    return f"{int(value):,}"


def _points(value: Any) -> str:
    """A difference of fractions in percentage points, signed (``+3.2 points``)."""
    if not is_real(value) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:+.1f} points"


def _raw(value: Any) -> str:
    """A number for ``data-value``, exactly (``nan`` for ``None`` or a non-finite number).

    Floats are written in exponent notation, with the 17 significant digits that give the
    float back: the attribute is for machines, never shown to a reader.
    """
    if not is_real(value):
        return "nan"
    if isinstance(value, int):
        return str(value)
    return f"{value:.16e}" if math.isfinite(value) else "nan"


def json_pointer(*parts: Any) -> str:
    """The ``data-json`` path of ``parts``: a JSON Pointer (RFC 6901), ``/results/0/eps``.

    Any key can be addressed (an attack label such as ``pgd:step_size=0.01`` or ``a/b``):
    ``~`` is written ``~0`` and ``/`` is written ``~1``.
    """
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _is_number(value: Any) -> bool:
    """A number (not a boolean) or ``None`` (an undefined one): what ``data-value`` marks."""
    return value is None or is_real(value)


def _is_number_list(value: Any) -> bool:
    """A non-empty list of what :func:`_is_number` accepts."""
    return isinstance(value, list) and bool(value) and all(_is_number(v) for v in value)


def _show(value: Any) -> str:
    """A value for a reader, never a Python repr: numbers to 4 significant digits, ``None`` as
    "none", booleans as "yes"/"no", lists comma-separated, mappings as ``key: value`` pairs."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _num(value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_show(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_show(v) for v in value) or "none"
    return str(value)


def _defense(value: Any) -> str:
    """A model's defence as its name and its parameters, e.g. ``distill (temperature: 100)``
    for the checkpoint metadata ``{"name": "distill", "temperature": 100.0}``."""
    if not isinstance(value, dict):
        return _show(value)
    params = {k: v for k, v in value.items() if k != "name"}
    name = _show(value.get("name"))
    return f"{name} ({_show(params)})" if params else name


def bound_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each budget of the report's ``bound`` beside the measured robust accuracy at it.

    A row has ``index`` (in ``bound.rows``), ``eps``, ``bound``, ``result`` (the index of the
    results row at the same budget, ``None`` if there is none), ``measured`` and ``gap``
    (bound minus measured, ``None`` without a measure). Empty without a ``bound``.
    """
    if "bound" not in report:
        return []
    results = report["results"]
    rows = []
    for index, row in enumerate(report["bound"]["rows"]):
        eps, bound = row["eps"], row["robust_accuracy_bound"]
        result = next(
            (i for i, r in enumerate(results) if math.isclose(r["eps"], eps, rel_tol=1e-6)), None
        )
        measured = None if result is None else results[result]["robust_accuracy"]
        gap = None if measured is None or bound is None else bound - measured
        rows.append(
            {
                "index": index,
                "eps": eps,
                "bound": bound,
                "result": result,
                "measured": measured,
                "gap": gap,
            }
        )
    return rows


def other_warnings(report: dict[str, Any]) -> list[str]:
    """The report's warnings that are not the message of one of its sanity checks (such as
    the gradient-masking check's), so that no warning is shown twice."""
    messages = {check["message"] for check in report["sanity_checks"]}
    return [w for w in report["warnings"] if w not in messages]


def verdict(report: dict[str, Any]) -> dict[str, int]:
    """How many sanity checks passed, warned and were not run, and how many warnings the
    page shows in all (the checks' and the others)."""
    statuses = [check["status"] for check in report["sanity_checks"]]
    warned = statuses.count("warning")
    return {
        "checks": len(statuses),
        "passed": statuses.count("passed"),
        "warned": warned,
        "not_run": statuses.count("not run"),
        "warnings": warned + len(other_warnings(report)),
    }


def standing_attacks(report: dict[str, Any]) -> list[str]:
    """The labels of the report's attacks that ran only on the samples still standing after
    the attacks before them (a suite's later attacks, ``survivors_only``)."""
    return [a["label"] for a in report.get("attacks", []) if a.get("survivors_only")]


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("brittle.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )


def _encoded(figures: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    return [(caption, base64.b64encode(png).decode("ascii")) for caption, png in figures]


def render_html(report: dict[str, Any], figures: ReportFigures) -> str:
    """The HTML page of ``report`` (JSON-ready: no NaN, see :func:`~.content.finite`) with
    ``figures`` embedded as base64 PNGs."""
    template = _environment().get_template("report.html.j2")
    labels = eps_labels(report)
    return template.render(
        r=report,
        last=len(report["results"]) - 1,
        several=len(report["per_attack"]) > 1,
        standing=standing_attacks(report),
        eps=lambda value: eps_label(labels, value),
        curves=_encoded(figures.curves),
        examples=_encoded(figures.examples),
        heatmaps=_encoded(figures.heatmaps),
        bounds=bound_rows(report),
        bound_reference=_BOUND_REFERENCE,
        others=other_warnings(report),
        verdict=verdict(report),
        pct=_pct,
        num=_num,
        count=_count,
        seconds=_seconds,
        points=_points,
        raw=_raw,
        path=json_pointer,
        is_number=_is_number,
        is_number_list=_is_number_list,
        show=_show,
        defense=_defense,
    )


def report_figures(
    report: dict[str, Any], evaluation: Evaluation, classes: Sequence[str]
) -> ReportFigures:
    """The figures of the report of ``evaluation``: the curves, the image grid (when images
    were kept) and the confusion heatmap (when the report has a ``confusion``)."""
    curves = [
        (
            "Robust accuracy against the budget (eps = 0: clean accuracy; band and bars: "
            "the confidence interval) and attack success on the correctly classified samples.",
            accuracy_curve(report),
        )
    ]
    if "sandwich" in report:
        from .sandwich import sandwich_curve

        curves.append(
            (
                "The sandwich: the share of samples with robustness at least eps, certified "
                "(below: guaranteed) and attacked (above: no adversarial example found within "
                "eps), the true share between them; dashed, the Fawzi bound no classifier "
                "passes on the generator's data, when a generator was given.",
                sandwich_curve(report["sandwich"]),
            )
        )
    labels = eps_labels(report)
    texts = [eps_label(labels, e) for e in evaluation.eps]
    grid = example_grid(evaluation.eps, evaluation.examples, classes, texts)
    examples = []
    if grid is not None:
        colour = is_colour(evaluation.examples[0].clean[0].numpy())
        drawn = (
            "in colour: 0.5 + delta / (2 max |delta|) per image, so mid-gray is no change and "
            "a channel raised shows brighter in its colour, lowered darker; the largest "
            "|delta| of each is written under it"
            if colour
            else "in diverging colours, red raised and blue lowered, magnified to the scale "
            "stated on each row"
        )
        examples.append(
            (
                "The first samples: clean (label and confidence), adversarial at each budget "
                "(prediction and confidence, red when the attack succeeded) and the "
                f"perturbation ({drawn}).",
                grid,
            )
        )
    heatmaps = []
    if "confusion" in report:
        confusion = report["confusion"]
        heatmaps.append(
            (
                "Confusion on the adversarial inputs at the largest budget (worst case over the "
                "attacks): rows are true labels, columns predictions; the diagonal stayed correct.",
                confusion_heatmap(confusion, eps_label(labels, confusion["eps"])),
            )
        )
    return ReportFigures(curves=curves, examples=examples, heatmaps=heatmaps)


def write_report(
    out_dir: str | Path, report: dict[str, Any], evaluation: Evaluation, classes: Sequence[str]
) -> ReportPaths:
    """Write ``report.json`` and ``report.html`` (with the figures of ``evaluation``).

    Each file is written atomically: on failure a :class:`~brittle.errors.StorageError` is
    raised and the previous file is kept.
    """
    out = Path(out_dir)
    json_path = write_json(out / "report.json", report)
    figures = report_figures(report, evaluation, classes)
    html_path = write_text_atomic(out / "report.html", render_html(finite(report), figures))
    return ReportPaths(html=html_path, json=json_path)
