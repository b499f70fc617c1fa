"""What the per-sample rows of a result store must satisfy, checked as they are read.

A store is read back into figures (clean and robust accuracy, success rate, norms): a value
of the wrong type ends in a traceback, and fields that contradict each other (a ``success``
flipped by hand or by a damaged disk) give figures that contradict each other.
:func:`check_rows` takes the columns one read of ``samples`` returned and checks them with
numpy, a few vectorised operations per column (no Python loop over the rows unless one is
bad), so the check costs a small fraction of the read itself.

Every value must be of its column's type and range: integer class indices (``-1`` for a
prediction on a non-finite output; below the number of classes when the reader knows it),
flags 0 or 1, non-negative counts and norms, ``l0`` and the confidence in [0, 1] (the
confidence may be null: a label-only model gives none, nor does a non-finite output); ``target``
and ``min_eps`` are given for every row of one attack at one budget, or for none. Then the
invariants of :class:`~brittle.attacks.result.AttackResult` that hold whatever the attack:

- ``pred_adv`` is ``-1`` exactly where ``nonfinite`` is set;
- an ``exhausted`` sample did not succeed.

For the rows of runs judged by :class:`~brittle.criteria.Misclassification` (no target) or
:class:`~brittle.criteria.TargetedMisclassification` (a target), both with kappa = 0, which
is how every evaluation brittle runs is judged (the run's identity says so: goal
``misclassification`` or ``targeted``), :data:`JUDGED_RULES` hold too:

- untargeted, finite output: a success predicts another class than ``y`` (the goal
  ``max_{j != y} s_j - s_y > 0`` puts another class strictly ahead); a sample classified
  correctly and not fooled has no class strictly ahead of ``y``, so a prediction other than
  ``y`` can only be a tie with ``y`` at the top: a class of lower index (``argmax`` returns
  the first of equal maxima) with a probability of at most 1/2;
- untargeted, non-finite output: a success, unless the clean output was not finite either;
- targeted: the target is not the label; a finite success predicts the target; a non-finite
  output never succeeds; a sample classified correctly and not fooled predicts the target
  only in a tie (probability at most 1/2).

A flipped ``success`` is therefore found unless it makes its row look exactly like a tie at
the top, which the stored columns cannot tell apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TIE = 0.501
"""The largest probability a class can have when it ties with another at the top (1/2),
with room for float32 rounding and for scores a model gives as probabilities."""

JUDGED_GOALS = frozenset({"misclassification", "targeted"})
"""The goals (``threat.goal`` of a run's identity) whose rows :data:`JUDGED_RULES` hold for."""

INTEGER_COLUMNS = (
    "sample_id",
    "y",
    "pred_clean",
    "pred_adv",
    "gradients",
    "queries",
    "verification_queries",
)
FLAG_COLUMNS = ("success", "nonfinite", "exhausted")
NUMBER_COLUMNS = ("confidence_adv", "l0", "l1", "l2", "linf")
NULLABLE_COLUMNS = frozenset({"confidence_adv"})
"""Number columns that may be null: the confidence, which a label-only model (or a non-finite
output) does not give; read as NaN."""
OPTIONAL_COLUMNS = {"target": "integer", "min_eps": "number"}
"""The columns :func:`check_rows` reads, by kind (an optional column is all null or all set)."""

Columns = Mapping[str, np.ndarray]
Rule = tuple[str, Callable[[Columns], np.ndarray], tuple[str, ...]]


def _within(column: str, low: float, high: float, rule: str) -> Rule:
    """The rule that ``column`` lies in [low, high] (NaN never does)."""
    return (rule, lambda c: ~((c[column] >= low) & (c[column] <= high)), (column,))


def _range(column: str, low: float, high: float | None = None) -> Rule:
    words = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
    return _within(column, low, np.inf if high is None else high, f"{column} is a number {words}")


ROW_RULES: tuple[Rule, ...] = (
    *(_within(name, 0, 1, f"{name} is 0 or 1") for name in FLAG_COLUMNS),  # integers
    *(_range(name, 0) for name in ("gradients", "queries", "verification_queries")),
    _range("l0", 0, 1),
    (
        "confidence_adv is a number in [0, 1], or null where the model gives no confidence",
        lambda c: ~(np.isnan(c["confidence_adv"]) | (np.abs(c["confidence_adv"] - 0.5) <= 0.5)),
        ("confidence_adv",),
    ),
    *(_range(name, 0) for name in ("l1", "l2", "linf")),
    (
        "pred_adv is -1 exactly where nonfinite is 1",
        lambda c: (c["pred_adv"] == -1) != (c["nonfinite"] == 1),
        ("pred_adv", "nonfinite"),
    ),
    (
        "an exhausted sample did not succeed",
        lambda c: (c["exhausted"] == 1) & (c["success"] == 1),
        ("exhausted", "success"),
    ),
)
"""The rules of every row: what it says (for the message), the rows that break it, and
the columns the message shows. Class-index ranges come from :func:`_class_rules`."""


def _class_rules(classes: int | None, labels: int | None, targeted: bool) -> tuple[Rule, ...]:
    """The ranges of the class indices (of the target too when the rows have one): below
    ``classes`` when it is known, and the labels below ``labels`` too."""
    top = np.inf if classes is None else classes - 1
    below = "" if classes is None else f" (0 to {classes - 1})"
    label_top = min(top, np.inf if labels is None else labels - 1)
    label_below = "" if label_top == np.inf else f" (0 to {int(label_top)})"
    rules = [_within("y", 0, label_top, f"y is a class index{label_below}")]
    if targeted:
        rules.append(_within("target", 0, top, f"target is a class index{below}"))
    for name in ("pred_clean", "pred_adv"):
        words = f"{name} is a class index{below}, or -1 for a non-finite output"
        rules.append(_within(name, -1, top, words))
    return tuple(rules)


def _untargeted(c: Columns) -> np.ndarray:
    return c["target"] < 0  # absent targets read as -1


def _kept_finite(c: Columns) -> np.ndarray:
    """Rows classified correctly, not fooled, with a finite output."""
    return (c["pred_clean"] == c["y"]) & (c["success"] == 0) & (c["nonfinite"] == 0)


JUDGED_RULES: tuple[Rule, ...] = (
    (
        "an untargeted success predicts another class than y",
        lambda c: (
            _untargeted(c) & (c["success"] == 1) & (c["nonfinite"] == 0) & (c["pred_adv"] == c["y"])
        ),
        ("y", "pred_adv", "success", "nonfinite"),
    ),
    (
        "a correctly classified sample that was not fooled has no class strictly ahead of y "
        "(another prediction is a tie: a lower index, probability <= 1/2)",
        lambda c: (
            _untargeted(c)
            & _kept_finite(c)
            & (c["pred_adv"] != c["y"])
            & ((c["pred_adv"] > c["y"]) | (c["confidence_adv"] > TIE))
        ),
        ("y", "pred_clean", "pred_adv", "success", "confidence_adv"),
    ),
    (
        "a non-finite output meets an untargeted goal",
        lambda c: (
            _untargeted(c) & (c["nonfinite"] == 1) & (c["pred_clean"] >= 0) & (c["success"] == 0)
        ),
        ("pred_clean", "nonfinite", "success"),
    ),
    ("a target is not the label", lambda c: c["target"] == c["y"], ("target", "y")),
    (
        "a targeted success predicts the target",
        lambda c: (
            ~_untargeted(c)
            & (c["success"] == 1)
            & (c["nonfinite"] == 0)
            & (c["pred_adv"] != c["target"])
        ),
        ("target", "pred_adv", "success", "nonfinite"),
    ),
    (
        "a non-finite output never meets a targeted goal",
        lambda c: ~_untargeted(c) & (c["nonfinite"] == 1) & (c["success"] == 1),
        ("target", "nonfinite", "success"),
    ),
    (
        "a correctly classified sample that was not fooled predicts the target only in a tie "
        "(probability <= 1/2)",
        lambda c: (
            ~_untargeted(c)
            & _kept_finite(c)
            & (c["pred_adv"] == c["target"])
            & (c["confidence_adv"] > TIE)
        ),
        ("y", "pred_clean", "target", "pred_adv", "success", "confidence_adv"),
    ),
)
"""The rules of the rows of runs judged by misclassification or targeted misclassification
with kappa = 0 (see the module's docstring)."""


@dataclass(frozen=True)
class Violation:
    """The first row read that breaks a rule: its position in the read, the rule, and the
    values of the columns the rule reads."""

    row: int
    rule: str
    values: dict[str, Any]

    def describe(self) -> str:
        """``breaks 'rule' (column=value, ...)``."""
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"breaks '{self.rule}' ({shown})"


def typed(
    name: str, values: Sequence[Any], kind: str, nullable: bool = False
) -> np.ndarray | Violation:
    """``values`` as an int64 (``kind`` "integer") or float64 ("number") array, or the first
    value of another type (SQLite keeps what a column was given: text, blob, null).
    ``nullable`` numbers read a null as NaN."""
    accepted = (int,) if kind == "integer" else (int, float)
    array = np.asarray(values)
    if array.dtype.kind in ("i" if kind == "integer" else "if") and array.ndim == 1:
        return array.astype(np.int64 if kind == "integer" else np.float64)
    if nullable and kind == "number":
        objects = np.asarray(values, dtype=object)
        given = np.flatnonzero(objects != None)  # noqa: E711 (elementwise)
        rest = typed(name, objects[given].tolist(), kind)
        if isinstance(rest, Violation):
            return Violation(int(given[rest.row]), rest.rule, rest.values)
        out = np.full(len(objects), np.nan)
        out[given] = rest
        return out
    for i, value in enumerate(values):  # only when a value is of another type
        if isinstance(value, bool) or not isinstance(value, accepted):
            words = "an integer" if kind == "integer" else "a number"
            return Violation(i, f"{name} is {words}", {name: value})
    raise AssertionError(f"no value of {name} is of the wrong type")  # numpy agrees with Python


def check_rows(
    columns: Mapping[str, Sequence[Any]],
    *,
    classes: int | None,
    labels: int | None = None,
    judged: bool,
) -> tuple[dict[str, np.ndarray | None], Violation | None]:
    """The columns of rows read from ``samples`` as arrays, and the first row that breaks a
    rule (``None`` when every row keeps them).

    ``columns`` holds the values of :data:`INTEGER_COLUMNS`, :data:`FLAG_COLUMNS`,
    :data:`NUMBER_COLUMNS` and :data:`OPTIONAL_COLUMNS` as SQLite returned them. The arrays:
    int64 for integers and flags, float64 for numbers, ``None`` for an optional column of
    nulls. ``classes``: the number of the model's classes, when the reader knows it;
    ``labels``: the number of the data's classes (the run's identity names them). ``judged``: whether
    :data:`JUDGED_RULES` hold for these rows (the run's goal is in :data:`JUDGED_GOALS`).
    """
    n = len(columns["y"])
    arrays: dict[str, np.ndarray | None] = {}
    kinds = {
        **dict.fromkeys((*INTEGER_COLUMNS, *FLAG_COLUMNS), "integer"),
        **dict.fromkeys(NUMBER_COLUMNS, "number"),
    }
    for name, kind in kinds.items():
        nullable = name in NULLABLE_COLUMNS
        array = typed(name, columns[name], kind, nullable) if n else np.zeros(0, np.int64)
        if isinstance(array, Violation):
            return arrays, array
        arrays[name] = array
    for name, kind in OPTIONAL_COLUMNS.items():
        values = columns[name]
        given = [v is not None for v in values]
        if not any(given):
            arrays[name] = None
            continue
        if not all(given):
            row = given.index(False) if given[0] else given.index(True)
            rule = f"{name} is given for every row of an attack at a budget, or for none"
            return arrays, Violation(row, rule, {name: values[row]})
        array = typed(name, values, kind)
        if isinstance(array, Violation):
            return arrays, array
        arrays[name] = array
    view = {k: v for k, v in arrays.items() if v is not None}
    view.setdefault("target", np.full(n, -1))  # no target: -1, never a class
    rules = _class_rules(classes, labels, targeted=arrays["target"] is not None) + ROW_RULES
    if arrays["min_eps"] is not None:
        rules += (_range("min_eps", 0),)
    if judged:
        rules += JUDGED_RULES
    first: Violation | None = None
    for rule, broken, shown in rules:
        bad = np.flatnonzero(broken(view))
        if len(bad) and (first is None or bad[0] < first.row):
            row = int(bad[0])
            first = Violation(row, rule, {c: view[c][row].item() for c in shown})
    return arrays, first
