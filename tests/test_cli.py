"""The ``brittle`` command through typer's test runner, on scikit-learn's 8x8 digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from brittle.cli import app

runner = CliRunner()
SUMMARY_KEYS = {
    "clean_accuracy",
    "success_rate",
    "robust_accuracy",
    "mean_confidence_misclassified",
    "mean_l0",
    "mean_l2",
    "mean_linf",
    "median_l2",
    "median_linf",
    "gradient_evaluations",
    "n",
    "seconds",
    "threat_model",
}


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "digits.pt"
    result = invoke(
        "train", "--dataset", "digits", "--epochs", "1", "--n-train", "400", "--out", path
    )
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.stdout and path.is_file()
    return path


def test_every_command_has_help() -> None:
    for command in ("train", "attack", "evaluate", "demo"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "--seed" in result.stdout and "--device" in result.stdout


def test_attack_writes_the_summary_and_the_examples(model: Path, tmp_path: Path) -> None:
    out, saved = tmp_path / "out.json", tmp_path / "adv.npz"
    result = invoke(
        "attack", "--model", model, "--eps", "0.2", "--n", "24", "--json", out, "--save", saved
    )
    assert result.exit_code == 0, result.output
    assert "robust_accuracy" in result.stdout
    summary = json.loads(out.read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["n"] == 24 and summary["threat_model"]["eps"] == 0.2
    assert summary["mean_linf"] is None or summary["mean_linf"] <= 0.2 + 1e-6
    arrays = np.load(saved)
    assert arrays["x_adv"].shape == arrays["x"].shape == (24, 1, 8, 8)
    assert np.abs(arrays["x_adv"] - arrays["x"]).max() <= 0.2 + 1e-6
    assert arrays["success"].dtype == bool and arrays["y"].shape == (24,)


def test_evaluate_writes_the_report_and_resumes(model: Path, tmp_path: Path) -> None:
    args = ("evaluate", "--model", model, "--eps", "0.1,0.3", "--n", "20", "--out", tmp_path)
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    for name in ("results.sqlite", "report.json", "report.html"):
        assert (tmp_path / name).is_file()
    report = json.loads((tmp_path / "report.json").read_text())
    assert [row["eps"] for row in report["results"]] == [0.1, 0.3]
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "resuming" in again.stdout and "remaining 0" in again.stdout
    rerun = json.loads((tmp_path / "report.json").read_text())
    assert rerun["results"][0]["robust_accuracy"] == report["results"][0]["robust_accuracy"]
    assert rerun["timing"]["samples_attacked"] == 0


def test_demo_on_a_small_set_prints_where_the_report_is(tmp_path: Path) -> None:
    result = invoke(
        "demo", "--out", tmp_path, "--dataset", "digits", "--n-train", "200", "--n", "16"
    )
    assert result.exit_code == 0, result.output
    html = tmp_path / "report.html"
    assert html.is_file() and (tmp_path / "lenet.pt").is_file()
    assert str(html) in result.stdout and "headline" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("attack", "--model", "missing.pt"), "missing.pt"),
        (("attack", "--attack", "nope"), "unknown attack"),
        (("attack", "--eps", "0.1", "--steps", "5"), "does not take steps"),
        (("evaluate", "--out", "x", "--eps", "0.1,big"), "--eps"),
        (("train", "--dataset", "nope", "--out", "x.pt"), "unknown dataset"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    model: Path, args: tuple[str, ...], message: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if "--model" not in args and args[0] == "attack":
        args = (*args, "--model", str(model))
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
