"""What the ``brittle`` command prints: summaries, the per-budget table, report places.

Results go to stdout; progress goes to stderr: the evaluation engine's as a bar on a
terminal and as a plain line every few seconds in a log (:func:`brittle.progress.show_progress`),
other loops' as bars only on a terminal; ``--quiet`` silences both.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brittle import tasks
from brittle.report.content import COLUMNS, eps_label, eps_labels
from brittle.reproduce.report import show

_PERCENT = {
    "clean_accuracy",
    "success_rate",
    "robust_accuracy",
    "mean_confidence_misclassified",
    "mean_l0",  # the share of features changed, as the report shows it
    "robust_fgsm",  # the gradient-masking check's
    "robust_pgd_ce",
    "robust_pgd_margin",
    "vanishing_share",
}
_TABLE = {
    "eps": "eps",
    "clean_accuracy": "clean",
    "success_rate": "success",
    "robust_accuracy": "robust",
    "mean_confidence_misclassified": "conf.wrong",
    "mean_l2": "mean L2",
    "mean_linf": "mean Linf",
    "gradient_evaluations": "grads",
}
"""The columns of the per-budget table and their heads."""
_MASKING = {"robust_fgsm": "FGSM", "robust_pgd_ce": "PGD-CE", "robust_pgd_margin": "PGD-margin"}
"""The attacks of the gradient-masking check, as its summary line names them."""


def progress_bars(quiet: bool = False) -> bool:
    """Progress bars of the loops that draw tqdm bars themselves (training, transfer): only
    on a terminal (piped into a log, a bar would flood it), and not when ``quiet``."""
    return not quiet and sys.stderr.isatty()


def progress_shown(quiet: bool = False) -> bool:
    """The ``progress`` of the evaluation engine's loops, which count through
    :func:`~brittle.progress.show_progress`: on unless ``quiet`` (a bar on a terminal, a
    plain line every few seconds and the last when standard error is a log)."""
    return not quiet


def fmt(key: str, value: Any) -> str:
    """``value`` of the summary field ``key`` as printed: rates in percent, n/a for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if key in _PERCENT:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_trained(outcome: tasks.TrainOutcome) -> None:
    meta = outcome.meta
    processes = outcome.history.processes
    on = f" on {processes} processes" if processes > 1 else ""
    print(
        f"trained {meta['arch']} on {meta['n_train']} samples of {meta['dataset']} for "
        f"{meta['epochs']} epoch(s) in {outcome.history.seconds:.1f} s{on}: "
        f"test accuracy {meta['accuracy']:.1%}"
    )
    defense = meta.get("defense")
    if defense:
        settings = {k: v for k, v in defense.items() if k != "name"}
        print(f"defence: {defense['name']} ({show(settings)})")
    for name, values in outcome.history.parts.items():
        print(f"  last epoch's mean {name} loss: {values[-1]:.4f}")
    print(f"checkpoint: {outcome.path}")


def print_generator(outcome: tasks.GeneratorOutcome) -> None:
    """What ``generator train`` did: the generator, its data, the final loss and its parts,
    and where the checkpoint is."""
    meta = outcome.meta
    parts = ", ".join(f"{name} {value:.2f}" for name, value in meta["final_parts"].items())
    print(
        f"trained {meta['arch']} (latent dimension {meta['latent_dim']}) on {meta['n_train']} "
        f"samples of {meta['dataset']} for {meta['epochs']} epoch(s) in "
        f"{outcome.history.seconds:.1f} s: final loss {meta['final_loss']:.2f} nats per image "
        f"(negative ELBO; {parts})"
    )
    print(f"checkpoint: {outcome.path}")


def print_attack(outcome: tasks.AttackOutcome) -> None:
    """The attack's summary, one field a line, its warnings and the files written."""
    summary = outcome.summary
    print(
        f"{summary['attack']} on {summary['n']} samples of {summary['dataset']['name']} "
        f"({summary['dataset']['split']}); threat model: {summary['threat_model']['description']}"
    )
    keys = [k for k in COLUMNS if k in summary and k != "eps"]
    width = max(len(k) for k in keys)
    for key in keys:
        print(f"  {key:<{width}}  {fmt(key, summary[key])}")
    if "gradient_masking" in summary:
        _print_masking(summary["gradient_masking"])
    print_warnings(summary["warnings"])
    _print_places(json=outcome.json, saved=outcome.saved)


def _print_masking(check: dict[str, Any]) -> None:
    """The gradient-masking check of a defended model, on one line."""
    attacks = ", ".join(f"{label} {fmt(key, check[key])}" for key, label in _MASKING.items())
    print(
        f"gradient-masking check ({check['n']} samples, eps={check['eps']:g} {check['norm']}): "
        f"robust accuracy {attacks}; the cross-entropy gradient vanishes on "
        f"{fmt('vanishing_share', check['vanishing_share'])} of the correctly classified"
    )


