"""The ``brittle`` command through :func:`brittle.cli.main`, on scikit-learn's 8x8 digits."""

from __future__ import annotations

import importlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from brittle import tasks
from brittle.attacks.registry import attack_class, attack_names, make_attack, minimize_parameters
from brittle.cli import BROKEN_PIPE_EXIT, main
from brittle.errors import STORAGE_EXIT, InputError, StorageError

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
COMMANDS = ("train", "attack", "evaluate", "demo")
CLI = [sys.executable, "-c", "import sys; from brittle.cli import main; sys.exit(main())"]
"""The command in a process of its own, as the console script runs it."""
UNBOUNDED = "ran without a budget"
"""The start of the warning that a minimal attack without a budget left samples unbroken."""
WEAK_CW = ("--attack", "cw", "--steps", "1", "--binary-steps", "1")
"""A C&W too weak to break the digits model's samples."""


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(*args: str | Path, stderr: io.StringIO | None = None) -> Result:
    """Run the command in this process; stdout and stderr are captured (not terminals)."""
    out, err = io.StringIO(), stderr or io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def assert_one_error_line(result: Result, message: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output and "Usage" not in result.output
    assert "╭" not in result.output  # no boxed usage error


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
    for command in COMMANDS:
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "--seed" in result.stdout and "--device" in result.stdout
        assert "exit codes:" in result.stdout and "130" in result.stdout


def test_version_is_printed() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == "brittle 0.1.0"


def test_the_console_script_runs_the_packages_main() -> None:
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    entry = tomllib.loads(pyproject.read_text())["project"]["scripts"]["brittle"]
    module, _, name = entry.partition(":")
    assert getattr(importlib.import_module(module), name) is main
    script = Path(sys.executable).with_name("brittle")
    if script.is_file():  # installed (pip install -e .): the generated script runs it
        run = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stdout == "brittle 0.1.0\n", run.stderr


def test_attack_writes_the_summary_and_the_examples(model: Path, tmp_path: Path) -> None:
    out, saved = tmp_path / "out.json", tmp_path / "adv.npz"
    result = invoke(
        "attack", "--model", model, "--eps", "0.2", "--n", "24", "--json", out, "--save", saved
    )
    assert result.exit_code == 0, result.output
    assert "robust_accuracy" in result.stdout
    l0 = next(line for line in result.stdout.splitlines() if "mean_l0" in line)
    assert l0.rstrip().endswith("%")  # a share of features, printed as the report shows it
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
    assert report["threat_model"]["capability"] == "WHITE_BOX"
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
    assert_one_error_line(invoke(*args), message)


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("attack", "--eps", "abc"),
            "--eps must be a number or a fraction such as 0.3 or 8/255, got 'abc'",
        ),
        (("attack", "--n", "ten"), "--num-samples must be an integer, got 'ten'"),
        (("attack", "--steps", "1.5"), "--steps must be an integer"),
        (("attack", "--norm", "l0"), "--norm must be one of linf, l2, l1"),
        (("attack", "--capability", "god"), "--capability must be one of"),
        (("attack", "--target", "most_likely"), "--target must be one of random, least_likely"),
        (("evaluate", "--out", "x", "--eps", "0.1,-1"), "--eps must be a finite number >= 0"),
        (("train", "--epochs"), "--epochs needs a value"),
        (("attack", "--nope", "3"), "unknown option --nope (see brittle attack --help)"),
        (("train", "--restarts", "3"), "unknown option --restarts"),
        (("train", "--steps", "3"), "--steps: only with --defense"),
        (("evaluate",), "--out"),
        (("bogus",), "bogus"),
    ],
)
def test_a_bad_option_is_one_error_line_never_a_usage_box(
    args: tuple[str, ...], message: str
) -> None:
    assert_one_error_line(invoke(*args), message)


def _help(command: str, monkeypatch: pytest.MonkeyPatch, columns: int = 100) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    result = invoke(command, "--help")
    assert result.exit_code == 0
    return result.stdout


