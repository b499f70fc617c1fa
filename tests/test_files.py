"""Atomic writes (brittle.files): a failed write leaves the previous file byte for byte and no
temporary file behind; the output place is checked before any work is spent.

Tests run as root, where a read-only folder (chmod 0o555) does not stop writes, so faults are
injected where they happen for real: ``os.replace``, ``os.fsync``, ``os.open`` or the writer
fail midway with the OS error a full or read-only disk gives.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from brittle.errors import StorageError
from brittle.files import (
    atomic_path,
    check_writable,
    write_atomic,
    write_bytes_atomic,
    write_text_atomic,
)
from brittle.report import html, write_json, write_report
from brittle.zoo import build_model, load_checkpoint, save_checkpoint

OLD = b"the previous content\n" * 100


def _fail_with(code: int) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


def _files(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "out.bin"
    path.write_bytes(OLD)
    return path


def test_write_replaces_the_content_and_leaves_only_the_target(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.json"
    assert write_text_atomic(path, "first") == path  # parent folders are created
    write_bytes_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert _files(path.parent) == ["report.json"]


def test_new_files_get_open_permissions_and_old_files_keep_theirs(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"")  # what open(path, "w") gives under this process's umask
    new = write_bytes_atomic(tmp_path / "new", b"x")
    assert new.stat().st_mode == plain.stat().st_mode
    kept = tmp_path / "kept"
    kept.write_bytes(b"old")
    kept.chmod(0o640)
    write_bytes_atomic(kept, b"new")
    assert kept.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    ("target", "code", "advice"),
    [
        ("replace", errno.ENOSPC, "free some space"),
        ("replace", errno.EROFS, "read-only"),
        ("fsync", errno.EIO, "check that"),
        ("fsync", errno.ENOSPC, "free some space"),
    ],
)
def test_os_failure_midway_keeps_the_old_file(
    old_file: Path, monkeypatch: pytest.MonkeyPatch, target: str, code: int, advice: str
) -> None:
    monkeypatch.setattr(os, target, _fail_with(code))
    with pytest.raises(StorageError) as info:
        write_bytes_atomic(old_file, b"new content that never lands")
    monkeypatch.undo()
    assert old_file.read_bytes() == OLD
    assert _files(old_file.parent) == [old_file.name]
    message = str(info.value)
    assert str(old_file) in message and "previous out.bin is unchanged" in message
    assert advice in message.lower() and errno.errorcode[code] in message
    assert isinstance(info.value.__cause__, OSError)


def test_writer_failing_after_a_partial_write_keeps_the_old_file(old_file: Path) -> None:
    def writer(file: Any) -> None:
        file.write(b"half of the new")
        file.flush()
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    with pytest.raises(StorageError, match="RuntimeError: PytorchStreamWriter") as info:
        write_atomic(old_file, writer)
    assert old_file.read_bytes() == OLD
    assert _files(old_file.parent) == [old_file.name]
    assert "unchanged" in str(info.value)


def test_failed_first_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", _fail_with(errno.ENOSPC))
    with pytest.raises(StorageError, match="no file was left behind"):
        write_text_atomic(tmp_path / "new.json", "{}")
    assert _files(tmp_path) == []


def test_interrupt_passes_through_and_cleans_up(old_file: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_path(old_file) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert old_file.read_bytes() == OLD
    assert _files(old_file.parent) == [old_file.name]


def test_atomic_path_keeps_the_suffix_writers_rely_on(tmp_path: Path) -> None:
    """np.savez appends .npz to other names and matplotlib picks the format from the suffix."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arrays = {"x": np.arange(6.0).reshape(2, 3), "y": np.array([0, 1])}
    with atomic_path(tmp_path / "adv.npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".adv.npz.")
        assert tmp.name.endswith(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
    with np.load(tmp_path / "adv.npz") as saved:
        assert all(np.array_equal(saved[k], v) for k, v in arrays.items())
    fig = Figure()
    FigureCanvasAgg(fig)
    with atomic_path(tmp_path / "curve.png") as tmp:
        fig.savefig(tmp)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _files(tmp_path) == ["adv.npz", "curve.png"]


# ------------------------------------------------------------------ check_writable
def test_check_writable_creates_the_folder_and_leaves_no_probe(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "deep" / "model.pt"
    assert check_writable(target) == target
    assert target.parent.is_dir() and _files(target.parent) == []
    target.write_bytes(b"old")
    check_writable(target)  # an existing file will be replaced: fine
    assert target.read_bytes() == b"old" and _files(target.parent) == ["model.pt"]


def test_check_writable_refuses_folders_and_files_in_the_way(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a folder"):
        check_writable(tmp_path)
    (tmp_path / "runs").write_bytes(b"a file where a folder should be")
    with pytest.raises(StorageError, match=r"is a file, not a folder; choose another --out"):
        check_writable(tmp_path / "runs" / "model.pt", option="--out")


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.EROFS, "is read-only"), (errno.EACCES, "not writable by this user")],
)
def test_check_writable_reports_a_folder_that_refuses_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    real_open = os.open

    def refusing_open(path: Any, flags: int, *args: Any) -> int:
        if Path(path).parent == tmp_path and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(StorageError) as info:
        check_writable(tmp_path / "x.pt", option="--out")
    monkeypatch.undo()
    message = str(info.value)
    assert message.startswith(f"cannot write {tmp_path / 'x.pt'}:")
    assert words in message and message.endswith("choose another --out")
    assert _files(tmp_path) == []


def test_check_writable_on_a_full_disk_removes_its_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "write_bytes", _fail_with(errno.ENOSPC))
    with pytest.raises(StorageError, match=r"(?i)free some space"):
        check_writable(tmp_path / "x.pt")
    monkeypatch.undo()
    assert _files(tmp_path) == []


