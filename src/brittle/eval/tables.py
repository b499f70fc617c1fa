"""An evaluation's tables, and their export as CSV and JSON.

Three tables, each a list of columns and rows of plain values:

- ``samples``: every per-sample row of the evaluation as stored (one per attack, budget,
  target and sample; the ``samples`` table of the store restricted to the run's attacks,
  budgets and samples), with ``counted_success`` after ``success`` (see
  :data:`SAMPLE_TABLE_COLUMNS`);
- ``worst_case``: one row per budget and sample: classified correctly, robust under every
  attack, which attack broke it first, and one ``broken:LABEL`` column per attack;
- ``results``: one row per budget and attack (and the worst case, with several attacks):
  the headline numbers with the robust accuracy's Clopper-Pearson interval.

:func:`export_tables` writes each as ``NAME.csv`` and ``NAME.json`` (a list of row objects,
what ``pandas.read_json`` reads), each atomically (:mod:`brittle.files`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from brittle.eval.runner import WORST_CASE, Evaluation
from brittle.eval.store import SAMPLE_COLUMNS, ResultStore
from brittle.files import write_text_atomic

Table = tuple[list[str], list[list[Any]]]
"""A table: its column names and its rows."""

RESULT_COLUMNS = (
    "eps",
    "attack",
    "n",
    "clean_accuracy",
    "robust_accuracy",
    "robust_count",
    "robust_ci_low",
    "robust_ci_high",
    "success_rate",
    "mean_confidence_misclassified",
    "mean_l0",
    "mean_l2",
    "mean_linf",
    "median_l2",
    "median_linf",
    "gradient_evaluations",
    "queries",
    "nonfinite_outputs",
    "seconds",
)
"""The columns of the ``results`` table."""


_COLUMN = {name: i for i, name in enumerate(SAMPLE_COLUMNS)}
_SUCCESS = _COLUMN["success"]
SAMPLE_TABLE_COLUMNS = (
    *SAMPLE_COLUMNS[: _SUCCESS + 1],
    "counted_success",
    *SAMPLE_COLUMNS[_SUCCESS + 1 :],
)
"""The columns of the ``samples`` table: the store's (:data:`~.store.SAMPLE_COLUMNS`) and
``counted_success`` after ``success``.