def print_report(outcome: tasks.EvaluateOutcome) -> None:
    """The evaluation's threat model, per-budget table (the worst case over the attacks when
    there are several, then each attack's robust accuracy), warnings and files."""
    report = outcome.report
    print(f"threat model: {report['threat_model']['description']}")
    per_attack = report.get("per_attack", {})
    if len(per_attack) > 1:
        print(
            f"worst case of {', '.join(per_attack)} (a sample is broken when any attack breaks "
            "it; first: how many each attack broke first):"
        )
    labels = eps_labels(report)
    _print_table(report["results"], several=len(per_attack) > 1, labels=labels)
    if len(per_attack) > 1:
        standing = {a["label"] for a in report.get("attacks", []) if a.get("survivors_only")}
        print(
            "robust accuracy of each attack on the n samples it attacked"
            + (" (after the earlier attacks: on those still standing)" if standing else "")
            + ":"
        )
        _print_per_attack(report["results"], per_attack, labels, standing)
    print_warnings(report["warnings"])
    places: dict[str, Path | None] = {
        "report": outcome.paths.html,
        "json": outcome.paths.json,
        "store": outcome.store,
    }
    if outcome.exported:
        places["tables"] = outcome.exported[0].parent
    _print_places(**places)


def _interval(row: dict[str, Any]) -> str:
    """Robust accuracy's interval, ``[94.1, 97.3]`` (percent), n/a when undefined."""
    low, high = row.get("robust_ci_low"), row.get("robust_ci_high")
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "n/a"
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def _print_per_attack(
    rows: Sequence[dict[str, Any]],
    per_attack: dict[str, list[dict[str, Any]]],
    labels: dict[float, str],
    standing: set[str],
) -> None:
    """Each attack's robust accuracy, interval and n per budget; ``standing``: the labels
    of the attacks run after the earlier ones, on the samples still standing."""
    heads = ["eps", *(f"{a} (after the earlier)" if a in standing else a for a in per_attack)]
    cells = [
        [
            eps_label(labels, row["eps"]),
            *(_robust_with_n(p[i]) for p in per_attack.values()),
        ]
        for i, row in enumerate(rows)
    ]
    _print_cells(heads, cells)


def _robust_with_n(row: dict[str, Any]) -> str:
    """Robust accuracy, its interval and the samples it is over: ``92.0% [85.0, 96.5] n=100``."""
    return f"{fmt('robust_accuracy', row['robust_accuracy'])} {_interval(row)} n={row['n']}"


def print_compare(outcome: tasks.CompareOutcome) -> None:
    """The comparison: robust accuracy per run and eps on the shared samples, the per-pair
    agreement, and the files written."""
    content = outcome.content
    eps = content["eps"]
    print(
        f"robust accuracy on the shared samples ({content['confidence']['method']} "
        f"{fmt('success_rate', content['confidence']['level'])} intervals):"
    )
    heads = ["run", *(f"eps={e:g} ({content['shared_samples'][f'{e:g}']})" for e in eps)]
    cells = [
        [
            run["name"],
            *(
                f"{fmt('robust_accuracy', row['shared_robust_accuracy'])} "
                f"{_interval({'robust_ci_low': row['shared_ci_low'], 'robust_ci_high': row['shared_ci_high']})}"
                for row in run["rows"]
            ),
        ]
        for run in content["runs"]
    ]
    _print_cells(heads, cells)
    print("broken in both / only the first / only the second / neither:")
    for pair in content["agreement"]:
        for row in pair["rows"]:
            shares = " / ".join(
                fmt("success_rate", row[k])
                for k in ("both", "only_first", "only_second", "neither")
            )
            print(f"  {pair['first']} vs {pair['second']} at eps={row['eps']:g}: {shares}")
    _print_places(json=outcome.json, html=outcome.html)


def print_headline(outcome: tasks.EvaluateOutcome) -> None:
    """The demo's one-line result at its largest budget and where the report is."""
    top = outcome.report["results"][-1]
    print(
        f"headline: LeNet clean accuracy {fmt('clean_accuracy', top['clean_accuracy'])}; "
        f"FGSM at eps={top['eps']:g}: robust accuracy "
        f"{fmt('robust_accuracy', top['robust_accuracy'])}, success rate "
        f"{fmt('success_rate', top['success_rate'])}, mean confidence on mistakes "
        f"{fmt('mean_confidence_misclassified', top['mean_confidence_misclassified'])}"
    )
    print(f"open the report: {outcome.paths.html}")


