"""``brittle evaluate`` on a user's own model, saved every way PyTorch users save models, and
on their own data in every format brittle reads: from the command line, with the figures
the Python API gives on the live module."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

import brittle
from brittle.cli import main
from model_files import CLASSES, ModelFiles, colour_images, save_all_formats

N = 24
ATTACK = "pgd:steps=3"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return save_all_formats(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def data(files: ModelFiles) -> tuple[Tensor, Tensor]:
    """Images quantised to 8 bits (what files hold), labelled by the network where it is
    sure of itself and else by the next class, so that clean accuracy is neither 0 nor 1."""
    x = (colour_images(N, seed=3) * 255).round() / 255
    with torch.no_grad():
        y = files.module(x).argmax(1)
    y[::4] = (y[::4] + 1) % len(CLASSES)
    return x, y


def _uint8(x: Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def npz(tmp_path_factory: pytest.TempPathFactory, data: tuple[Tensor, Tensor]) -> Path:
    path = tmp_path_factory.mktemp("npz") / "colour.npz"
    np.savez(path, x=_uint8(data[0]), y=data[1].numpy())
    return path


def _folder(root: Path, x: Tensor, y: Tensor, names: list[str]) -> Path:
    for i, (image, label) in enumerate(zip(_uint8(x), y.tolist(), strict=True)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def _figures(out: Path) -> list[float]:
    """Clean accuracy, success rate and robust accuracy at each budget."""
    report = json.loads((out / "report.json").read_text())
    keys = ("clean_accuracy", "success_rate", "robust_accuracy")
    return [float(r[k]) for r in report["results"] for k in keys]


def _evaluate(out: Path, *model: str, data: list[str]) -> list[str]:
    return [
        "evaluate", *model, *data, "--n", str(N), "--eps", "8/255", "--attack", ATTACK,
        "--out", str(out), "--quiet",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(
    files: ModelFiles, data: tuple[Tensor, Tensor], tmp_path_factory: pytest.TempPathFactory
) -> list[float]:
    """The live module's figures from the Python API."""
    out = tmp_path_factory.mktemp("reference")
    outcome = brittle.evaluate(
        files.module, data, out=out, attacks=ATTACK, eps="8/255", progress=False
    )
    assert outcome.report["threat_model"]["eps_text"] == ["8/255"]
    return _figures(out)