def _description(text: str) -> list[list[str]]:
    """The paragraphs of a help text's description: after the usage, before the options."""
    description = text.split("\n\n", 1)[1].split("\noptions:")[0]
    return [block.splitlines() for block in description.strip().split("\n\n")]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_type_artefacts_and_no_broken_lines(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _help(command, monkeypatch)
    assert not re.search(r"<(bool|int|float|str|text|path)>", text, re.IGNORECASE)
    assert "[default: no-" not in text
    for lines in _description(text):  # each line is filled up to the width: no stray breaks
        for line, following in itertools.pairwise(lines):
            assert len(line) + 1 + len(following.split()[0]) > 98, (line, following)
    if command == "evaluate":
        assert "samples already in results.sqlite are not attacked again" in text


@pytest.mark.parametrize("command", ["attack", "evaluate"])
def test_attack_options_come_from_the_declarations(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = " ".join(_help(command, monkeypatch).split())
    declared = [p for name in attack_names() for p in attack_class(name).params]
    offered = [p for p in (*declared, *minimize_parameters()) if p.flag and p.name != "eps"]
    assert offered
    for p in offered:
        if p.kind is bool:
            assert f"{p.flag}, --no-{p.flag[2:]} {p.help.rstrip('.')}" in text
        else:
            assert f" {p.flag} " in text
            range_text = p.describe_range().removesuffix(" (or None)")
            assert p.help.rstrip(".") in text and range_text in text, p.flag
    assert "--targeted" in text and "--seed" in text  # declared with cli=None: own options
    norms = {c for p in declared if p.name == "norm" for c in p.choices or ()}
    offered_norms = re.findall(r"--norm (\S+)", text)[0].split("|")
    assert set(offered_norms) == norms and "l0" not in norms


def test_declared_values_reach_the_attack(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cw.json"
    args = ("attack", "--model", model, "--n", "6", "--attack", "cw", "--json", out)
    result = invoke(*args, "--steps", "5", "--binary-steps", "1", "--no-abort-early")
    assert result.exit_code == 0, result.output
    params = json.loads(out.read_text())["attack_params"]["params"]
    assert params["steps"] == 5 and params["binary_steps"] == 1
    assert params["abort_early"] is False and params["warm_start"] is True


def test_minimize_takes_the_bisection_options(model: Path, tmp_path: Path) -> None:
    base = ("attack", "--model", model, "--n", "6", "--attack", "fgsm", "--tolerance", "0.05")
    assert_one_error_line(invoke(*base), "--tolerance set the bisection of --minimize")
    out = tmp_path / "min.json"
    result = invoke(*base, "--minimize", "--json", out)
    assert result.exit_code == 0, result.output
    info = json.loads(out.read_text())["attack_params"]
    assert info["minimize"] is True and info["params"]["tolerance"] == 0.05


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--attack", "pgd", "--steps", "0"), "steps must be an integer >= 1, got 0"),
        (("--attack", "pgd", "--restarts", "0"), "restarts must be an integer >= 1"),
        (("--attack", "fgsm", "--restarts", "2"), "its parameters are eps, norm, targeted"),
        (("--attack", "cw", "--basis", "dct"), "does not take basis"),
    ],
)
def test_a_bad_attack_parameter_names_it(model: Path, args: tuple[str, ...], message: str) -> None:
    assert_one_error_line(invoke("attack", "--model", model, "--n", "4", *args), message)


def test_evaluate_run_key_uses_the_declared_values(model: Path, tmp_path: Path) -> None:
    args = ("evaluate", "--model", model, "--out", tmp_path, "--n", "8", "--eps", "0.1,0.2")
    result = invoke(*args, "--attack", "pgd", "--steps", "3", "--no-random-start")
    assert result.exit_code == 0, result.output
    attack = json.loads((tmp_path / "report.json").read_text())["attack"]
    expected = make_attack("pgd", eps=0.2, steps=3, random_start=False, seed=0).config()
    expected.pop("eps")
    assert attack["params"] == expected


# ------------------------------------------------------------------ the threat model
def test_the_capability_is_a_stated_threat_the_attack_is_checked_against(
    model: Path, tmp_path: Path
) -> None:
    base = ("attack", "--model", model, "--n", "4", "--capability", "oracle_scores")
    forwards: list[str] = []  # every module's forward pass, anywhere in the process
    count = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: forwards.append(type(module).__name__)
    )
    try:
        refused = invoke(*base, "--attack", "pgd")
    finally:
        count.remove()
    assert_one_error_line(refused, "PGD needs capability WHITE_BOX")
    assert "ORACLE_SCORES" in refused.stderr and forwards == []  # refused before any query
    out = tmp_path / "simba.json"
    args = ("--attack", "simba", "--eps", "1", "--max-queries", "30", "--json", out)
    result = invoke(*base, *args)
    assert result.exit_code == 0, result.output
    threat = json.loads(out.read_text())["threat_model"]
    assert threat["capability"] == "ORACLE_SCORES" and threat["norm"] == "l2"
    assert "ORACLE_SCORES" in result.stdout