``success`` is the attack's own verdict: the model's prediction on the adversarial input
meets the goal (untargeted: differs from the label), so a sample misclassified before the
attack has ``success`` 1 without any attack. ``counted_success`` is what the reported
success rate counts: ``success`` for a sample classified correctly before the attack (and,
for a suite's attack run on the samples still standing, standing after the attacks before
it), empty for any other. So the mean of ``counted_success`` over one attack's rows at one
budget, empty cells left out (what ``pandas`` does), is that attack's ``success_rate`` in
``report.json`` (``per_attack``; ``results`` with one attack)."""


def sample_table(store: ResultStore, evaluation: Evaluation) -> Table:
    """Every stored per-sample row of ``evaluation``'s attacks, budgets and samples, with
    ``counted_success`` (:data:`SAMPLE_TABLE_COLUMNS`)."""
    columns = list(SAMPLE_COLUMNS)
    keys = set(evaluation.keys.values())
    budgets = {float(e) for e in evaluation.eps}
    ids = {int(i) for i in evaluation.ids.tolist()}
    order = {key: a for a, key in enumerate(evaluation.keys.values())}
    rows = store.rows(
        f"SELECT {', '.join(columns)} FROM samples WHERE run = ? ORDER BY eps, attack, "
        "sample_id, target",
        (evaluation.run_key,),
    )
    picked = [list(r) for r in rows if r[1] in keys and float(r[3]) in budgets and int(r[5]) in ids]
    picked.sort(key=lambda r: (r[3], order[r[1]], r[5], -1 if r[4] is None else r[4]))
    counted = _counted(evaluation, picked)
    table = []
    for row in picked:
        where = (row[_COLUMN["attack"]], float(row[_COLUMN["eps"]]), int(row[_COLUMN["sample_id"]]))
        success = int(row[_SUCCESS]) if where in counted else None
        table.append([*row[: _SUCCESS + 1], success, *row[_SUCCESS + 1 :]])
    return list(SAMPLE_TABLE_COLUMNS), table


def _counted(evaluation: Evaluation, rows: list[list[Any]]) -> set[tuple[str, float, int]]:
    """The (attack key, eps, sample id) of the ``rows`` (the store's columns) that the
    success rates count: classified correctly before the attack and, for an attack whose
    summary holds fewer samples than the evaluation (a suite's attack run on the samples
    still standing), standing after the attacks before it, as
    :func:`~.runner.summarise` reads them."""
    attack, eps_at, sample, y = (_COLUMN[c] for c in ("attack", "eps", "sample_id", "y"))
    clean, adversarial = _COLUMN["pred_clean"], _COLUMN["pred_adv"]
    by_key: dict[tuple[str, float], dict[int, list[Any]]] = {}
    for row in rows:
        by_key.setdefault((row[attack], float(row[eps_at])), {})[int(row[sample])] = row
    ids = [int(i) for i in evaluation.ids.tolist()]
    counted = set()
    for e, eps in enumerate(evaluation.eps):
        standing = set(ids)
        for label, key in evaluation.keys.items():
            held = by_key.get((key, float(eps)), {})
            everyone = int(evaluation.per_attack[label][e]["n"]) == len(ids)
            for sid in ids if everyone else [i for i in ids if i in standing]:
                stored = held.get(sid)
                if stored is None:
                    continue
                correct = stored[clean] == stored[y]
                if correct:
                    counted.add((key, float(eps), sid))
                if not correct or stored[adversarial] != stored[y]:
                    standing.discard(sid)
    return counted


def worst_case_table(evaluation: Evaluation) -> Table:
    """One row per budget and sample: the per-sample worst case over the attacks."""
    labels = evaluation.attacks
    columns = [
        "eps",
        "sample_id",
        "correct_clean",
        "robust",
        "broken_by",
        *(f"broken:{label}" for label in labels),
    ]
    rows = []
    for eps, case in zip(evaluation.eps, evaluation.worst, strict=True):
        for i, sid in enumerate(case.ids.tolist()):
            rows.append(
                [
                    eps,
                    int(sid),
                    bool(case.correct_clean[i]),
                    bool(case.robust[i]),
                    case.broken_by[i],
                    *(bool(case.broken[a, i]) for a in range(len(labels))),
                ]
            )
    return columns, rows


def results_table(evaluation: Evaluation) -> Table:
    """One row per budget and attack, then the worst case when there are several attacks."""
    columns = list(RESULT_COLUMNS)
    rows = []
    for i, eps in enumerate(evaluation.eps):
        named = [(label, evaluation.per_attack[label][i]) for label in evaluation.attacks]
        if len(named) > 1:
            named.append((WORST_CASE, evaluation.summaries[i]))
        for label, summary in named:
            row = {**summary, "eps": eps, "attack": label}
            rows.append([_plain(row.get(c)) for c in columns])
    return columns, rows


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def csv_text(table: Table) -> str:
    """The table as CSV (a header line, then one line per row; ``None`` as an empty cell)."""
    columns, rows = table
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


def json_text(table: Table) -> str:
    """The table as a JSON list of row objects (NaN and inf as ``null``)."""
    columns, rows = table
    records = [dict(zip(columns, map(_plain, row), strict=True)) for row in rows]
    return json.dumps(records, allow_nan=False) + "\n"


def export_tables(store: ResultStore, evaluation: Evaluation, out: str | Path) -> tuple[Path, ...]:
    """Write ``samples``, ``worst_case`` and ``results`` as ``.csv`` and ``.json`` into
    ``out``, each file atomically; the paths written."""
    folder = Path(out)
    tables = {
        "samples": sample_table(store, evaluation),
        "worst_case": worst_case_table(evaluation),
        "results": results_table(evaluation),
    }
    written = []
    for name, table in tables.items():
        written.append(write_text_atomic(folder / f"{name}.csv", csv_text(table)))
        written.append(write_text_atomic(folder / f"{name}.json", json_text(table)))
    return tuple(written)
