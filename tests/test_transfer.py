"""Transferability (Goodfellow et al. 2015, section 8): :func:`brittle.metrics.transfer_matrix`
and the ``brittle transfer`` command."""

from __future__ import annotations

import copy
import io
import json
import math
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest.mock import Mock

import numpy as np
import pytest
import torch
from torch import nn

from brittle import Classifier, tasks
from brittle.attacks.fgsm import FGSM
from brittle.cli import main
from brittle.errors import STORAGE_EXIT, InputError
from brittle.metrics import TransferMatrix, transfer_matrix
from brittle.reproduce.figures import transfer_heatmap
from brittle.zoo import build_model, save_checkpoint
from helpers import softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")


def lookup(predictions: list[int], classes: int) -> Classifier:
    """A linear model on one-hot inputs ``e_i`` that predicts ``predictions[i]`` for sample
    ``i``: logit 1 for it, -1 for the others (logits, not probabilities)."""
    n = len(predictions)
    linear = nn.Linear(n, classes, bias=False)
    with torch.no_grad():
        linear.weight.fill_(-1.0)
        linear.weight[predictions, range(n)] = 1.0
    return Classifier(nn.Sequential(nn.Flatten(), linear), input_shape=(1, 1, n))


def one_hot_samples(n: int) -> torch.Tensor:
    return torch.eye(n).view(n, 1, 1, n)


def test_agreement_counts_only_the_errors_both_models_share() -> None:
    y = [0, 0, 1, 1, 2, 2, 2]
    a = [0, 1, 2, 0, 0, 1, 2]  # wrong on 1..5
    b = [1, 1, 1, 0, 1, 2, 2]  # wrong on 0, 1, 3, 4
    # both wrong on 1, 3, 4: the same class on 1 and 3, not on 4; both right (and agreeing)
    # on 6, which must not count
    models = [lookup(a, 3), lookup(b, 3), lookup(y, 3)]
    matrix = transfer_matrix(models, FGSM(eps=0.0), one_hot_samples(7), torch.tensor(y))
    np.testing.assert_allclose(matrix.error, [[5 / 7, 4 / 7, 0]] * 3)
    np.testing.assert_allclose(matrix.clean_error, [5 / 7, 4 / 7, 0])
    np.testing.assert_array_equal(matrix.shared_errors, [[5, 3, 0], [3, 4, 0], [0, 0, 0]])
    np.testing.assert_allclose(
        matrix.agreement,
        [[1, 2 / 3, np.nan], [2 / 3, 1, np.nan], [np.nan] * 3],
    )
    assert matrix.names == ("Sequential#0", "Sequential#1", "Sequential#2")
    encoded = json.loads(json.dumps(matrix.as_json(), allow_nan=False))
    assert encoded["agreement"][0] == [1.0, pytest.approx(2 / 3), None]
    assert encoded["shared_errors"][1] == [3, 4, 0] and encoded["n"] == 7


@pytest.fixture(scope="module")
def digits_models() -> tuple[list[Classifier], torch.Tensor, torch.Tensor]:
    """Softmax regression on digits, an identical copy, and an untrained linear model; 150
    samples the first two classify correctly."""
    clf, x, y = softmax_on_digits()
    twin = Classifier(copy.deepcopy(clf.module))
    torch.manual_seed(1)
    other = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))
    return [clf, twin, other], x[:150], y[:150]


def test_the_diagonal_is_each_models_own_error_under_the_attack(digits_models) -> None:
    models, x, y = digits_models
    attack = FGSM(eps=0.1)
    matrix = transfer_matrix(models, attack, x, y, names=["softmax", "twin", "other"])
    for a, model in enumerate(models):
        result = attack(model, x, y)
        assert matrix.error[a, a] == float((result.pred_adv != y).double().mean())
        assert matrix.agreement[a, a] == 1.0
    for a in (0, 1):  # every sample correct before the attack: the error is 1 - robust
        robust = FGSM(eps=0.1)(models[a], x, y).summary()["robust_accuracy"]
        assert matrix.error[a, a] == pytest.approx(1 - robust, abs=1e-6)  # a float32 mean
    assert 0 < matrix.error[0, 2] < 1 and matrix.names == ("softmax", "twin", "other")


def test_two_copies_of_a_model_agree_on_every_error(digits_models) -> None:
    models, x, y = digits_models
    matrix = transfer_matrix(models, FGSM(eps=0.1), x, y, batch_size=64)
    assert matrix.error[0, 1] == matrix.error[0, 0] and matrix.error[1, 0] == matrix.error[1, 1]
    assert matrix.agreement[0, 1] == matrix.agreement[1, 0] == 1.0
    assert matrix.shared_errors[0, 1] == matrix.shared_errors[0, 0] > 0
    whole = transfer_matrix(models, FGSM(eps=0.1), x, y, batch_size=1000)
    np.testing.assert_array_equal(whole.error, matrix.error)  # batches change nothing
    np.testing.assert_array_equal(whole.shared_errors, matrix.shared_errors)


