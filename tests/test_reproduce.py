"""``brittle reproduce papernot2016`` at a tiny size, on scikit-learn's 8x8 digits.

The digits (64 features) keep every JSMA iteration cheap, so the whole reproduction runs
in seconds; the properties checked are those of the full-size run: the
fixed rows, the paper's figures, success re-verified by the model, the report's content,
the cached checkpoints and the command line's errors.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from brittle import tasks
from brittle.attacks import JSMA
from brittle.attacks.targets import all_other_targets
from brittle.cli import ERROR_EXIT, STORAGE_EXIT, main
from brittle.data import load_dataset
from brittle.errors import InputError, StorageError
from brittle.eval.lock import folder_lock
from brittle.reproduce import REPRODUCTIONS, cache, papernot2016
from brittle.zoo import load_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

TINY: dict[str, Any] = {
    "n_images": 12,
    "n_second": 4,
    "epochs": 4,
    "dataset": "digits",
    "progress": False,
}
"""A reproduction in seconds: a LeNet trained 4 epochs on the 1,437 training digits."""


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tasks.ReproduceOutcome]:
    out = tmp_path_factory.mktemp("papernot2016")
    return out, tasks.reproduce("papernot2016", out, **TINY)


@pytest.fixture(scope="module")
def report(reproduced: tuple[Path, tasks.ReproduceOutcome]) -> dict[str, Any]:
    out, _ = reproduced
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    return data


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in report["rows"]}


@pytest.mark.slow
def test_the_report_has_exactly_the_fixed_rows_with_the_papers_figures(
    report: dict[str, Any],
) -> None:
    assert [row["id"] for row in report["rows"]] == list(papernot2016.ROW_IDS)
    assert list(papernot2016.ROW_IDS) == [
        "lenet_clean_accuracy",
        "jsma_increase_success",
        "jsma_increase_distortion",
        "jsma_decrease_success",
        "jsma_decrease_distortion",
        "detector_auc",
        "robustness_R",
        "jsma_target_increase_success",
        "jsma_target_increase_distortion",
    ]
    rows = _rows(report)
    assert rows["jsma_increase_success"]["paper"] == pytest.approx(0.971)
    assert rows["jsma_increase_distortion"]["paper"] == pytest.approx(0.0402)
    assert rows["jsma_decrease_success"]["paper"] == pytest.approx(0.647)
    for key in (
        "jsma_decrease_distortion",
        "detector_auc",
        "robustness_R",
        "jsma_target_increase_success",
        "jsma_target_increase_distortion",
    ):
        assert rows[key]["paper"] is None
    for row in report["rows"]:
        assert set(row) == {"id", "quantity", "paper", "ours", "note"}
        assert row["quantity"] and row["note"]
        assert isinstance(row["ours"], float) and 0 <= row["ours"] <= 1, row
        assert row["paper"] is None or 0 <= row["paper"] <= 1
    assert report["paper"]["title"] == "The Limitations of Deep Learning in Adversarial Settings"


@pytest.mark.slow
def test_success_and_distortion_are_the_models_own_verdicts(
    reproduced: tuple[Path, tasks.ReproduceOutcome], report: dict[str, Any]
) -> None:
    """Attack the same rows with the cached model, judge each result by running the model
    here, and find the rows' numbers again."""
    out, _ = reproduced
    clf = load_classifier(out / "lenet.pt")
    test = load_dataset("digits", "test").subset(TINY["n_images"])
    x, y, t = all_other_targets(test.x, test.y, 10)
    rows = _rows(report)
    with torch.no_grad():
        correct = clf.module(x).argmax(1) == y
    runs = (
        (1.0, "paper", "jsma_increase"),
        (-1.0, "paper", "jsma_decrease"),
        (1.0, "target", "jsma_target_increase"),
    )
    for theta, score, prefix in runs:
        result = JSMA(0.145, theta=theta, score=score, targeted=True)(clf, x, y, t)
        with torch.no_grad():
            hit = clf.module(result.x_adv).argmax(1) == t
        assert torch.equal(hit, result.success)
        counted = hit[correct]
        assert rows[f"{prefix}_success"]["ours"] == pytest.approx(counted.float().mean().item())
        changed = (result.x_adv != x).flatten(1).float().mean(1)[correct & hit]
        if len(changed):
            assert rows[f"{prefix}_distortion"]["ours"] == pytest.approx(changed.mean().item())
            assert float(changed.max()) <= 0.145
    accuracy = report["setting"]["models"]["main"]["accuracy"]
    assert rows["lenet_clean_accuracy"]["ours"] == pytest.approx(accuracy)