@pytest.mark.parametrize(
    "form",
    ["state_dict", "safetensors", "scripted", "traced", "exported", "exported_fixed_batch"],
)
def test_every_saved_form_of_the_model_gives_the_live_modules_figures(
    form: str,
    files: ModelFiles,
    npz: Path,
    reference: list[float],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if form not in files.paths:
        pytest.skip(files.skipped.get(form, form))
    path = files.paths[form]
    model = (
        ["--model", f"{files.paths['python']}:load_trained", "--weights", str(path)]
        if form in ("state_dict", "safetensors")
        else ["--model", str(path)]
    )
    code, err = _run(
        _evaluate(tmp_path, *model, data=["--dataset", "npz", "--data-dir", str(npz)]), capsys
    )
    assert code == 0, err
    assert _figures(tmp_path) == pytest.approx(reference)


def test_an_onnx_model_is_an_oracle_for_score_attacks_only(
    files: ModelFiles, npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "onnx" not in files.paths:
        pytest.skip(files.skipped.get("onnx", "onnx"))
    data = ["--dataset", "npz", "--data-dir", str(npz)]
    model = ["--model", str(files.paths["onnx"])]
    code, err = _run([*_evaluate(tmp_path / "fgsm", *model, data=data)], capsys)
    assert code == 2 and "needs capability WHITE_BOX" in err and "ORACLE_SCORES" in err
    argv = _evaluate(tmp_path / "simba", *model, data=data)
    argv[argv.index(ATTACK)] = "simba:max_queries=30"
    code, err = _run(argv, capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "simba" / "report.json").read_text())
    assert report["threat_model"]["capability"] == "ORACLE_SCORES"
    assert report["model"]["format"] == "onnx"


def test_an_image_folder_in_the_models_class_order(
    files: ModelFiles,
    data: tuple[Tensor, Tensor],
    reference: list[float],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # folders named so that sorting them gives the model's order; a hidden folder is skipped
    names = [f"{k}_{name}" for k, name in enumerate(CLASSES)]
    root = _folder(tmp_path / "images", *data, names)
    hidden = root / ".thumbs"
    hidden.mkdir()
    Image.fromarray(_uint8(data[0][:1])[0]).save(hidden / "thumb.png")
    (root / names[0] / ".DS_Store").write_bytes(b"\0\1junk")
    model = ["--model", str(files.paths["scripted"]), "--classes", ",".join(names)]
    argv = _evaluate(
        tmp_path / "out", *model, data=["--dataset", "folder", "--data-dir", str(root)]
    )
    code, err = _run(argv, capsys)
    assert code == 0, err
    # the folder's samples come in another order than the tensors: same figures, as sets
    assert _figures(tmp_path / "out") == pytest.approx(reference)


def test_class_folders_in_another_order_than_the_model_are_refused(
    files: ModelFiles,
    data: tuple[Tensor, Tensor],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _folder(tmp_path / "images", *data, CLASSES)  # sorted: cat, dog, frog, ship
    model = ["--model", str(files.paths["scripted"]), "--classes", ",".join(CLASSES)]
    argv = _evaluate(
        tmp_path / "out", *model, data=["--dataset", "folder", "--data-dir", str(root)]
    )
    code, err = _run(argv, capsys)
    assert code == 2
    assert "another order" in err and "'cat', 'dog', 'ship', 'frog'" in err
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_two_folders_of_one_name_are_two_runs(
    files: ModelFiles,
    data: tuple[Tensor, Tensor],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = [f"{k}_{name}" for k, name in enumerate(CLASSES)]
    first = _folder(tmp_path / "a" / "digits", *data, names)
    x, y = data
    second = _folder(tmp_path / "b" / "digits", x.flip(0), y, names)  # other images, same name
    model = ["--model", str(files.paths["scripted"])]
    out = tmp_path / "out"
    code, err = _run(
        _evaluate(out, *model, data=["--dataset", "folder", "--data-dir", str(first)]), capsys
    )
    assert code == 0, err
    code, err = _run(
        _evaluate(out, *model, data=["--dataset", "folder", "--data-dir", str(second)]), capsys
    )
    assert code == 2 and "another run" in err and "the data" in err


def test_cifar10_binary_batches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1.bin", 6), ("test_batch.bin", 10)):
        records = np.concatenate(
            [rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], axis=1
        ).astype(np.uint8)
        (folder / name).write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(f"class{k}" for k in range(10)) + "\n")
    net = tmp_path / "net.py"
    net.write_text(
        "import torch\nfrom torch import nn\n\n"
        "def build():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 5, stride=4), nn.ReLU(), nn.Flatten(),"
        " nn.Linear(4 * 7 * 7, 10))\n"
    )
    argv = [
        "evaluate", "--model", f"{net}:build", "--dataset", "cifar10", "--data-dir",
        str(tmp_path), "--eps", "2/255,8/255", "--out", str(tmp_path / "out"), "--quiet",
    ]  # fmt: skip
    code, err = _run(argv, capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["results"][0]["n"] == 10  # the test batch
    assert report["threat_model"]["eps_text"] == ["2/255", "8/255"]
    assert report["dataset"]["kind"] == "cifar10"


def test_a_python_dataset_factory(
    files: ModelFiles, data: tuple[Tensor, Tensor], reference: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    torch.save({"x": data[0], "y": data[1]}, tmp_path / "tensors.pt")
    (tmp_path / "mydata.py").write_text(
        "from pathlib import Path\nimport torch\nfrom torch.utils.data import TensorDataset\n\n"
        "def load():\n"
        "    d = torch.load(Path(__file__).with_name('tensors.pt'))\n"
        "    return TensorDataset(d['x'], d['y'])\n"
    )
    model = ["--model", str(files.paths["traced"])]
    dataset = ["--dataset", f"python:{tmp_path / 'mydata.py'}:load"]
    code, err = _run(_evaluate(tmp_path / "out", *model, data=dataset), capsys)
    assert code == 0, err
    assert _figures(tmp_path / "out") == pytest.approx(reference)


def test_a_model_trained_on_npz_is_evaluated_on_its_data_without_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 6, 6, 1), dtype=np.uint8)
    y = (x.reshape(60, -1).mean(1) > 127).astype(np.int64)
    path = tmp_path / "data_nhwc_uint8.npz"
    np.savez(path, x=x, y=y)
    model = tmp_path / "m.pt"
    train = ["train", "--arch", "softmax", "--dataset", "npz", "--data-dir", str(path)]
    code, err = _run([*train, "--epochs", "1", "--out", str(model), "--quiet"], capsys)
    assert code == 0, err
    argv = [
        "evaluate",
        "--model",
        str(model),
        "--eps",
        "0.1",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    code, err = _run(argv, capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["dataset"]["kind"] == "npz" and report["results"][0]["n"] == 60


def test_a_resume_refuses_a_contradicting_option(
    files: ModelFiles, npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--dataset", "npz", "--data-dir", str(npz)]
    code, err = _run(
        _evaluate(tmp_path, "--model", str(files.paths["scripted"]), data=data), capsys
    )
    assert code == 0, err
    code, err = _run(["evaluate", "--resume", str(tmp_path), "--eps", "0.1", "--quiet"], capsys)
    assert code == 2 and "--eps 0.1 contradicts" in err and "0.0313725" in err
    code, err = _run(
        ["evaluate", "--resume", str(tmp_path), "--batch-size", "5", "--quiet"], capsys
    )
    assert code == 0, err


def test_the_readme_example_gives_the_same_figures_from_the_cli_and_python(
    files: ModelFiles, data: tuple[Tensor, Tensor], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    names = [f"{k}_{name}" for k, name in enumerate(CLASSES)]
    root = _folder(tmp_path / "images", *data, names)
    factory, weights = f"{files.paths['python']}:load_trained", str(files.paths["state_dict"])
    argv = [
        "evaluate", "--model", factory, "--weights", weights, "--dataset", "folder",
        "--data-dir", str(root), "--eps", "2/255,8/255", "--attack", "pgd:steps=3",
        "--out", str(tmp_path / "cli"), "--quiet",
    ]  # fmt: skip
    code, err = _run(argv, capsys)
    assert code == 0, err
    brittle.evaluate(
        factory, "folder", weights=weights, data_dir=root, eps="2/255,8/255",
        attacks="pgd:steps=3", out=tmp_path / "python", progress=False,
    )  # fmt: skip
    assert _figures(tmp_path / "cli") == _figures(tmp_path / "python")
    sys.modules.pop("mynet", None)
