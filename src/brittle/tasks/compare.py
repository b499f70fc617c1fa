"""``brittle compare``: evaluated runs side by side.

Each run is the output folder of ``brittle evaluate``. The comparison is made on what the
runs share: the budgets every run evaluated and the sample ids every run holds at each of
them (of one data set: runs of different data share no samples). Per run and budget it
gives robust accuracy under the run's worst case over its attacks, with the Clopper-Pearson
interval, on the shared samples (and, beside it, on all the run's own samples); per pair of
runs and budget, the shares of shared samples that both runs get wrong under attack, that
only one does, and that neither does (they sum to 1). Everything is read from the stores,
never recomputed; the stores are opened for reading only.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from matplotlib.figure import Figure

from brittle.errors import InputError
from brittle.eval.pipeline import EVALUATION, STORE_NAME, SUMMARY
from brittle.eval.runner import CONFIDENCE, clopper_pearson
from brittle.eval.store import ResultStore
from brittle.files import check_outputs, write_text_atomic
from brittle.report.content import finite, write_json
from brittle.report.plots import literal, to_png
from brittle.version import __version__

COMPARE_JSON = "compare.json"
COMPARE_HTML = "compare.html"


@dataclass(frozen=True)
class RunData:
    """One evaluated run as the comparison reads it: its name, identity, attacks and, per
    budget, which sample ids are robust under its worst case."""

    name: str
    folder: Path
    run: str
    identity: dict[str, Any]
    model: str
    attacks: list[str]
    eps: list[float]
    robust: dict[float, dict[int, bool]]


@dataclass(frozen=True)
class CompareOutcome:
    """The comparison's content and the files written."""

    content: dict[str, Any]
    json: Path
    html: Path


def compare(runs: Sequence[str | Path], *, out: str | Path) -> CompareOutcome:
    """Compare the evaluations in the folders ``runs``; write ``out/compare.json`` and
    ``out/compare.html``.

    Refused: fewer than two runs, a folder without a finished evaluation, runs of different
    data sets, and runs that share no budget or no sample id. The places are checked before
    anything is read.
    """
    folders = [Path(r) for r in runs]
    if len(folders) < 2:
        raise InputError("compare needs at least two runs (evaluate output folders)")
    if len({f.resolve() for f in folders}) != len(folders):
        raise InputError("a run is given twice; give each evaluate output folder once")
    out = Path(out)
    check_outputs(
        {f"--out ({name})": out / name for name in (COMPARE_JSON, COMPARE_HTML)},
        {"RUN": [folder / STORE_NAME for folder in folders]},
    )
    names = _names(folders)
    data = [read_run(folder, name) for folder, name in zip(folders, names, strict=True)]
    content = comparison(data)
    json_path = write_json(out / COMPARE_JSON, content)
    html_path = write_text_atomic(out / COMPARE_HTML, render_compare(content))
    return CompareOutcome(content=content, json=json_path, html=html_path)


def _names(folders: Sequence[Path]) -> list[str]:
    """Each run's name: its folder's name, or its path when two folders share a name."""
    short = [f.name or str(f) for f in folders]
    return short if len(set(short)) == len(short) else [str(f) for f in folders]


def read_run(folder: Path, name: str) -> RunData:
    """The run evaluated in ``folder``: from its store's records and per-sample rows."""
    path = folder / STORE_NAME
    if not path.is_file():
        raise InputError(f"{folder} is not an evaluation folder: it has no {STORE_NAME}")
    with ResultStore(path, create=False) as store:
        options = store.record(*EVALUATION)
        run = None if options is None else str(options["run"])
        summary = None if run is None else store.record(SUMMARY, run)
        if run is None or summary is None:
            raise InputError(
                f"{folder} holds no finished evaluation; finish it with brittle evaluate "
                f"--resume {folder}"
            )
        identity = store.record("run", run) or {}
        keys = {a["label"]: a["key"] for a in summary["attacks"]}
        eps = [float(row["eps"]) for row in summary["results"]]
        robust = _robust(store, run, list(keys.values()), eps)
    assert options is not None
    return RunData(
        name=name,
        folder=folder,
        run=run,
        identity=identity,
        model=str(((options.get("spec") or {}).get("model") or {}).get("spec")),
        attacks=list(keys),
        eps=eps,
        robust=robust,
    )


def _robust(
    store: ResultStore, run: str, keys: list[str], eps: list[float]
) -> dict[float, dict[int, bool]]:
    """Per budget, each sample id that every attack holds, and whether it is robust under
    all of them (classified correctly before and after each attack, every target). The rows
    are read with :meth:`~brittle.eval.store.ResultStore.result`, which refuses damaged ones."""
    robust: dict[float, dict[int, bool]] = {}
    for e in eps:
        results = [store.result(run, key, e) for key in keys]
        held = set.intersection(*(set(r.ids.tolist()) for r in results))
        standing = dict.fromkeys(held, True)
        for result in results:
            for sid, ok in zip(result.ids.tolist(), result.robust.tolist(), strict=True):
                if sid in standing:
                    standing[sid] = standing[sid] and ok
        robust[e] = standing
    return robust