# ------------------------------------------------------------------ the library's writers
def test_save_checkpoint_failing_midway_keeps_the_old_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.pt"
    old = build_model("softmax", (1, 4, 4), 3, seed=0)
    save_checkpoint(path, old, {})
    before = path.read_bytes()
    real_save = torch.save

    def save_then_fail(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(Path(f).read_bytes()[:100])  # the disk filled up midway
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(StorageError, match=r"previous model\.pt is unchanged"):
        save_checkpoint(path, build_model("softmax", (1, 4, 4), 3, seed=1), {})
    monkeypatch.undo()
    assert path.read_bytes() == before and _files(tmp_path) == ["model.pt"]
    model, _ = load_checkpoint(path)
    assert torch.equal(model.linear.weight, old.linear.weight)


def test_write_json_failing_keeps_the_old_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_json(tmp_path / "report.json", {"n": 1})
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", _fail_with(errno.ENOSPC))
    with pytest.raises(StorageError, match=r"(?i)free some space"):
        write_json(path, {"n": 2, "nan": float("nan")})
    monkeypatch.undo()
    assert path.read_bytes() == before and _files(tmp_path) == ["report.json"]
    assert json.loads(write_json(path, {"n": float("inf")}).read_text()) == {"n": None}


def test_report_html_failing_keeps_the_old_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the writing is under test: the page and its figures are stubbed."""
    monkeypatch.setattr(html, "accuracy_curve", lambda *args: b"png")
    monkeypatch.setattr(html, "example_grid", lambda *args: None)
    monkeypatch.setattr(html, "render_html", lambda report, figures: f"<p>{report['n']}</p>")
    report: dict[str, Any] = {"n": 1, "attack": {"name": "fgsm"}, "threat_model": {"norm": "linf"}}
    evaluation: Any = type("E", (), {"eps": [0.1], "summaries": [{}], "examples": []})()
    paths = write_report(tmp_path, report, evaluation, ["0", "1"])
    assert paths.html.read_text() == "<p>1</p>"
    real_replace = os.replace

    def replace_but_not_html(src: Any, dst: Any) -> None:
        if Path(dst).name == "report.html":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_but_not_html)
    with pytest.raises(StorageError, match=r"previous report\.html is unchanged"):
        write_report(tmp_path, {**report, "n": 2}, evaluation, ["0", "1"])
    monkeypatch.undo()
    assert paths.html.read_text() == "<p>1</p>"
    assert json.loads(paths.json.read_text())["n"] == 2  # written before the page failed
    assert _files(tmp_path) == ["report.html", "report.json"]