def test_targeted_options_state_the_goal(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    result = invoke(
        "attack", "--model", model, "--n", "4", "--target", "least_likely", "--json", out
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["threat_model"]["goal"] == "targeted"
    assert summary["attack_params"]["target"] == "least_likely"
    refused = invoke("attack", "--model", model, "--n", "4", "--attack", "deepfool", "--targeted")
    assert_one_error_line(refused, "DeepFool")


def test_jsma_every_target_gives_source_target_matrices(model: Path, tmp_path: Path) -> None:
    out, saved = tmp_path / "all.json", tmp_path / "all.npz"
    args = ("attack", "--model", model, "--n", "6", "--attack", "jsma", "--max-distortion", "0.2")
    result = invoke(*args, "--target", "all", "--json", out, "--save", saved)
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["n"] == 6 * 9 and summary["attack_params"]["target"] == "all"
    arrays = np.load(saved)
    pairs = set(zip(arrays["y"].tolist(), arrays["target"].tolist(), strict=True))
    assert all(s != t for s, t in pairs) and len(arrays["y"]) == 54
    rate = np.array(summary["source_target"]["success_rate"], dtype=float)
    for s, t in pairs:  # each cell is the mean of the re-verified successes of its rows
        rows = (arrays["y"] == s) & (arrays["target"] == t)
        assert rate[s, t] == pytest.approx(arrays["success"][rows].mean())
    assert np.isnan(np.diag(rate)).all()
    assert (arrays["x_adv"] != arrays["x"]).reshape(54, -1).sum(1).max() <= 12  # 20% of 64
    following = invoke(*args, "--target", "next", "--json", out, "--save", saved)
    assert following.exit_code == 0, following.output
    arrays = np.load(saved)
    assert (arrays["target"] == (arrays["y"] + 1) % 10).all()
    refused = invoke("evaluate", "--model", model, "--n", "4", "--target", "all", "--out", tmp_path)
    assert_one_error_line(refused, "--target all")


# ------------------------------------------------------------------ sample counts
@pytest.mark.parametrize("n", ["0", "-1"])
@pytest.mark.parametrize("command", ["attack", "evaluate"])
def test_n_below_one_is_refused_with_one_message(
    model: Path, tmp_path: Path, command: str, n: str
) -> None:
    out = ("--out", tmp_path / "out") if command == "evaluate" else ()
    result = invoke(command, "--model", model, *out, "--n", n)
    assert_one_error_line(result, f"--n must be an integer >= 1, got {n}")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_n_above_the_split_is_refused_and_says_how_many_there_are(model: Path) -> None:
    result = invoke("attack", "--model", model, "--n", "20000")
    assert_one_error_line(result, "--n 20000 is more than the 360 samples of the test split")
    assert "give --n 360 or less" in result.stderr


def test_n_train_zero_names_the_option(tmp_path: Path) -> None:
    result = invoke("train", "--dataset", "digits", "--n-train", "0", "--out", tmp_path / "m.pt")
    assert_one_error_line(result, "--n-train must be an integer >= 1, got 0")


# ------------------------------------------------------------------ progress bars
def test_progress_is_a_bar_on_a_terminal_lines_in_a_log_and_nothing_when_quiet(
    model: Path,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    args = ("attack", "--model", model, "--n", "8")
    piped = invoke(*args)
    assert piped.exit_code == 0
    assert "8/8 samples (100.0%)" in piped.stderr and "\r" not in piped.stderr  # plain lines
    quiet = invoke(*args, "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    terminal = invoke(*args, stderr=Terminal())
    assert terminal.exit_code == 0 and "8/8" in terminal.stderr


# ------------------------------------------------------------------ outputs and exit codes
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("train", "--dataset", "digits", "--out", "FILE/m.pt"), "--out"),
        (("attack", "--json", "FILE/s.json"), "--json"),
        (("attack", "--save", "FILE/adv.npz"), "--save"),
        (("evaluate", "--out", "FILE", "--eps", "0.1"), "--out"),
        (("demo", "--out", "FILE"), "--out"),
    ],
)
def test_every_output_place_is_checked_before_any_work(
    model: Path, tmp_path: Path, args: tuple[str, ...], option: str, monkeypatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output place was checked")

    for name in ("train_model", "run_attack", "evaluate", "load_dataset"):
        for module in ("train", "attack", "evaluate", "demo", "common"):
            target = sys.modules[f"brittle.tasks.{module}"]
            if hasattr(target, name):
                monkeypatch.setattr(target, name, no_work)
    argv = [a.replace("FILE", str(blocker)) for a in args]
    if argv[0] in ("attack", "evaluate"):
        argv += ["--model", str(model), "--n", "4"]
    result = invoke(*argv)
    assert_one_error_line(result, f"choose another {option}", STORAGE_EXIT)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("error", "code"),
    [(StorageError("disk full\nsecond line"), STORAGE_EXIT), (InputError("bad"), 2)],
)
def test_storage_errors_exit_3_and_other_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: Exception, code: int
) -> None:
    def fail(**kwargs: object) -> None:
        raise error

    monkeypatch.setattr(tasks, "train", fail)
    result = invoke("train", "--out", tmp_path / "m.pt")
    assert_one_error_line(result, str(error).splitlines()[0], code)