def print_transfer(outcome: tasks.TransferOutcome) -> None:
    """The transfer matrices with the models' names: error rates, then agreement on the
    wrong class with the number of shared errors; the clean error rates and the JSON."""
    summary, matrix = outcome.summary, outcome.matrix
    print(
        f"{matrix.attack} on {matrix.n} samples of {summary['dataset']['name']} "
        f"({summary['dataset']['split']}); threat model: {summary['threat_model']['description']}"
    )
    print("error rate of the examples crafted on each row's model, classified by each column's:")
    _print_grid(matrix.names, [[_share(v) for v in row] for row in matrix.error])
    print("same wrong class when both models err (shared errors):")
    agreement = zip(matrix.agreement, matrix.shared_errors, strict=True)
    cells = [
        [f"{_share(v)} ({int(c)})" for v, c in zip(row, counts, strict=True)]
        for row, counts in agreement
    ]
    _print_grid(matrix.names, cells)
    clean = ", ".join(
        f"{name} {_share(v)}" for name, v in zip(matrix.names, matrix.clean_error, strict=True)
    )
    print(f"clean error: {clean}")
    _print_places(json=outcome.json)


def _share(value: float) -> str:
    """A rate in percent, n/a when undefined."""
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def _print_grid(names: Sequence[str], cells: Sequence[Sequence[str]]) -> None:
    """A model x model table: rows crafted on, columns classified by."""
    corner = "crafted on \\ classified by"
    first = max(len(corner), *(len(name) for name in names))
    widths = [max(len(name), *(len(row[b]) for row in cells)) for b, name in enumerate(names)]
    rows = [(corner, list(names)), *zip(names, cells, strict=True)]
    for label, values in rows:
        line = "".join(f"  {v:>{w}}" for v, w in zip(values, widths, strict=True))
        print(f"  {label:<{first}}{line}")


def print_interrupted(store: Path) -> None:
    print(
        f"interrupted: finished batches are kept in {store}; rerun the same command to resume",
        file=sys.stderr,
    )


def print_warnings(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}")


def _print_table(
    rows: Sequence[dict[str, Any]], several: bool = False, labels: dict[float, str] | None = None
) -> None:
    """The per-budget table: :data:`_TABLE`'s columns (eps as ``labels`` write it,
    :func:`~brittle.report.content.eps_labels`), robust accuracy's 95% interval after it, and
    with ``several`` attacks how many samples each broke first."""
    keys, heads = list(_TABLE), list(_TABLE.values())
    at = keys.index("robust_accuracy") + 1
    heads.insert(at, "95% CI")
    cells = []
    for row in rows:
        cell = [eps_label(labels or {}, row[k]) if k == "eps" else fmt(k, row[k]) for k in keys]
        cell.insert(at, _interval(row))
        if several:
            cell.append(", ".join(f"{k} {v}" for k, v in row["broken_by"].items()))
        cells.append(cell)
    if several:
        heads.append("first")
    _print_cells(heads, cells)


def _print_cells(heads: Sequence[str], cells: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    print("  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def _print_places(**places: Path | None) -> None:
    """``name: path`` of each file written, aligned (``None``: not written)."""
    written = {name: path for name, path in places.items() if path is not None}
    width = max((len(name) for name in written), default=0) + 1
    for name, path in written.items():
        print(f"{name + ':':<{width}} {path}")


def print_bound(outcome: tasks.BoundOutcome) -> None:
    """The bounds beside the measured medians, the checks, and where the files went."""
    data = outcome.analysis.as_json()
    q = data["quantile"]
    print(f"bounds at the quantile {q:g} (any classifier) and the model's measured medians:")
    for name, bound_key, median_key in (
        ("r_Z  ", "bound_latent_median", "median_r_z"),
        ("r_in ", "bound_input_median", "median_r_in"),
        ("r_unc", "bound_input_median", "median_r_unc"),
    ):
        b, m = data[bound_key], data[median_key]
        print(
            f"  {name}  bound {_num(b['raw'])} ({_num(b['normalised'])} normalised)  "
            f"measured {_num(m['raw'])} ({_num(m['normalised'])} normalised)"
        )
    print(f"  Lipschitz constant of the generator: {data['lipschitz']:.4g}")
    for what, ok in data["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'}  {what}")
    if outcome.theorem2 is not None:
        t2 = outcome.theorem2
        print(
            f"Theorem 2 (projected classifier): r_unc >= r_in / 2 on "
            f"{_percent(t2['share_satisfied'])} of {t2['n']} samples"
        )
    if outcome.theorem3 is not None:
        t3 = outcome.theorem3
        print(
            f"Theorem 3 (with {t3['second_model']}): delta {_percent(t3['delta'])}; at ||v|| <= "
            f"{t3['eta']:.4g} the bound {_percent(t3['bound_conservative'])}, an attack on "
            f"both found {_percent(t3['share'])}"
        )
    print(f"json: {outcome.json}")
    print(f"html: {outcome.html}")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
