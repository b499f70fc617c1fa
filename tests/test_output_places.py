"""Output places that are not regular files, links, outputs onto inputs or onto each other:
refused at each command's door with one ``error:`` line (exit 2), and never replaced by the
atomic writer either. User text given to matplotlib (class names, attack labels, run names)
is drawn as written, never parsed as mathtext."""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib import cbook
from matplotlib.figure import Figure
from matplotlib.text import Text

from brittle import tasks
from brittle.cli import ERROR_EXIT, main
from brittle.errors import InputError, StorageError
from brittle.eval.runner import Examples
from brittle.files import check_outputs, check_writable, write_text_atomic
from brittle.generators import VAE, save_generator

pytestmark = pytest.mark.usefixtures("one_thread")

DEVICE_NODE = Path("/dev/null")
"""A device node every system has and whose loss would still be noticed: never written."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real classifier checkpoint (softmax on 200 digits, one epoch), a second one, and an
    untrained generator: the inputs the commands name."""
    root = tmp_path_factory.mktemp("inputs")
    model = tasks.train(
        dataset="digits", arch="softmax", epochs=1, n_train=200, out=root / "m.pt", progress=False
    ).path
    second = tasks.train(
        dataset="digits",
        arch="softmax",
        epochs=1,
        n_train=200,
        out=root / "s.pt",
        seed=1,
        progress=False,
    ).path
    generator = save_generator(
        root / "vae.pt", VAE(2, (1, 8, 8)), {"dataset": "digits", "epochs": 0, "seed": 0}
    )
    return {"model": model, "second": second, "generator": generator}


def run(*args: str | Path) -> tuple[int, str]:
    """Run ``brittle`` in this process; its exit code and its stderr."""
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def assert_refused(code: int, stderr: str, *words: str) -> None:
    """Exit 2 with one ``error:`` line holding ``words``; no traceback."""
    assert code == ERROR_EXIT, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in stderr, (word, stderr)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def place(kind: str, root: Path) -> Path:
    """A FIFO, a link to a file, or a dangling link, made in ``root``."""
    if kind == "fifo":
        path = root / "pipe.json"
        os.mkfifo(path)
    else:
        path = root / "link.json"
        target = root / "kept.json"
        if kind == "link":
            target.write_text("kept\n")
        path.symlink_to(target)
    return path


def state(path: Path) -> tuple[int, str | None, str | None]:
    """What must not change: the mode (not following links), the link's target, and the
    content of the file it points to."""
    mode = os.lstat(path).st_mode
    target = os.readlink(path) if stat.S_ISLNK(mode) else None
    content = path.read_text() if target is not None and path.exists() else None
    return stat.S_IFMT(mode), target, content


def commands(files: dict[str, Path], out: Path) -> dict[str, list[str | Path]]:
    """Every command that writes a file it is given, with that file at ``out``."""
    model, second, generator = files["model"], files["second"], files["generator"]
    return {
        "attack --json": ["attack", "--model", model, "--n", "5", "--json", out],
        "attack --save": ["attack", "--model", model, "--n", "5", "--save", out],
        "transfer --json": ["transfer", "--models", f"{model},{second}", "--json", out],
        "bound --json": ["bound", "--generator", generator, "--model", model, "--json", out],
        "train --out": ["train", "--dataset", "digits", "--epochs", "1", "--out", out],
        "generator train --out": ["generator", "train", "--dataset", "digits", "--out", out],
    }


