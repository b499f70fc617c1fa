"""The human-readable report: ``report.html`` (figures embedded) beside ``report.json``."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from brittle.eval.runner import Evaluation
from brittle.files import write_text_atomic

from .content import finite, write_json
from .plots import accuracy_curve, example_grid


@dataclass(frozen=True)
class ReportPaths:
    """Where the report was written."""

    html: Path
    json: Path


def _pct(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a" if value is None else str(value)
    if not math.isfinite(value):
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


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


def render_html(report: dict[str, Any], figures: Sequence[tuple[str, bytes]]) -> str:
    """The HTML page of ``report`` with ``figures`` (caption, PNG bytes) embedded as base64."""
    env = Environment(
        loader=PackageLoader("brittle.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    template = env.get_template("report.html.j2")
    encoded = [(caption, base64.b64encode(png).decode("ascii")) for caption, png in figures]
    top = report["results"][-1]
    return template.render(
        r=report, top=top, figures=encoded, pct=_pct, num=_num, show=_show, defense=_defense
    )


def write_report(
    out_dir: str | Path, report: dict[str, Any], evaluation: Evaluation, classes: Sequence[str]
) -> ReportPaths:
    """Write ``report.json`` and ``report.html`` (with the figures of ``evaluation``).

    Each file is written atomically: on failure a :class:`~brittle.errors.StorageError` is
    raised and the previous file is kept.
    """
    out = Path(out_dir)
    json_path = write_json(out / "report.json", report)
    title = f"{report['attack']['name']}, {report['threat_model']['norm']}"
    figures = [
        (
            "Robust accuracy (eps = 0: clean accuracy) and attack success rate against the budget.",
            accuracy_curve(evaluation.eps, evaluation.summaries, title),
        )
    ]
    grid = example_grid(evaluation.eps, evaluation.examples, classes)
    if grid is not None:
        figures.append(
            (
                "The first samples: clean, adversarial at each budget, and the perturbation "
                "(diverging colours, amplified to the scale stated on each row).",
                grid,
            )
        )
    html_path = write_text_atomic(out / "report.html", render_html(finite(report), figures))
    return ReportPaths(html=html_path, json=json_path)
