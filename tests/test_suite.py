"""The standard suite: APGD-CE on every sample, APGD-T and Square on the samples still
standing; per sample the worst case, resumable like any evaluation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier, tasks
from brittle.cli import main
from brittle.errors import InputError
from brittle.eval import ResultStore, evaluate
from brittle.eval.runner import Evaluation
from brittle.eval.suite import LABEL_QUERIES, SCORE_QUERIES, suite_attacks
from brittle.threat import Capability, Norm

pytestmark = pytest.mark.usefixtures("one_thread")

N, EPS = 40, [0.1, 0.3]


@pytest.fixture(scope="module")
def data() -> tuple[Classifier, Tensor, Tensor]:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.rand(N, 1, 8, 8)
    classifier = Classifier(module)
    y = classifier.predict(x)
    y[::5] = (y[::5] + 1) % 4  # a few samples the model gets wrong
    return classifier, x, y


def _suite(data: tuple[Classifier, Tensor, Tensor], path: Path, batch: int) -> Evaluation:
    classifier, x, y = data
    with ResultStore(path) as store:
        return evaluate(
            classifier,
            suite_attacks("standard", "linf", Capability.WHITE_BOX),
            (x, y),
            EPS,
            batch_size=batch,
            store=store,
            run_key="r",
            progress=False,
        )


def _rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT attack, eps, sample_id, pred_adv, success, gradients, queries FROM samples "
            "ORDER BY attack, eps, sample_id"
        ).fetchall()


def test_the_suite_follows_the_threat_model() -> None:
    white = suite_attacks("standard", Norm.LINF, Capability.WHITE_BOX)
    assert [a.name for a in white] == ["apgd", "apgd-t", "fab-t", "square"]
    assert [a.survivors_only for a in white] == [False, True, True, True]
    assert white[3].params["max_queries"] == SCORE_QUERIES
    scores = suite_attacks("standard", "l2", Capability.ORACLE_SCORES)
    assert [(a.name, a.survivors_only) for a in scores] == [("square", False), ("simba", True)]
    (simba,) = suite_attacks("standard", "l2", Capability.ORACLE_SCORES, (64,))
    assert simba.name == "simba" and not simba.survivors_only
    labels = suite_attacks("standard", "linf", Capability.ORACLE_LABELS)
    assert [(a.name, a.survivors_only) for a in labels] == [("hopskipjump", False), ("rays", True)]
    assert all(a.params["max_queries"] == LABEL_QUERIES for a in labels)
    (l2,) = suite_attacks("standard", "l2", Capability.ORACLE_LABELS)  # RayS is linf only
    assert l2.name == "hopskipjump" and l2.params["norm"] == "l2"
    (training,) = suite_attacks("standard", "linf", Capability.TRAINING_DATA, data="digits")
    (samples,) = suite_attacks("standard", "linf", Capability.SAMPLES, data="digits")
    assert training.name == samples.name == "substitute"
    assert training.params["seed_size"] is None and samples.params["seed_size"] == 150
    for transfer in (training, samples):  # the data's own labels, no query of the model
        assert transfer.build(0.3).capability is Capability.SAMPLES
        assert transfer.params["data"] == "digits" and transfer.params["split"] == "train"
    # Square's windows need an image layout: other inputs get SimBA
    for shape, name in (((1, 28, 28), "square"), ((3, 2, 40), "simba"), ((64,), "simba")):
        assert suite_attacks("standard", "linf", Capability.WHITE_BOX, shape)[3].name == name
    for bad, words in (
        (("standard", "l1", Capability.WHITE_BOX), "linf and l2"),
        (("strong", "linf", Capability.WHITE_BOX), "unknown suite"),
        (("standard", "linf", Capability.SAMPLES), "name it with --dataset"),
    ):
        with pytest.raises(InputError, match=words):
            suite_attacks(*bad)


def test_later_attacks_run_only_on_the_samples_still_standing(data, tmp_path: Path) -> None:
    evaluation = _suite(data, tmp_path / "s.sqlite", batch=8)
    labels = evaluation.attacks
    rows = _rows(tmp_path / "s.sqlite")
    for i, eps in enumerate(EPS):
        case = evaluation.worst[i]
        keys = evaluation.keys
        attacked = {
            label: {sid for a, e, sid, *_ in rows if a == keys[label] and e == eps}
            for label in labels
        }
        assert len(attacked[labels[0]]) == N  # APGD-CE attacks every sample
        standing = set(case.ids[case.correct_clean & ~case.broken[0]].tolist())
        assert attacked[labels[1]] == standing  # APGD-T: what APGD-CE left standing
        standing -= set(case.ids[case.broken[1]].tolist())
        assert attacked[labels[2]] == standing  # Square: what both left standing
        # the worst case is the per-sample OR, and each broken sample is named once
        assert torch.equal(case.robust, case.correct_clean & ~case.broken.any(dim=0))
        summary = evaluation.summaries[i]
        broken = int((case.correct_clean & ~case.robust).sum())
        assert sum(summary["broken_by"].values()) == broken
        assert summary["robust_count"] == int(case.robust.sum())
        assert evaluation.per_attack[labels[1]][i]["n"] == len(attacked[labels[1]])
    top = evaluation.summaries[-1]
    assert top["robust_accuracy"] <= evaluation.per_attack[labels[0]][-1]["robust_accuracy"]


def test_a_suite_resumed_at_another_batch_size_stores_the_same_rows(data, tmp_path: Path) -> None:
    whole = tmp_path / "whole.sqlite"
    first = _suite(data, whole, batch=8)
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(whole.read_bytes())
    first_key = first.keys[first.attacks[0]]
    with sqlite3.connect(cut) as db:  # as if killed during APGD-CE at the largest budget
        db.execute("DELETE FROM samples WHERE eps = ? AND attack != ?", (EPS[0], first_key))
        db.execute("DELETE FROM samples WHERE eps = ? AND sample_id >= 20", (EPS[-1],))
    assert len(_rows(cut)) < len(_rows(whole))
    resumed = _suite(data, cut, batch=5)
    assert _rows(cut) == _rows(whole)
    untimed = [
        [{k: v for k, v in s.items() if k != "seconds"} for s in e.summaries]
        for e in (first, resumed)
    ]
    assert json.dumps(untimed[0]) == json.dumps(untimed[1])  # NaN equals NaN as text
    assert resumed.attacked > 0 and first.reused == 0


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    return tasks.train(dataset="digits", epochs=1, out=folder / "m.pt", progress=False).path


def test_evaluate_with_the_standard_suite_reports_and_resumes(model: Path, tmp_path: Path) -> None:
    outcome = tasks.evaluate_model(
        model=model,
        out=tmp_path / "ev",
        dataset="digits",
        suite="standard",
        eps_list=[0.3],
        n=24,
        progress=False,
    )
    report = json.loads(outcome.paths.json.read_text())
    assert [a["label"] for a in report["attacks"]] == [
        "apgd:loss=ce",
        "apgd-t",
        "fab-t",
        f"square:max_queries={SCORE_QUERIES}",
    ]
    assert [a["survivors_only"] for a in report["attacks"]] == [False, True, True, True]
    names = {c["name"]: c["status"] for c in report["sanity_checks"]}
    assert names["black_box"] in ("passed", "warning") and names["single_step"] != "not run"
    again = tasks.resume_evaluation(tmp_path / "ev", {"suite": "standard"}, progress=False)
    assert again.evaluation.attacked == 0
    assert json.dumps(again.evaluation.summaries) == json.dumps(outcome.evaluation.summaries)
    for bad, words in (
        ({"attacks": ["fgsm"]}, "either --suite or --attack"),
        ({"targeted": True}, "untargeted"),
        ({"params": {"norm": "l1"}}, "linf and l2"),
    ):
        with pytest.raises(InputError, match=words):
            tasks.evaluate_model(
                model=model,
                out=tmp_path / "bad",
                dataset="digits",
                suite="standard",
                n=4,
                progress=False,
                **bad,
            )


def test_the_command_line_runs_the_suite_and_refuses_it_with_attacks(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["evaluate", "--model", str(model), "--dataset", "digits", "--eps", "0.2", "--n", "8"]
    assert main([*common, "--suite", "standard", "--out", str(tmp_path / "ev")]) == 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["attack"]["name"].startswith("standard suite: worst case of apgd:loss=ce")
    bad = [*common, "--suite", "standard", "--attack", "fgsm", "--out", str(tmp_path / "b")]
    assert main(bad) == 2
    assert "either --suite or --attack" in capsys.readouterr().err