@pytest.mark.parametrize("kind", ["fifo", "link", "dangling"])
@pytest.mark.parametrize(
    "command",
    [
        "attack --json",
        "attack --save",
        "transfer --json",
        "bound --json",
        "train --out",
        "generator train --out",
    ],
)
def test_a_fifo_or_a_link_as_output_is_refused_and_kept(
    files: dict[str, Path], tmp_path: Path, kind: str, command: str
) -> None:
    out = place(kind, tmp_path)
    before, names = state(out), sorted(p.name for p in tmp_path.iterdir())
    code, stderr = run(*commands(files, out)[command])
    words = ("FIFO", "not a regular file") if kind == "fifo" else ("symbolic link",)
    assert_refused(code, stderr, command.split()[-1], str(out), *words)
    assert state(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no probe, no new file


@pytest.mark.parametrize("command", ["compare", "reproduce"])
def test_a_fifo_where_a_folder_command_writes_is_refused(
    files: dict[str, Path], tmp_path: Path, command: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    name = "compare.json" if command == "compare" else "report.json"
    os.mkfifo(out / name)
    args: list[str | Path] = (
        ["compare", tmp_path / "run1", tmp_path / "run2", "--out", out]
        if command == "compare"
        else ["reproduce", "goodfellow2014", "--out", out]
    )
    code, stderr = run(*args)
    assert_refused(code, stderr, f"--out ({name})", "FIFO")
    assert [p.name for p in out.iterdir()] == [name]
    assert stat.S_ISFIFO(os.lstat(out / name).st_mode)


def test_a_device_node_as_output_is_refused_and_untouched(files: dict[str, Path]) -> None:
    before = os.lstat(DEVICE_NODE)
    folder = sorted(os.listdir(DEVICE_NODE.parent))
    code, stderr = run("attack", "--model", files["model"], "--n", "5", "--json", DEVICE_NODE)
    assert_refused(code, stderr, "--json", "/dev/null", "character device")
    after = os.lstat(DEVICE_NODE)
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, after.st_mode) == (
        before.st_ino,
        before.st_rdev,
        before.st_mode,
    )
    probes = [n for n in os.listdir(DEVICE_NODE.parent) if n.startswith(".null.")]
    assert probes == [] and sorted(os.listdir(DEVICE_NODE.parent)) == folder


def test_save_onto_the_model_attacked_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    model = files["model"]
    kept = digest(model)
    code, stderr = run("attack", "--model", model, "--n", "5", "--save", model)
    assert_refused(code, stderr, "--save", "--model", "replace that input")
    link = tmp_path / "model-link.pt"
    link.symlink_to(model)  # another spelling of the same checkpoint
    code, stderr = run("attack", "--model", link, "--n", "5", "--save", model)
    assert_refused(code, stderr, "--save", "--model")
    code, stderr = run("attack", "--model", model, "--json", model.parent / "x" / ".." / "m.pt")
    assert_refused(code, stderr, "--json", "--model")
    assert digest(model) == kept


def test_json_and_save_at_one_path_are_refused(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "both"
    out.write_text("previous\n")
    code, stderr = run("attack", "--model", files["model"], "--json", out, "--save", out)
    assert_refused(code, stderr, "--json and --save are the same file")
    assert out.read_text() == "previous\n"


def test_bound_json_onto_its_own_html_page_is_refused(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """``bound`` writes the page beside the JSON with the suffix ``.html``: a JSON path
    ending in ``.html`` would get both, and the JSON would be lost."""
    out = tmp_path / "bound.html"
    out.write_text("previous\n")
    args = ["bound", "--generator", files["generator"], "--model", files["model"]]
    code, stderr = run(*args, "--json", out)
    assert_refused(code, stderr, "--json and --json's HTML page", "are the same file")
    assert out.read_text() == "previous\n" and [p.name for p in tmp_path.iterdir()] == [out.name]
    kept = digest(files["generator"])
    code, stderr = run(*args, "--json", files["generator"])
    assert_refused(code, stderr, "--json", "--generator reads")
    assert digest(files["generator"]) == kept


def test_outputs_onto_other_inputs_are_refused(files: dict[str, Path], tmp_path: Path) -> None:
    model, second = files["model"], files["second"]
    kept = digest(model), digest(second)
    code, stderr = run("transfer", "--models", f"{model},{second}", "--json", second)
    assert_refused(code, stderr, "--json", "--models reads")
    code, stderr = run(
        "train", "--dataset", "digits", "--defense", "distill", "--teacher", model, "--out", model
    )
    assert_refused(code, stderr, "--out", "--teacher reads")
    data = tmp_path / "data.npz"
    data.write_bytes(b"an npz the command reads")
    code, stderr = run("generator", "train", "--dataset", "npz", "--data-dir", data, "--out", data)
    assert_refused(code, stderr, "--out", "--data-dir reads")
    assert (digest(model), digest(second)) == kept
    assert data.read_bytes() == b"an npz the command reads"


def test_check_outputs_compares_files_not_spellings(tmp_path: Path) -> None:
    first = tmp_path / "a.json"
    first.write_text("a")
    hard = tmp_path / "hard.json"
    os.link(first, hard)  # two names, one file
    with pytest.raises(InputError, match="--json and --save are the same file"):
        check_outputs({"--json": first, "--save": hard})
    with pytest.raises(InputError, match=r"--save .* is the file --model reads"):
        check_outputs({"--save": hard}, {"--model": first})
    with pytest.raises(InputError, match=r"--json .* is the file --models reads"):
        check_outputs(
            {"--json": tmp_path / "x" / ".." / "b.pt"},
            {"--models": ["c.pt", str(tmp_path / "b.pt")]},
        )
    places = check_outputs(
        {"--json": tmp_path / "new.json", "--save": None},
        {"--model": first, "--data-dir": None, "--models": [hard]},
    )
    assert places == {"--json": tmp_path / "new.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "hard.json"]


def test_check_writable_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputError, match=r"--out .*pipe is a FIFO"):
        check_writable(tmp_path / "pipe", option="--out")
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    with pytest.raises(InputError, match="is a symbolic link"):
        check_writable(tmp_path / "link", option="--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "pipe"]


@pytest.mark.parametrize("kind", ["fifo", "link", "dangling", "folder"])
def test_the_atomic_writer_never_replaces_what_is_not_a_regular_file(
    tmp_path: Path, kind: str
) -> None:
    """Defence in depth: a caller that forgot :func:`check_outputs` still replaces nothing."""
    if kind == "folder":
        target = tmp_path / "folder.json"
        target.mkdir()
    else:
        target = place(kind, tmp_path)
    before = state(target)
    names = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StorageError, match=r"not a regular file.*nothing was written"):
        write_text_atomic(target, "new\n")
    assert state(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_the_atomic_writer_checks_again_before_the_rename(tmp_path: Path) -> None:
    """A link put in the place while the new content was being written is not replaced."""
    from brittle.files import atomic_path

    target = tmp_path / "report.json"
    with pytest.raises(StorageError, match="symbolic link"), atomic_path(target) as tmp:
        tmp.write_text("new\n")
        target.symlink_to(tmp_path / "elsewhere")
    assert os.readlink(target) == str(tmp_path / "elsewhere")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


# ---------------------------------------------------------------- mathtext in user text

NAMES = ["$\\alpha$ cat", "$x", "$x^$", "a\\$b"]
"""Class names: mathtext that parses (drawn as a Greek letter unless escaped), one dollar,
mathtext that makes matplotlib raise, and an escaped dollar written by the user."""


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """The figures the plotting modules render (each still rendered to PNG, so that a text
    matplotlib cannot draw fails the test)."""
    import brittle.bounds.plots
    import brittle.generators.figures
    import brittle.report.plots
    import brittle.reproduce.figures

    figures: list[Figure] = []
    real = brittle.report.plots.to_png

    def record(fig: Figure) -> bytes:
        figures.append(fig)
        png = real(fig)
        assert png.startswith(b"\x89PNG")
        return png

    for module in (
        brittle.report.plots,
        brittle.bounds.plots,
        brittle.generators.figures,
        brittle.reproduce.figures,
        importlib.import_module("brittle.tasks.compare"),  # the module, not tasks.compare
    ):
        monkeypatch.setattr(module, "to_png", record)
    yield figures


def shown(fig: Figure) -> list[str]:
    """Every text of ``fig`` as matplotlib draws it; a text parsed as math fails the test."""
    texts = []
    for artist in fig.findobj(Text):
        text = artist.get_text()
        if any(name in text.replace("\\$", "$") for name in NAMES):
            assert not cbook.is_math_text(text), text
        texts.append(text if cbook.is_math_text(text) else text.replace("\\$", "$"))
    return texts


def assert_drawn_as_written(fig: Figure, *words: str) -> None:
    texts = shown(fig)
    for word in words:
        assert any(word in text for text in texts), (word, texts)


def _rows(clean: float, robust: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "eps": 0.1 * (i + 1),
            "clean_accuracy": clean,
            "robust_accuracy": r,
            "robust_ci_low": r - 0.05,
            "robust_ci_high": r + 0.05,
            "success_rate": 1 - r / clean,
        }
        for i, r in enumerate(robust)
    ]


def test_report_plots_draw_class_names_and_attack_labels_as_written(
    drawn: list[Figure],
) -> None:
    from brittle.report.plots import accuracy_curve, confusion_heatmap, example_grid

    k = len(NAMES)
    confusion_heatmap({"classes": NAMES, "matrix": np.eye(k).tolist(), "eps": 0.1})
    assert_drawn_as_written(drawn[-1], *NAMES)

    labels = ["pgd:$x^$", "cw$"]
    results = _rows(0.9, [0.5, 0.2])
    for row in results:
        row["robust_after"] = {label: dict(row) for label in labels}
    report = {
        "per_attack": {label: _rows(0.9, [0.6, 0.3]) for label in labels},
        "results": results,
        "attack": {"name": labels[0]},
        "attacks": [{"label": labels[1], "survivors_only": True}],
        "confidence": {"level": 0.95},
        "threat_model": {"norm": "linf"},
    }
    accuracy_curve(report)
    assert_drawn_as_written(drawn[-1], "pgd:$x^$", "after cw$", "cw$ (on those standing)")

    n = k
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 4, 4, generator=gen)
    y = torch.arange(n)
    examples = Examples(
        indices=list(range(n)),
        y=y,
        pred_clean=(y + 1) % k,  # every clean prediction wrong: label and prediction shown
        confidence_clean=torch.full((n,), 0.6),
        pred_adv=(y + 2) % k,
        confidence_adv=torch.full((n,), 0.8),
        success=torch.ones(n, dtype=torch.bool),
        clean=x,
        adversarial=(x + 0.1).clamp(0, 1),
    )
    example_grid([0.1], [examples], NAMES)
    assert_drawn_as_written(drawn[-1], *(f"label {name}" for name in NAMES))


def test_other_figures_draw_user_text_as_written(drawn: list[Figure]) -> None:
    from brittle.bounds.plots import bound_cdf_plot
    from brittle.generators.figures import modulus_plot, sample_grid
    from brittle.metrics.goodfellow2014.sweep import EpsilonSweep
    from brittle.metrics.goodfellow2014.transfer import TransferMatrix
    from brittle.reproduce.figures import (
        epsilon_sweep_plot,
        success_curves,
        transfer_heatmap,
        weight_grid,
    )
    from brittle.tasks.compare import curves

    eta = np.linspace(0, 1, 5)
    bound_cdf_plot({NAMES[2]: [0.1, 0.2]}, eta, eta, 0.5, xlabel=NAMES[0], title=NAMES[1])
    assert_drawn_as_written(drawn[-1], *NAMES[:3])
    sample_grid(torch.rand(2, 1, 4, 4), title=NAMES[2])
    modulus_plot(np.array([0.1, 0.2]), np.array([0.1, 0.3]), 2.0, title=NAMES[3])
    success_curves([0.1, 0.2], {NAMES[2]: [0.1, 0.5]})
    weight_grid({NAMES[2]: np.zeros((1, 2, 3, 3))})
    assert_drawn_as_written(drawn[-4], NAMES[2])
    assert_drawn_as_written(drawn[-3], NAMES[3])
    assert_drawn_as_written(drawn[-2], NAMES[2])
    assert_drawn_as_written(drawn[-1], NAMES[2])
    sweep = _sweep(EpsilonSweep, len(NAMES))
    epsilon_sweep_plot(sweep, NAMES)
    assert_drawn_as_written(drawn[-1], *NAMES[1:], f"{NAMES[0]} (true)")
    k = len(NAMES)
    square = np.full((k, k), 0.5)
    transfer_heatmap(
        TransferMatrix(tuple(NAMES), square, square, square, np.zeros(k), 10, "fgsm:$x^$")
    )
    assert_drawn_as_written(drawn[-1], *NAMES, "fgsm:$x^$ examples")
    rows = [
        {"eps": e, "shared_robust_accuracy": 0.5, "shared_ci_low": 0.4, "shared_ci_high": 0.6}
        for e in (0.1, 0.2)
    ]
    curves({"runs": [{"name": name, "rows": rows} for name in NAMES]})
    assert_drawn_as_written(drawn[-1], *NAMES)


def _sweep(cls: Callable[..., Any], k: int) -> Any:
    """A logit sweep over 5 budgets for one input of class 0, built from the class's fields."""
    import dataclasses

    eps = np.linspace(-0.2, 0.2, 5)
    values = {
        "eps": eps,
        "logits": np.random.default_rng(0).normal(size=(1, 5, k)),
        "predictions": np.array([[0, 0, 1, 1, 0]]),
        "y": np.array([0]),
        "clipped": False,
    }
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in values.items() if name in fields})