@pytest.mark.slow
def test_the_setting_states_the_data_models_and_differences(report: dict[str, Any]) -> None:
    setting = report["setting"]
    assert setting["data"]["name"] == "digits" and setting["data"]["bundled"]
    assert any("Not full MNIST" in note for note in report["notes"])
    for key in ("main", "paper_shape"):
        model = setting["models"][key]
        assert 0 <= model["accuracy"] <= 1 and model["parameters"] > 0 and model["architecture"]
    assert setting["models"]["paper_shape"]["arch_kwargs"] == {
        "channels": [20, 50],
        "hidden": [500],
    }
    assert setting["training"]["optimizer"] == "adam" and setting["training"]["epochs"] == 4
    assert setting["sizes"]["images"] == 12 and setting["sizes"]["attacks_per_run"] == 108
    assert setting["sizes"]["second_model_images"] == 4
    for results in setting["second_model_results"].values():
        assert 0 <= results["success"] <= 1 and results["attacks"] == 36
    assert len(setting["differences"]) >= 4
    matrices = report["figures"]["source_target"]["increase_paper"]
    assert sum(map(sum, matrices["attempts"])) == 9 * setting["sizes"]["correctly_classified"]
    assert all(v is None or 0 <= v <= 1 for row in matrices["success_rate"] for v in row)
    assert report["figures"]["detector"]["auc"] == _rows(report)["detector_auc"]["ours"]
    assert set(report["timing"]) >= {"train_main", "jsma_increase_paper", "total"}


@pytest.mark.slow
def test_the_html_shows_every_row_the_setting_and_the_figures(
    reproduced: tuple[Path, tasks.ReproduceOutcome], report: dict[str, Any]
) -> None:
    out, outcome = reproduced
    page = (out / "report.html").read_text()
    text = html.unescape(page)
    for row in report["rows"]:
        assert f'id="{row["id"]}"' in page
        assert row["quantity"] in text and row["note"] in text
    assert page.count("data:image/png;base64,") == len(outcome.reproduction.figures) >= 6
    for caption in (
        "Figures 12 and 13",
        "Figure 14",
        "Figure 15",
        "Section 6 detector",
        "Figure 1:",
    ):
        assert caption in page
    assert 'class="warn"' in page and "Not full MNIST" in page  # the bundled-data note
    assert 'name="viewport"' in page and page.count('<div class="scroll">') >= 3
    assert "n/a" in page  # the rows without a paper figure