def comparison(runs: Sequence[RunData]) -> dict[str, Any]:
    """The comparison of ``runs`` as JSON-ready data (see the module's docstring)."""
    data = {_data_key(r) for r in runs}
    if len(data) > 1:
        shown = "; ".join(f"{r.name}: {_data_words(r)}" for r in runs)
        raise InputError(f"the runs evaluate different data, so they share no samples ({shown})")
    eps = sorted(set.intersection(*(set(r.eps) for r in runs)))
    if not eps:
        shown = "; ".join(f"{r.name}: {', '.join(f'{e:g}' for e in r.eps)}" for r in runs)
        raise InputError(f"the runs share no budget eps ({shown}); evaluate them at a common eps")
    ids = {e: sorted(set.intersection(*(set(r.robust[e]) for r in runs))) for e in eps}
    if not any(ids.values()):
        raise InputError(
            "the runs share no sample id at their common budgets; evaluate them on the same "
            "samples (the same --n and --seed, or the whole split)"
        )
    eps = [e for e in eps if ids[e]]
    table = []
    for r in runs:
        rows = []
        for e in eps:
            common = [r.robust[e][i] for i in ids[e]]
            own = list(r.robust[e].values())
            rows.append(
                {
                    "eps": e,
                    **_accuracy(common, "shared"),
                    **_accuracy(own, "own"),
                }
            )
        table.append(
            {
                "name": r.name,
                "folder": str(r.folder),
                "model": r.model,
                "model_sha256": r.identity.get("model_sha256"),
                "run": r.run,
                "attacks": r.attacks,
                "threat": r.identity.get("threat"),
                "rows": rows,
            }
        )
    agreement = []
    for a, b in itertools.combinations(runs, 2):
        per_eps = []
        for e in eps:
            counts = {"both": 0, "only_first": 0, "only_second": 0, "neither": 0}
            for i in ids[e]:
                wrong_a, wrong_b = not a.robust[e][i], not b.robust[e][i]
                which = (
                    "both"
                    if wrong_a and wrong_b
                    else "only_first"
                    if wrong_a
                    else "only_second"
                    if wrong_b
                    else "neither"
                )
                counts[which] += 1
            n = len(ids[e])
            per_eps.append(
                {"eps": e, "n": n, "counts": counts, **{k: v / n for k, v in counts.items()}}
            )
        agreement.append({"first": a.name, "second": b.name, "rows": per_eps})
    first = runs[0]
    return {
        "brittle_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "data": first.identity.get("data"),
        "eps": eps,
        "shared_samples": {f"{e:g}": len(ids[e]) for e in eps},
        "confidence": {"level": CONFIDENCE, "method": "Clopper-Pearson (exact binomial)"},
        "broken": "not robust: classified wrongly on its worst-case adversarial input (or "
        "already on the clean one), under the run's attacks",
        "runs": table,
        "agreement": agreement,
    }


def _accuracy(robust: list[bool], prefix: str) -> dict[str, Any]:
    k, n = sum(robust), len(robust)
    low, high = clopper_pearson(k, n)
    return {
        f"{prefix}_n": n,
        f"{prefix}_robust": k,
        f"{prefix}_robust_accuracy": k / n if n else float("nan"),
        f"{prefix}_ci_low": low,
        f"{prefix}_ci_high": high,
    }


def _data_key(run: RunData) -> tuple[Any, ...]:
    data = run.identity.get("data") or {}
    return (data.get("name"), data.get("split"), data.get("sha256"))


def _data_words(run: RunData) -> str:
    data = run.identity.get("data") or {}
    return f"{data.get('name')} {data.get('split')} ({str(data.get('sha256'))[:12]})"


def curves(content: dict[str, Any]) -> bytes:
    """Robust accuracy (on the shared samples) against eps, one curve per run, with the
    Clopper-Pearson intervals as bands."""
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for run in content["runs"]:
        xs = [row["eps"] for row in run["rows"]]
        ys = [row["shared_robust_accuracy"] for row in run["rows"]]
        low = [row["shared_ci_low"] for row in run["rows"]]
        high = [row["shared_ci_high"] for row in run["rows"]]
        (line,) = ax.plot(xs, ys, marker="o", label=literal(run["name"]))
        ax.fill_between(xs, low, high, alpha=0.15, color=line.get_color())
    ax.set_xlabel("eps (budget)")
    ax.set_ylabel("robust accuracy (shared samples)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_png(fig)


def _pct(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


def render_compare(content: dict[str, Any]) -> str:
    """The self-contained HTML page of a comparison (the curves as an inline PNG)."""
    env = Environment(
        loader=PackageLoader("brittle.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    png = base64.b64encode(curves(content)).decode("ascii")
    return env.get_template("compare.html.j2").render(
        c=finite(content), png=png, pct=_pct, num=lambda v: f"{v:g}"
    )