def test_an_interrupted_evaluation_says_how_to_resume(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def interrupted(**kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks, "evaluate_model", interrupted)
    result = invoke("evaluate", "--out", tmp_path)
    assert result.exit_code == 130
    assert result.stderr.startswith("interrupted: finished batches are kept in")
    assert "rerun the same command to resume" in result.stderr


PAUSED_EVALUATION = """
import pathlib, sys, time
import brittle.eval.pipeline as task
from brittle.cli import main

ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
attack = task.evaluate

def paused(*args, **kwargs):  # the folder is locked: hold it until the test says go
    ready.touch()
    while not go.exists():
        time.sleep(0.02)
    return attack(*args, **kwargs)

task.evaluate = paused
sys.exit(main(sys.argv[3:]))
"""


def test_two_evaluations_into_one_folder_the_second_is_refused_at_once(
    model: Path, tmp_path: Path
) -> None:
    out, ready, go = tmp_path / "eval", tmp_path / "ready", tmp_path / "go"
    args = ["evaluate", "--model", str(model), "--out", str(out), "--n", "8", "--eps", "0.1"]
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_EVALUATION, str(ready), str(go), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first evaluation never started"
            time.sleep(0.05)
        second = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from brittle.cli import main; sys.exit(main())",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == STORAGE_EXIT, second.stderr
        assert second.stderr.startswith("error: ") and second.stderr.count("\n") == 1
        assert "in use by another evaluation" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "evaluate --model" in second.stderr
        assert "started 20" in second.stderr  # the holder's start time
    finally:
        go.touch()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert "report:" in stdout
    after = invoke(*args)  # the lock ended with the first run
    assert after.exit_code == 0 and "remaining 0" in after.stdout


# ------------------------------------------------------------------ a reader that goes away
def _into_closed_pipe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the command with stdout a pipe whose reader has gone before anything is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [*CLI, *map(str, args)], stdout=write, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [(), ("--version",), ("attack", "--help")])
def test_help_into_a_closed_pipe_stops_quietly(args: tuple[str, ...]) -> None:
    result = _into_closed_pipe(*args)
    assert result.returncode == BROKEN_PIPE_EXIT and result.stderr == ""


