"""The report of a reproduction: ``report.json`` for machines, ``report.html`` for people.

Every reproduction states, side by side, the paper's figure, its own and the differences of
setting. The JSON is

    {"paper": {...}, "setting": {data, models, training, seeds, sizes, differences, ...},
     "rows": [{"id", "quantity", "paper", "ours", "note"}, ...], "figures": {...}, ...}

with fractions as numbers in [0, 1] and ``null`` where the paper gives no figure (or a value
is undefined). Row ids are fixed per paper, so that runs can be compared: a reproduction
declares them and :func:`check_rows` refuses a report that has other ones. The HTML page
shows the rows (with the difference to the paper), the setting, visible notes (such as
running on the bundled digits instead of full MNIST), the timing and the figures, embedded
as PNG base64; its tables scroll inside their own container, so it reads on a narrow screen.
"""

from __future__ import annotations

import base64
import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from brittle.files import write_text_atomic
from brittle.report.content import finite, write_json
from brittle.report.html import ReportPaths
from brittle.version import __version__

JSON_NAME = "report.json"
HTML_NAME = "report.html"


@dataclass(frozen=True)
class Row:
    """One compared quantity: the paper's figure (``None`` if it gives none) and ours.

    ``fraction``: the values are fractions in [0, 1] (shown in percent, their difference in
    percentage points); otherwise plain numbers. Only ``id``, ``quantity``, ``paper``,
    ``ours`` and ``note`` go to the JSON.
    """

    id: str
    quantity: str
    paper: float | None
    ours: float
    note: str = ""
    fraction: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "quantity": self.quantity,
            "paper": self.paper,
            "ours": self.ours,
            "note": self.note,
        }


@dataclass(frozen=True)
class Figure:
    """A figure of the page: its caption and its PNG bytes."""

    caption: str
    png: bytes


@dataclass
class Reproduction:
    """What a reproduction found, ready to be written.

    ``setting`` is JSON-ready (data, models, training, seeds, sizes, ``differences``);
    ``figure_data`` holds the numbers behind the figures (in the JSON under ``figures``);
    ``notes`` are shown prominently on the page (and kept in the JSON); ``timing`` is the wall
    time of each part in seconds.
    """

    name: str
    paper: dict[str, Any]
    setting: dict[str, Any]
    rows: list[Row]
    figures: list[Figure] = field(default_factory=list)
    figure_data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The ``report.json`` content (NaN and infinities become ``null``)."""
        data = {
            "reproduction": self.name,
            "brittle_version": __version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "paper": self.paper,
            "setting": self.setting,
            "rows": [row.as_json() for row in self.rows],
            "notes": self.notes,
            "timing": self.timing,
            "figures": self.figure_data,
        }
        return dict(finite(data))


def check_rows(rows: Sequence[Row], ids: Sequence[str]) -> None:
    """Refuse rows whose ids are not exactly ``ids`` in that order, or whose fractions fall
    outside [0, 1]: the ids are what runs are compared by."""
    got = [row.id for row in rows]
    if got != list(ids):
        raise ValueError(f"a reproduction must report the rows {list(ids)}, got {got}")
    for row in rows:
        values = [row.ours] if row.paper is None else [row.ours, row.paper]
        if row.fraction and any(math.isfinite(v) and not 0 <= v <= 1 for v in values):
            raise ValueError(f"row {row.id} is a fraction but holds {values}")


def difference(row: Row) -> float | None:
    """Ours minus the paper's figure; ``None`` when either is missing."""
    if row.paper is None or not math.isfinite(row.ours):
        return None
    return row.ours - row.paper


def show_value(value: float | None, fraction: bool) -> str:
    """A row's value for a reader: fractions in percent, other numbers to 4 digits."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%" if fraction else f"{value:.4g}"


def show_difference(row: Row) -> str:
    """The difference to the paper: percentage points for fractions."""
    diff = difference(row)
    if diff is None:
        return "n/a"
    return f"{100 * diff:+.2f} pts" if row.fraction else f"{diff:+.4g}"


def show(value: Any) -> str:
    """A setting's value for a reader, never a Python repr: numbers to 4 significant digits,
    ``None`` as "none", booleans as yes/no, lists comma-separated, mappings as pairs."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {show(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(show(v) for v in value) or "none"
    return str(value)


PERCENT_KEYS = frozenset(
    {
        "accuracy",
        "success",
        "distortion",
        "error",
        "upsilon",
        "upsilon_sweep",
        "clean_error",
        "adv_error",
        "confidence_on_mistakes",
        "clean_confidence",
        "measured",
        "clean_accuracy",
        "robust_fgsm",
        "robust_pgd_ce",
        "robust_pgd_margin",
        "gap",
        "softmax_gap",
        "single_step_gap",
        "gap_threshold",
        "vanishing_share",
        "vanishing_share_threshold",
        "error_rate",
        "share_satisfied",
        "agreement",
        "delta",
        "delta_upper",
        "bound_at_delta",
        "bound_at_delta_upper",
        "share",
        "confident_share_lenet",
        "confident_share_lenet_real_test",
    }
)
"""Setting fields that hold fractions, shown in percent."""


def cell(key: str, value: Any) -> str:
    """A setting's field for a reader: :data:`PERCENT_KEYS` in percent, else :func:`show`."""
    if key in PERCENT_KEYS:
        if isinstance(value, float):
            return show_value(value, True)
        if isinstance(value, list) and all(isinstance(v, float) for v in value):
            return ", ".join(f"{100 * v:.3g}%" for v in value)
    return show(value)


def render_html(repro: Reproduction) -> str:
    """The HTML page of ``repro`` (template ``reproduce.html.j2``), figures embedded."""
    env = Environment(
        loader=PackageLoader("brittle.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    template = env.get_template("reproduce.html.j2")
    figures = [(f.caption, base64.b64encode(f.png).decode("ascii")) for f in repro.figures]
    return template.render(
        r=repro,
        figures=figures,
        value=show_value,
        diff=show_difference,
        show=show,
        cell=cell,
        version=__version__,
    )


def write_reproduction(out: str | Path, repro: Reproduction, ids: Sequence[str]) -> ReportPaths:
    """Check the rows against ``ids`` and write ``out/report.json`` and ``out/report.html``.

    Each file is written atomically: on failure a :class:`~brittle.errors.StorageError` is
    raised and the previous file is kept.
    """
    check_rows(repro.rows, ids)
    folder = Path(out)
    json_path = write_json(folder / JSON_NAME, repro.as_json())
    html_path = write_text_atomic(folder / HTML_NAME, render_html(repro))
    return ReportPaths(html=html_path, json=json_path)
