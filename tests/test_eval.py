"""The evaluation engine: per-sample store, batched runs, resume, sanity checks, report files."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier, ThreatModel
from brittle.attacks.base import AttackRun
from brittle.attacks.fgsm import FGSM
from brittle.attacks.iterative import PGD
from brittle.checks.probes import probe_checks
from brittle.checks.sweep import sweep_checks
from brittle.errors import InputError
from brittle.eval import ResultStore, evaluate, run_attack, run_key
from brittle.eval.runner import Evaluation, single_plan
from brittle.report import build_report, write_report

N, BATCH, EPS = 40, 8, [0.1, 0.3]


class CountingFGSM(FGSM):
    """FGSM that counts its batches and samples, and can stop the run after ``limit`` batches."""

    def __init__(self, eps: float, log: dict[str, int], limit: int | None = None) -> None:
        super().__init__(eps)
        self.log, self.limit = log, limit

    def _run(self, run: AttackRun) -> Tensor:
        if self.limit is not None and self.log["calls"] >= self.limit:
            raise KeyboardInterrupt  # the run is killed while this batch is in flight
        self.log["calls"] += 1
        self.log["samples"] += len(run.x)
        return super()._run(run)


@pytest.fixture(scope="module")
def data() -> tuple[Classifier, Tensor, Tensor]:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.rand(N, 1, 8, 8)
    classifier = Classifier(module)
    y = classifier.predict(x)
    y[::5] = (y[::5] + 1) % 4  # a few samples the model gets wrong
    return classifier, x, y


def _run(
    data: tuple[Classifier, Tensor, Tensor],
    store: ResultStore,
    log: dict[str, int],
    limit: int | None = None,
) -> Evaluation:
    classifier, x, y = data
    return evaluate(
        classifier,
        lambda eps: CountingFGSM(eps, log, limit),
        (x, y),
        EPS,
        batch_size=BATCH,
        store=store,
        run_key="k",
        progress=False,
    )


def _without_time(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "seconds"} for s in summaries]


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def eq(u: Any, v: Any) -> bool:
        both_nan = isinstance(u, float) and isinstance(v, float) and math.isnan(u) and math.isnan(v)
        return both_nan or u == v

    return all(eq(s[k], t[k]) for s, t in zip(a, b, strict=True) for k in s)


def test_interrupted_run_resumes_without_repeating_work(data, tmp_path: Path) -> None:
    full_log = {"calls": 0, "samples": 0}
    with ResultStore(tmp_path / "full.sqlite") as store:
        full = _run(data, store, full_log)
    assert full_log == {"calls": len(EPS) * N // BATCH, "samples": len(EPS) * N}

    log = {"calls": 0, "samples": 0}
    path = tmp_path / "resumed.sqlite"
    with ResultStore(path) as store, pytest.raises(KeyboardInterrupt):
        _run(data, store, log, limit=3)
    assert log["calls"] == 3
    with ResultStore(path) as store:
        (key,) = {row[0] for row in store.rows("SELECT attack FROM samples")}
        stored = sum(len(store.done("k", key, eps)) for eps in EPS)
        assert stored == 3 * BATCH  # the batch in flight was lost

    rest = {"calls": 0, "samples": 0}
    with ResultStore(path) as store:
        resumed = _run(data, store, rest)
    assert rest == {"calls": full_log["calls"] - 3, "samples": len(EPS) * N - 3 * BATCH}
    assert resumed.reused == 3 * BATCH and resumed.attacked == len(EPS) * N - 3 * BATCH
    assert _same(_without_time(resumed.summaries), _without_time(full.summaries))

    again = {"calls": 0, "samples": 0}
    with ResultStore(path) as store:
        third = _run(data, store, again)
    assert again["calls"] == 0 and third.attacked == 0
    assert _same(_without_time(third.summaries), _without_time(full.summaries))


def test_stored_summary_matches_the_direct_attack(data, tmp_path: Path) -> None:
    classifier, x, y = data
    with ResultStore(tmp_path / "s.sqlite") as store:
        evaluation = evaluate(
            classifier,
            FGSM,
            (x, y),
            [0.2],
            batch_size=BATCH,
            store=store,
            run_key="a",
            progress=False,
        )
    direct = FGSM(0.2)(classifier, x, y).summary()
    stored = evaluation.summaries[0]
    for key in ("clean_accuracy", "success_rate", "robust_accuracy", "gradient_evaluations"):
        assert stored[key] == pytest.approx(direct[key])
    for key in ("mean_confidence_misclassified", "mean_l2", "median_linf"):
        assert stored[key] == pytest.approx(direct[key], rel=1e-5)
    kept = evaluation.examples[0]
    assert kept.indices == list(range(8))
    assert torch.equal(kept.clean, x[:8])
    assert (kept.adversarial - kept.clean).abs().max() <= 0.2 + 1e-6


def test_store_keeps_min_eps_and_refuses_old_files(data, tmp_path: Path) -> None:
    """Minimize's per-sample smallest eps (inf where not fooled) survives the store; a store
    of schema 1 (keyed by run_key, eps, idx) is refused, never upgraded nor changed."""
    from brittle.attacks.minimize import Minimize

    classifier, x, y = data
    result = Minimize(FGSM(0.5), high=0.5, tolerance=1e-2)(classifier, x[:8], y[:8])
    assert result.min_eps is not None
    with ResultStore(tmp_path / "m.sqlite") as store:
        store.insert("a", "m", 0.5, list(range(8)), result)
        stored = store.result("a", "m", 0.5).min_eps
    assert stored is not None and torch.equal(stored, result.min_eps.double())

    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute(
            "CREATE TABLE samples (run_key TEXT NOT NULL, eps REAL NOT NULL, idx INTEGER NOT "
            "NULL, y INTEGER NOT NULL, target INTEGER, pred_clean INTEGER NOT NULL, pred_adv "
            "INTEGER NOT NULL, success INTEGER NOT NULL, confidence_adv REAL NOT NULL, l0 REAL "
            "NOT NULL, l1 REAL NOT NULL, l2 REAL NOT NULL, linf REAL NOT NULL, gradients "
            "INTEGER NOT NULL, queries INTEGER NOT NULL, PRIMARY KEY (run_key, eps, idx))"
        )
        db.execute(
            "INSERT INTO samples VALUES ('a', 0.5, 0, 1, NULL, 1, 2, 1, 0.9, 0, 0, 0, 0, 1, 2)"
        )
    before = old.read_bytes()
    with pytest.raises(InputError, match="result store of schema 1"):
        ResultStore(old)
    assert old.read_bytes() == before


def test_run_attack_in_batches_equals_one_batch(data) -> None:
    classifier, x, y = data
    batched = run_attack(classifier, FGSM(0.1), x, y, batch_size=7, progress=False)
    whole = FGSM(0.1)(classifier, x, y)
    assert len(batched) == N
    assert torch.allclose(batched.x_adv, whole.x_adv)
    assert torch.equal(batched.success, whole.success)


def test_bad_input_is_refused(data, tmp_path: Path) -> None:
    classifier, x, y = data
    with pytest.raises(InputError, match="batch_size"):
        run_attack(classifier, FGSM(0.1), x, y, batch_size=0, progress=False)
    with pytest.raises(InputError, match="nothing to attack"):
        run_attack(classifier, FGSM(0.1), x[:0], y[:0], progress=False)
    with ResultStore(tmp_path / "b.sqlite") as store, pytest.raises(InputError, match="eps"):
        evaluate(classifier, FGSM, (x, y), [], batch_size=8, store=store, run_key="a")
    (tmp_path / "junk.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(InputError, match="not a brittle result store"):
        ResultStore(tmp_path / "junk.sqlite").done("a", 0.1)


def test_a_batch_is_stored_all_or_nothing(data, tmp_path: Path) -> None:
    classifier, x, y = data
    result = FGSM(0.1)(classifier, x[:4], y[:4])
    with ResultStore(tmp_path / "t.sqlite") as store:
        with pytest.raises(InputError):
            store.insert("k", "a", 0.1, [0, 1, 2], result)
        assert store.done("k", "a", 0.1) == set()
        store.insert("k", "a", 0.1, [0, 1, 2, 3], result)
        assert store.done("k", "a", 0.1) == {0, 1, 2, 3}
        assert store.done("k", "a", 0.2) == set() and store.done("other", "a", 0.1) == set()
        assert store.done("k", "b", 0.1) == set()
    with sqlite3.connect(tmp_path / "t.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone() == (4,)


def test_run_key_depends_on_content_not_key_order() -> None:
    a = run_key({"model": "abc", "n": 10, "attack": {"name": "FGSM"}})
    assert a == run_key({"attack": {"name": "FGSM"}, "n": 10, "model": "abc"})
    assert a != run_key({"model": "abc", "n": 11, "attack": {"name": "FGSM"}})


def _summary(robust: float, success: float) -> dict[str, float]:
    return {"robust_accuracy": robust, "success_rate": success}


def _warnings(eps: list[float], rows: list[dict[str, Any]]) -> list[str]:
    return [c.message for c in sweep_checks(eps, rows) if c.warned]


def test_nonfinite_outputs_are_a_warning() -> None:
    rows = [
        {"robust_accuracy": 0.5, "success_rate": 1.0, "nonfinite_outputs": 0},
        {"robust_accuracy": 0.0, "success_rate": 1.0, "nonfinite_outputs": 3},
    ]
    (warning,) = _warnings([0.1, 0.2], rows)
    assert "NaN or inf outputs on 3" in warning and "eps=0.2" in warning


def test_the_sweep_checks_pass_or_warn_with_their_numbers() -> None:
    checks = sweep_checks([0.1, 0.3], [_summary(0.5, 0.4), _summary(0.0, 1.0)])
    assert [c.status for c in checks] == ["passed", "passed"]
    assert checks[0].numbers == {"eps": [0.1, 0.3], "robust_accuracy": [0.5, 0.0]}
    rising = _warnings([0.1, 0.3], [_summary(0.2, 0.8), _summary(0.4, 1.0)])
    assert len(rising) == 1 and "rises" in rising[0]


def test_report_files_have_the_numbers_and_the_warnings(data, tmp_path: Path) -> None:
    classifier, x, y = data
    # one step of 1e-6 from the clean input: FGSM is stronger, and the check says so
    plan = single_plan(lambda e: PGD(e, steps=1, step_size=1e-6, random_start=False), 0.01)
    with ResultStore(tmp_path / "results.sqlite") as store:
        evaluation = evaluate(
            classifier,
            [plan],
            (x, y),
            [0.01, 0.05],
            batch_size=16,
            store=store,
            run_key="r",
            progress=False,
        )
    threat = ThreatModel(eps=0.05)
    checks = probe_checks(classifier, evaluation, [plan], x, y, torch.arange(N), goal=threat.goal)
    report = build_report(
        evaluation,
        threat=threat,
        model={"arch": "tiny"},
        dataset={"name": "random", "split": "test", "n": N},
        attack={"name": "FGSM", "params": {"norm": "linf"}},
        checks=checks,
    )
    paths = write_report(tmp_path, report, evaluation, classes=["a", "b", "c", "d"])
    saved = json.loads(paths.json.read_text())
    for key in ("threat_model", "model", "dataset", "attack", "results", "timing", "warnings"):
        assert key in saved
    assert saved["threat_model"]["description"] == threat.describe()
    assert [row["eps"] for row in saved["results"]] == [0.01, 0.05]
    row = saved["results"][-1]
    for key in ("clean_accuracy", "success_rate", "robust_accuracy", "mean_linf"):
        assert key in row
    assert row["robust_accuracy"] == pytest.approx(evaluation.summaries[-1]["robust_accuracy"])
    single = next(c for c in saved["sanity_checks"] if c["name"] == "single_step")
    assert single["status"] == "warning", "FGSM breaks what a step of 1e-6 cannot"
    assert saved["warnings"] == [
        c["message"] for c in saved["sanity_checks"] if c["status"] == "warning"
    ]
    html = paths.html.read_text()
    assert "Warning:" in html and html.count("data:image/png;base64,") == 3  # curves, grid, heatmap
    assert threat.describe().replace("<", "&lt;") in html


class StoppingPGD(PGD):
    """PGD with random start and restarts that interrupts the run after ``limit`` batches."""

    def __init__(self, eps: float, log: dict[str, int], limit: int | None = None) -> None:
        super().__init__(eps, steps=3, restarts=2)
        self.log, self.limit = log, limit

    def _run(self, run: AttackRun) -> Tensor:
        if self.limit is not None and self.log["calls"] >= self.limit:
            raise KeyboardInterrupt
        self.log["calls"] += 1
        return super()._run(run)


def _rows(path: Path) -> list[tuple[Any, ...]]:
    """Every stored per-sample row but the timing, in key order."""
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT eps, sample_id, y, target, pred_clean, pred_adv, success, l0, l1, l2, linf, "
            "gradients, queries FROM samples ORDER BY eps, sample_id"
        ).fetchall()


def test_a_run_resumed_with_another_batch_size_equals_an_uninterrupted_one(
    data, tmp_path: Path
) -> None:
    """A stochastic attack (random starts, restarts), interrupted at batch size 8 and resumed
    at batch size 7, stores exactly the rows of an uninterrupted run at batch size 16."""
    classifier, x, y = data
    ids = torch.arange(100, 100 + N)  # the samples' ids in their data set

    def run(path: Path, batch: int, limit: int | None, log: dict[str, int]) -> None:
        with ResultStore(path) as store:
            evaluate(
                classifier,
                lambda eps: StoppingPGD(eps, log, limit),
                (x, y),
                EPS,
                batch_size=batch,
                store=store,
                run_key="k",
                ids=ids,
                progress=False,
            )

    run(tmp_path / "full.sqlite", 16, None, {"calls": 0})
    resumed = tmp_path / "resumed.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run(resumed, 8, 3, {"calls": 0})
    run(resumed, 7, None, {"calls": 0})
    got, want = _rows(resumed), _rows(tmp_path / "full.sqlite")
    assert len(got) == len(want) == len(EPS) * N
    for a, b in zip(got, want, strict=True):  # the norms up to float rounding of other batches
        assert a[:7] == b[:7] and a[11:] == b[11:] and a[7:11] == pytest.approx(b[7:11], abs=1e-5)


def test_the_report_shows_values_as_a_reader_expects(data, tmp_path: Path) -> None:
    """User text is escaped; no Python reprs (None, False, dicts), float32 budgets to 4
    digits, the table scrolls inside a narrow window, and non-finite outputs have a column."""
    classifier, x, y = data
    with ResultStore(tmp_path / "results.sqlite") as store:
        evaluation = evaluate(
            classifier, FGSM, (x, y), [0.1], batch_size=16, store=store, run_key="r", progress=False
        )
    report = build_report(
        evaluation,
        threat=ThreatModel(eps=float(torch.tensor(0.1))),  # 0.10000000149011612
        model={"arch": "tiny", "arch_kwargs": {"channels": [16, 32]}, "preprocessing": None},
        dataset={"name": "<script>alert(1)</script>", "split": "test", "n": N, "data_dir": None},
        attack={"name": "FGSM", "params": {"norm": "linf", "targeted": False}},
    )
    html = write_report(tmp_path, report, evaluation, classes=["a", "b", "c", "d"]).html.read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    body = html.split("<body>", 1)[1]
    for repr_text in (">None<", ">False<", ">True<", "{&#39;", "0.1000000"):
        assert repr_text not in body, repr_text
    assert "channels: 16, 32" in body and ">no<" in body and ">none<" in body
    assert '<div class="scroll"><table>' in body and "overflow-x: auto" in html
    assert "non-finite outputs" in body


def test_robust_accuracy_interval_is_clopper_pearson_on_the_counts(data, tmp_path: Path) -> None:
    """The interval equals the exact binomial one, from the beta quantiles of the counts."""
    from scipy.stats import beta

    from brittle.eval import clopper_pearson

    classifier, x, y = data
    with ResultStore(tmp_path / "ci.sqlite") as store:
        evaluation = evaluate(
            classifier, FGSM, (x, y), [0.0, 0.05, 0.3], batch_size=16, store=store,
            run_key="r", progress=False,
        )  # fmt: skip
    for summary in evaluation.summaries:
        k, n = summary["robust_count"], summary["n"]
        assert k == round(summary["robust_accuracy"] * n)
        low = beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
        high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
        assert summary["robust_ci_low"] == pytest.approx(low, abs=1e-9)
        assert summary["robust_ci_high"] == pytest.approx(high, abs=1e-9)
        assert summary["robust_ci_low"] <= summary["robust_accuracy"] <= summary["robust_ci_high"]
    assert clopper_pearson(0, 0) != clopper_pearson(0, 0)  # nan: no samples, no interval
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0


def test_the_worst_case_is_the_per_sample_or_over_the_attacks(data, tmp_path: Path) -> None:
    """Broken in the worst case exactly when some attack broke the sample; the first attack
    that did is named; each attack's own rows are kept; the counts add up."""
    from dataclasses import replace

    from brittle.eval.runner import WORST_CASE, single_plan

    classifier, x, y = data
    plans = [
        single_plan(lambda e: FGSM(e), 0.1),
        replace(single_plan(lambda e: PGD(e, steps=2), 0.1), label="pgd-2"),
        replace(single_plan(lambda e: PGD(e, steps=10), 0.1), label="pgd-10"),
    ]
    ids = torch.arange(1000, 1000 + N)
    with ResultStore(tmp_path / "w.sqlite") as store:
        evaluation = evaluate(
            classifier, plans, (x, y), [0.02, 0.08], batch_size=9, store=store, run_key="r",
            ids=ids, progress=False,
        )  # fmt: skip
        for i, eps in enumerate(evaluation.eps):
            rows = [store.result("r", p.key, eps, ids.tolist()) for p in plans]
            broken = torch.stack([r.correct_clean & (r.pred_adv != r.y) for r in rows])
            case = evaluation.worst[i]
            assert torch.equal(case.broken, broken)
            assert torch.equal(case.robust, rows[0].correct_clean & ~broken.any(dim=0))
            for j in range(N):
                hit = [p.label for p, b in zip(plans, broken[:, j], strict=True) if b]
                assert case.broken_by[j] == (hit[0] if hit else None)
            summary = evaluation.summaries[i]
            assert summary["attack"] == WORST_CASE
            assert summary["robust_count"] == int(case.robust.sum())
            assert sum(summary["broken_by"].values()) == int(broken.any(dim=0).sum())
            alone = [int((broken[a] & (broken.sum(dim=0) == 1)).sum()) for a in range(3)]
            assert list(summary["broken_alone"].values()) == alone
            assert summary["gradient_evaluations"] == sum(int(r.gradients.sum()) for r in rows)
            for p, r in zip(plans, rows, strict=True):
                own = evaluation.per_attack[p.label][i]
                assert own["robust_accuracy"] == pytest.approx(float(r.robust.float().mean()))
                assert summary["robust_accuracy"] <= own["robust_accuracy"] + 1e-12
    report = build_report(
        evaluation,
        threat=ThreatModel(eps=0.08),
        model={"arch": "tiny"},
        dataset={"name": "random", "split": "test", "n": N},
        attack={"name": "worst case", "params": {}},
    )
    assert set(report["per_attack"]) == {p.label for p in plans}
    assert report["results"][-1]["broken_by"] == evaluation.summaries[-1]["broken_by"]
    assert report["confidence"]["level"] == 0.95
    paths = write_report(tmp_path, report, evaluation, classes=["a", "b", "c", "d"])
    assert json.loads(paths.json.read_text())["results"][0]["robust_ci_low"] is not None