def _linear(shape: tuple[int, ...], classes: int, declare: bool = True) -> Classifier:
    module = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), classes))
    if not declare:
        return Classifier(module)
    return Classifier(module, input_shape=shape, num_classes=classes)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            [_linear((1, 8, 8), 10), _linear((1, 4, 16), 10)],
            "p: input shape (1, 8, 8), 10 classes; q: input shape (1, 4, 16), 10 classes",
        ),
        ([_linear((1, 8, 8), 10), _linear((1, 8, 8), 3)], "q: input shape (1, 8, 8), 3 classes"),
        ([_linear((1, 8, 8), 10), _linear((1, 8, 8), 3, declare=False)], "3 classes"),
    ],
)
def test_models_that_differ_in_shape_or_classes_are_refused_before_any_attack(
    models: list[Classifier], message: str
) -> None:
    attack = Mock(side_effect=AssertionError("an attack ran"))
    x, y = torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(InputError, match="same input shape and number of classes") as err:
        transfer_matrix(models, attack, x, y, names=["p", "q"])
    assert message in str(err.value)
    attack.assert_not_called()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"names": ["p"]}, "names must give each of the 2 models its own name"),
        ({"names": ["p", "p"]}, "its own name"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused_before_any_attack(kwargs: dict, message: str) -> None:
    attack = Mock(side_effect=AssertionError("an attack ran"))
    models = [_linear((1, 8, 8), 10), _linear((1, 8, 8), 10)]
    x, y = torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(InputError, match=message):
        transfer_matrix(models, attack, x, y, **kwargs)
    with pytest.raises(InputError, match="at least two models"):
        transfer_matrix(models[:1], attack, x, y)
    with pytest.raises(InputError, match="outside the bounds"):
        transfer_matrix(models, attack, x + 2, y)
    with pytest.raises(InputError, match="no samples"):
        transfer_matrix(models, attack, x[:0], y[:0])
    attack.assert_not_called()


# ------------------------------------------------------------------ brittle transfer
def invoke(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("transfer")
    for arch in ("softmax", "mlp"):
        tasks.train(
            arch=arch,
            dataset="digits",
            epochs=1,
            n_train=300,
            out=folder / f"{arch}.pt",
            progress=False,
        )
    return folder / "softmax.pt", folder / "mlp.pt"


def test_the_command_prints_the_matrices_and_writes_the_json(
    checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    softmax, mlp = checkpoints
    out = tmp_path / "transfer.json"
    models = f"{softmax},{mlp},{softmax}"
    code, stdout, stderr = invoke(
        "transfer", "--models", models, "--attack", "fgsm", "--eps", "0.25", "--n", "40",
        "--json", out,
    )  # fmt: skip
    assert code == 0, stderr
    assert "crafted on \\ classified by" in stdout and "softmax#0" in stdout and "mlp" in stdout
    assert f"json: {out}" in stdout
    summary = json.loads(out.read_text())
    assert summary["names"] == ["softmax#0", "mlp", "softmax#2"] and summary["n"] == 40
    error = np.array(summary["error"])
    assert error.shape == (3, 3) and ((error >= 0) & (error <= 1)).all()
    assert error[0, 2] == error[0, 0] and summary["agreement"][0][2] in (1.0, None)
    assert summary["threat_model"]["eps"] == 0.25 and summary["attack_params"]["name"] == "FGSM"
    assert [m["path"] for m in summary["models"]] == [str(softmax), str(mlp), str(softmax)]
    assert summary["dataset"]["name"] == "digits" and summary["dataset"]["n"] == 40


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("work started before the inputs were checked")


def _bad_files(folder: Path, checkpoints: tuple[Path, Path]) -> dict[str, Path]:
    raw = folder / "raw.pt"
    torch.save(nn.Linear(64, 10).state_dict(), raw)
    small = folder / "small.pt"
    save_checkpoint(small, build_model("softmax", (1, 4, 4), 10), {"dataset": "digits"})
    return {"missing": folder / "missing.pt", "raw": raw, "small": small}


@pytest.mark.parametrize(
    ("second", "message", "code"),
    [
        ("missing", "missing.pt does not exist", 2),
        ("raw", "not a brittle checkpoint", 2),
        ("small", "small: input shape (1, 4, 4), 10 classes", 2),
        ("alone", "--models needs at least two checkpoints", 2),
        ("json", "choose another --json", STORAGE_EXIT),
    ],
)
def test_bad_models_and_outputs_are_refused_before_any_work(
    checkpoints: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    second: str,
    message: str,
    code: int,
) -> None:
    bad = _bad_files(tmp_path, checkpoints)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    module = sys.modules["brittle.tasks.transfer"]
    for name in ("open_source", "transfer_matrix"):
        monkeypatch.setattr(module, name, _no_work)
    if second == "json":
        monkeypatch.setattr(module, "load_checkpoint", _no_work)
    softmax = checkpoints[0]
    models = {"alone": str(softmax), "json": f"{softmax},{softmax}"}.get(
        second, f"{softmax},{bad.get(second)}"
    )
    json_args = ("--json", blocker / "out.json") if second == "json" else ()
    status, stdout, stderr = invoke("transfer", "--models", models, *json_args)
    assert status == code, stderr
    assert stderr.startswith("error: ") and message in stderr and stderr.count("\n") == 1
    assert stdout == ""


def test_the_transfer_task_returns_the_matrix(checkpoints: tuple[Path, Path]) -> None:
    outcome = tasks.transfer(models=list(checkpoints), eps=0.1, n=20, progress=False)
    assert isinstance(outcome.matrix, TransferMatrix) and outcome.json is None
    assert outcome.matrix.names == ("softmax", "mlp") and outcome.summary["n"] == 20


def test_the_heatmap_draws_both_matrices(digits_models) -> None:
    models, x, y = digits_models
    matrix = transfer_matrix(models, FGSM(eps=0.1), x[:20], y[:20])
    assert transfer_heatmap(matrix).startswith(b"\x89PNG")