@pytest.mark.slow
def test_another_recipe_trains_again(
    reproduced: tuple[Path, tasks.ReproduceOutcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = reproduced
    for name in papernot2016.CHECKPOINTS.values():
        (tmp_path / name).write_bytes((out / name).read_bytes())
    trained: list[int] = []
    real = papernot2016.train_model

    def counting(*args: Any, **kwargs: Any) -> Any:
        trained.append(kwargs["epochs"])
        return real(*args, **kwargs)

    monkeypatch.setattr(papernot2016, "train_model", counting)
    outcome = tasks.reproduce("papernot2016", tmp_path, **{**TINY, "epochs": 1, "n_images": 2})
    assert trained == [1, 1]
    assert not outcome.reproduction.setting["models"]["main"]["reused_checkpoint"]


@pytest.mark.slow
def test_the_early_snapshot_is_what_training_that_long_gives(
    reproduced: tuple[Path, tasks.ReproduceOutcome],
) -> None:
    from brittle.zoo import build_model, load_checkpoint, train_model

    out, outcome = reproduced
    short, meta = load_checkpoint(out / papernot2016.CHECKPOINTS["short"])
    assert meta["recipe"]["epochs"] == papernot2016.SHORT_EPOCHS < TINY["epochs"]
    train = load_dataset("digits", "train")
    fresh = build_model("lenet", train.input_shape, 10, seed=0, **papernot2016.MAIN)
    train_model(fresh, train.x, train.y, epochs=papernot2016.SHORT_EPOCHS, progress=False)
    for mine, theirs in zip(short.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)
    results = outcome.reproduction.setting["second_model_results"]
    assert {r["model"] for r in results.values()} == {"main", "paper_shape", "short"}


def test_an_unknown_reproduction_exits_2_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reproduce", "papernot2099", "--out", str(tmp_path / "r")]) == ERROR_EXIT
    err = capsys.readouterr().err
    assert err.startswith("error: unknown reproduction 'papernot2099'") and err.count("\n") == 1
    for name in REPRODUCTIONS:
        assert name in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(InputError, match="fawzi2018 or goodfellow2014 or papernot2016"):
        tasks.reproduce("szegedy2013", tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-images", "0"], "--n-images must be an integer >= 1"),
        (["--epochs", "x"], "--epochs must be an integer"),
        (["--n-images", "5000"], "--n-images 5000 is more than the 360 images of digits"),
    ],
)
def test_bad_sizes_exit_2_before_any_training(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before checking the sizes")

    monkeypatch.setattr(papernot2016, "train_model", no_training)
    real = tasks.reproduce
    monkeypatch.setattr(tasks, "reproduce", lambda *a, **k: real(*a, **k, dataset="digits"))
    code = main(["reproduce", "papernot2016", "--out", str(tmp_path), *args])
    assert code == ERROR_EXIT
    assert message in capsys.readouterr().err


def test_a_folder_in_use_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cache, "load_dataset", lambda *a, **k: pytest.fail("did work"))
    with folder_lock(tmp_path):
        with pytest.raises(StorageError, match="in use"):
            tasks.reproduce("papernot2016", tmp_path, **TINY)
        assert main(["reproduce", "papernot2016", "--out", str(tmp_path)]) == STORAGE_EXIT
    assert "in use" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_reruns_from_the_cached_checkpoints_and_prints_the_rows(
    reproduced: tuple[Path, tasks.ReproduceOutcome],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same reproduction again, from the command line: no training, the same rows."""
    out, first = reproduced
    checkpoints = [out / name for name in papernot2016.CHECKPOINTS.values()]
    before = [path.stat().st_mtime_ns for path in checkpoints]

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a re-run trained again")

    monkeypatch.setattr(papernot2016, "train_model", no_training)
    seen: dict[str, Any] = {}
    real = tasks.reproduce

    def on_digits(name: str, folder: Path, **kwargs: Any) -> tasks.ReproduceOutcome:
        seen.update(kwargs, name=name, out=folder)
        outcome = real(name, folder, **{**kwargs, "dataset": "digits"})
        seen["outcome"] = outcome
        return outcome

    monkeypatch.setattr(tasks, "reproduce", on_digits)
    args = ["reproduce", "papernot2016", "--out", str(out), "--n-images", "12"]
    assert main([*args, "--n-second", "4", "--epochs", "4", "--seed", "0", "--device", "cpu"]) == 0
    assert seen["n_images"] == 12 and seen["n_second"] == 4 and seen["epochs"] == 4
    assert seen["device"] == "cpu" and seen["out"] == out and seen["seed"] == 0
    assert [path.stat().st_mtime_ns for path in checkpoints] == before
    again = seen["outcome"].reproduction
    assert all(model["reused_checkpoint"] for model in again.setting["models"].values())
    assert [r.ours for r in again.rows] == [r.ours for r in first.reproduction.rows]
    printed = capsys.readouterr().out
    for row_id in papernot2016.ROW_IDS:
        assert row_id in printed
    assert f"report: {out / 'report.html'}" in printed


def test_the_help_names_the_reproductions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--help"]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "papernot2016" in text and "--n-images" in text and "--out DIR" in text
