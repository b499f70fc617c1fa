"""The sandwich figure: per model, the share of samples with robustness at least eps,
certified (below), attacked (above) and the Fawzi bound (the ceiling of any classifier)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .plots import literal, to_png

_CERTIFIED = "#1e8449"
_ATTACKED = "#c0392b"
_FAWZI = "#1b2a41"


def sandwich_curve(record: Mapping[str, Any]) -> bytes:
    """The PNG of :func:`sandwich_figure` of one record."""
    return to_png(sandwich_figure({"": record}))


def sandwich_figure(records: Mapping[str, Mapping[str, Any]]) -> Figure:
    """One panel per model (titled by its key): :func:`draw_sandwich` of its record."""
    fig = Figure(figsize=(5.0 * len(records), 3.6), layout="constrained")
    axes = fig.subplots(1, len(records), squeeze=False)[0]
    for ax, (title, record) in zip(axes, records.items(), strict=True):
        draw_sandwich(ax, record, title)
    return fig


def draw_sandwich(ax: Axes, record: Mapping[str, Any], title: str = "") -> None:
    """The certified share (lower line), the attacked share (upper line), the band between
    them where the true share lies and, when the record has its rows, the Fawzi et al.
    (2018) bound (dashed, at the budgets) against eps (``record``:
    :func:`~brittle.certify.sandwich.sandwich_record`)."""
    eps = record["eps"]
    ax.fill_between(
        eps,
        record["certified"],
        record["attacked"],
        step="post",
        color="#cccccc",
        alpha=0.5,
        label="the true share lies here",
    )
    ax.step(
        eps,
        record["attacked"],
        where="post",
        color=_ATTACKED,
        linewidth=2,
        label="attacked (upper bound)",
    )
    ax.step(
        eps,
        record["certified"],
        where="post",
        color=_CERTIFIED,
        linewidth=2,
        label=f"certified by {literal(record['method'])} (lower bound)",
    )
    fawzi = record.get("fawzi") or []
    if fawzi:
        ax.plot(
            [r["eps"] for r in fawzi],
            [r["share"] for r in fawzi],
            "--o",
            color=_FAWZI,
            label="Fawzi bound (any classifier)",
        )
    ax.set_xlabel(f"eps ({record['norm']})")
    ax.set_ylabel("share of samples robust at eps")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(literal(title), fontsize=10)
