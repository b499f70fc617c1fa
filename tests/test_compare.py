"""``brittle compare``: runs side by side on their shared samples and budgets; agreement shares
that sum to 1 and equal a count by hand; clear refusals."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from brittle import tasks
from brittle.cli import main
from brittle.errors import InputError
from brittle.eval import clopper_pearson
from brittle.tasks.compare import RunData, comparison


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two models on digits: a at eps 0.05, 0.1 on 60 samples; b at 0.1, 0.2 on 90 (the same
    seed, so a's samples are among b's)."""
    root = tmp_path_factory.mktemp("compare")
    for name, epochs in (("a", 1), ("b", 3)):
        model = root / f"{name}.pt"
        argv = ["train", "--dataset", "digits", "--arch", "mlp", "--epochs", str(epochs)]
        assert main([*argv, "--out", str(model)]) == 0
    tasks.evaluate_model(
        model=root / "a.pt", out=root / "run_a", eps_list=[0.05, 0.1], n=60, progress=False,
        attacks=["fgsm", "pgd:steps=5"],
    )  # fmt: skip
    tasks.evaluate_model(
        model=root / "b.pt", out=root / "run_b", eps_list=[0.1, 0.2], n=90, progress=False
    )
    return root / "run_a", root / "run_b", root


def _robust(folder: Path, eps: float) -> dict[int, bool]:
    with closing(sqlite3.connect(folder / "results.sqlite")) as db:
        rows = db.execute(
            "SELECT sample_id, MIN(pred_clean = y AND pred_adv = y) FROM samples WHERE eps = ? "
            "GROUP BY sample_id",
            (eps,),
        ).fetchall()
    return {int(i): bool(r) for i, r in rows}


def test_compare_shares_sum_to_one_and_match_the_per_sample_rows(
    runs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, _ = runs
    assert main(["compare", str(a), str(b), "--out", str(tmp_path)]) == 0
    content = json.loads((tmp_path / "compare.json").read_text())
    assert content["eps"] == [0.1]  # the one budget both evaluated
    ra, rb = _robust(a, 0.1), _robust(b, 0.1)
    shared = sorted(set(ra) & set(rb))
    assert len(shared) == 60 and content["shared_samples"] == {"0.1": 60}
    (pair,) = content["agreement"]
    (row,) = pair["rows"]
    both = sum(not ra[i] and not rb[i] for i in shared)
    only_a = sum(not ra[i] and rb[i] for i in shared)
    only_b = sum(ra[i] and not rb[i] for i in shared)
    neither = sum(ra[i] and rb[i] for i in shared)
    assert row["counts"] == {
        "both": both, "only_first": only_a, "only_second": only_b, "neither": neither
    }  # fmt: skip
    shares = [row[k] for k in ("both", "only_first", "only_second", "neither")]
    assert sum(shares) == pytest.approx(1.0) and row["n"] == 60
    for run, robust in zip(content["runs"], (ra, rb), strict=True):
        (r,) = run["rows"]
        k = sum(robust[i] for i in shared)
        assert r["shared_robust"] == k and r["shared_n"] == 60
        low, high = clopper_pearson(k, 60)
        assert (r["shared_ci_low"], r["shared_ci_high"]) == pytest.approx((low, high))
        assert r["own_n"] == len(robust)
    report_a = json.loads((a / "report.json").read_text())
    first = content["runs"][0]["rows"][0]
    assert first["own_robust_accuracy"] == pytest.approx(report_a["results"][1]["robust_accuracy"])
    html = (tmp_path / "compare.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and "run_a" in html and "<script" not in html


def _run(name: str, eps: list[float], ids: list[int], data: str = "digits") -> RunData:
    return RunData(
        name=name,
        folder=Path(name),
        run=name,
        identity={"data": {"name": data, "split": "test", "sha256": "x"}},
        model=f"{name}.pt",
        attacks=["fgsm"],
        eps=eps,
        robust={e: dict.fromkeys(ids, True) for e in eps},
    )


def test_runs_that_share_nothing_are_refused(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="share no budget"):
        comparison([_run("a", [0.1], [1, 2]), _run("b", [0.2], [1, 2])])
    with pytest.raises(InputError, match="share no sample id"):
        comparison([_run("a", [0.1], [1, 2]), _run("b", [0.1], [3, 4])])
    with pytest.raises(InputError, match="different data"):
        comparison([_run("a", [0.1], [1]), _run("b", [0.1], [1], data="mnist5k")])
    shares = comparison([_run("a", [0.1], [1, 2, 3]), _run("b", [0.1], [2, 3, 4])])
    assert shares["agreement"][0]["rows"][0]["n"] == 2
    a, _, root = runs
    with pytest.raises(InputError, match="at least two runs"):
        tasks.compare([a], out=tmp_path)
    with pytest.raises(InputError, match=r"no results\.sqlite"):
        tasks.compare([a, root], out=tmp_path)
    assert not (tmp_path / "compare.json").exists()