def test_attack_into_a_closed_pipe_stops_quietly(model: Path) -> None:
    result = _into_closed_pipe("attack", "--model", model, "--n", "4", "--quiet")
    assert result.returncode == BROKEN_PIPE_EXIT
    assert result.stderr == ""  # no "error: [Errno 32] Broken pipe", no traceback


def test_attack_piped_into_head(model: Path) -> None:
    brittle = subprocess.Popen(
        [*CLI, "attack", "--model", str(model), "--n", "4", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert brittle.stdout is not None and brittle.stderr is not None
    head = subprocess.Popen(["head", "-1"], stdin=brittle.stdout, stdout=subprocess.PIPE)
    brittle.stdout.close()  # head is the only reader: when it exits, the pipe closes
    first, _ = head.communicate(timeout=120)
    errors = brittle.stderr.read()
    brittle.wait(timeout=120)
    assert first.decode().startswith("FGSM on 4 samples") and first.count(b"\n") == 1
    assert errors == b"", errors.decode()
    assert brittle.returncode in (0, BROKEN_PIPE_EXIT)  # 0 when all was written before


def test_a_broken_pipe_is_exit_141_and_no_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def reader_gone(**kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(tasks, "train", reader_gone)
    result = invoke("train", "--out", "m.pt")
    assert result.exit_code == BROKEN_PIPE_EXIT and result.output == ""


# ------------------------------------------------------------------ minimal attacks, no budget
def test_a_minimal_attack_without_a_budget_that_fails_is_said_to_be_too_weak(
    model: Path, tmp_path: Path
) -> None:
    base = ("attack", "--model", model, "--n", "8")
    weak = invoke(*base, *WEAK_CW, "--json", tmp_path / "cw.json")
    assert weak.exit_code == 0, weak.output
    assert f"warning: cw {UNBOUNDED}" in weak.stdout
    summary = json.loads((tmp_path / "cw.json").read_text())
    assert summary["success_rate"] < 1 and len(summary["warnings"]) == 1
    assert summary["warnings"][0].startswith(f"cw {UNBOUNDED}")
    capped = invoke(*base, *WEAK_CW, "--eps", "0.5", "--json", tmp_path / "capped.json")
    assert capped.exit_code == 0 and "warning" not in capped.stdout  # its budget excuses it
    assert json.loads((tmp_path / "capped.json").read_text())["warnings"] == []
    strong = invoke(*base, "--attack", "deepfool", "--json", tmp_path / "deepfool.json")
    assert strong.exit_code == 0 and "warning" not in strong.stdout
    summary = json.loads((tmp_path / "deepfool.json").read_text())
    assert summary["success_rate"] == 1 and summary["warnings"] == []


@pytest.mark.parametrize(
    ("attack", "eps", "warned"),
    [(WEAK_CW, "0.5,8", True), (WEAK_CW, "0.5", False), (("--attack", "deepfool"), "8", False)],
)
def test_evaluate_warns_of_a_minimal_attack_whose_budget_holds_the_whole_box(
    model: Path, tmp_path: Path, attack: tuple[str, ...], eps: str, warned: bool
) -> None:
    """The digits' box is [0, 1]^64: an L2 budget of 8 holds all of it."""
    args = ("evaluate", "--model", model, "--n", "8", "--out", tmp_path, "--eps", eps, *attack)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert any(w.startswith(f"cw {UNBOUNDED}") for w in report["warnings"]) is warned
    assert (UNBOUNDED in (tmp_path / "report.html").read_text()) is warned
    assert (f"warning: cw {UNBOUNDED}" in result.stdout) is warned
