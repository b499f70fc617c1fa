"""Reliability, round 3 (issue 23), each fault built in the test: checkpoints whose tensors
claim more bytes than the file holds, integer weights and forged metadata types; result
stores with rows of the wrong type or fields that contradict each other, and stores read
where nothing may be written; models that raise inside forward, inputs that carry a graph,
devices that are not there; seeds and devices on the command line."""

from __future__ import annotations

import json
import shutil
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import brittle.eval.store as store_module
import brittle.zoo.checkpoint as checkpoint
from brittle import Classifier, Oracle
from brittle.attacks import FGSM
from brittle.attacks.result import AttackResult
from brittle.cli import main
from brittle.errors import CheckpointError, InputError, ModelError, StorageError
from brittle.eval.store import ResultStore
from brittle.generators import build_generator, load_generator, save_generator
from brittle.zoo import build_model, load_checkpoint, save_checkpoint

# ------------------------------------------------------------------ helpers


def _one_error_line(capsys: pytest.CaptureFixture[str], code: int, expected: int) -> str:
    """The command's one ``error:`` line, after checking its exit code, that it is the last
    line on stderr (after progress, if any) and that there is no traceback."""
    err = capsys.readouterr().err
    assert code == expected, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert "Traceback" not in err
    return errors[0]


@pytest.fixture
def payload(tmp_path: Path) -> dict[str, Any]:
    """A genuine checkpoint of an MLP for 8x8 images with one hidden layer of 64 units
    (4,810 weights), as torch.load reads it."""
    model = build_model("mlp", (1, 8, 8), 10, seed=0, hidden=[64])
    path = save_checkpoint(tmp_path / "genuine.pt", model, {"bounds": [0.0, 1.0]})
    loaded: dict[str, Any] = torch.load(path, weights_only=True)
    return loaded


def _forge(path: Path, payload: dict[str, Any], state: Any = None, **meta: Any) -> Path:
    """``payload`` with its state_dict replaced by ``state`` and its metadata changed."""
    full = {**json.loads(payload["meta_json"]), **meta}
    state = payload["state_dict"] if state is None else state
    torch.save({**payload, "state_dict": state, "meta_json": json.dumps(full)}, path)
    return path


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The default device of every network the checkpoint loader builds."""
    devices: list[str] = []
    real: Callable[..., Any] = checkpoint.build_model

    def recording(*args: Any, **kwargs: Any) -> Any:
        devices.append(torch.get_default_device().type)
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "build_model", recording)
    return devices


# ------------------------------------------------------------------ (a) checkpoints


def test_an_expanded_checkpoint_is_refused_by_the_bytes_its_file_holds(
    tmp_path: Path, payload: dict[str, Any], builds: list[str]
) -> None:
    """Tensors expand()-ed from one number (stride 0) claim a network of 2 x 4096 x 4096
    weights (134 MB) from a file of a few KB: the element count matches the metadata, the
    bytes do not, and nothing is built for real."""
    meta = json.loads(payload["meta_json"])
    with torch.device("meta"):
        shapes = {
            k: v.shape
            for k, v in build_model("mlp", (1, 8, 8), 10, hidden=[4096, 4096]).state_dict().items()
        }
    state = {k: torch.zeros(1).expand(*shape) for k, shape in shapes.items()}
    path = _forge(tmp_path / "expanded.pt", payload, state, arch_kwargs={"hidden": [4096, 4096]})
    assert path.stat().st_size < 8_000
    assert sum(t.numel() for t in torch.load(path, weights_only=True)["state_dict"].values()) > (
        16_000_000
    )  # what the old check counted, and accepted
    with pytest.raises(CheckpointError, match=r"claim [\d,]+ bytes but the file holds 24 bytes"):
        load_checkpoint(path)
    assert "cpu" not in builds, "a network was built for real"
    assert meta["arch"] == "mlp"


def test_integer_weights_are_refused_and_float64_weights_load_as_the_same_model(
    tmp_path: Path, payload: dict[str, Any]
) -> None:
    state = payload["state_dict"]
    integers = {k: (v * 100).round().long() for k, v in state.items()}
    with pytest.raises(CheckpointError, match=r"'net\.\d\.weight' holds torch\.int64") as err:
        load_checkpoint(_forge(tmp_path / "int64.pt", payload, integers))
    assert "never casts weights between integer and floating point" in str(err.value)
    doubles = {k: v.double() for k, v in state.items()}
    model, _ = load_checkpoint(_forge(tmp_path / "float64.pt", payload, doubles))
    genuine, _ = load_checkpoint(tmp_path / "genuine.pt")
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(model(x), genuine(x))  # float32 values, exactly representable both ways


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("bounds", "a", "two numbers"),
        ("bounds", [0], "two numbers"),
        ("bounds", [1, 0], "low < high"),
        ("preprocessing", "x", '"mean"'),
        ("preprocessing", {"mean": "a"}, '"mean"'),
        ("preprocessing", {"mean": 0.5, "std": [0.0]}, "std > 0"),
        ("preprocessing", {"mean": [0.1, 0.2], "std": 1}, "one per channel"),
        ("arch", ["mlp"], "a string"),
        ("input_shape", "abc", "positive integers"),
        ("num_classes", 1.5, "an integer >= 2"),
        ("classes", 3, "a list of strings"),
        ("dataset", ["digits"], "a string"),
        ("accuracy", "high", "a number"),
        ("arch_kwargs", [64], "an object"),
    ],
)
def test_forged_metadata_types_are_one_checkpoint_error_naming_the_field(
    tmp_path: Path, payload: dict[str, Any], field: str, value: Any, expected: str
) -> None:
    path = _forge(tmp_path / "forged.pt", payload, **{field: value})
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_classifier(path)
    message = str(err.value)
    assert f"'{field}'" in message and expected in message and str(path) in message
    assert "\n" not in message


def test_forged_metadata_on_the_command_line_is_one_error_line(
    tmp_path: Path, payload: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _forge(tmp_path / "forged.pt", payload, bounds="a", dataset="digits")
    code = main(["attack", "--model", str(path), "--n", "4", "--device", "cpu"])
    line = _one_error_line(capsys, code, 2)
    assert "'bounds' is 'a'" in line


def test_metadata_of_the_wrong_type_are_refused_when_saving(tmp_path: Path) -> None:
    model = build_model("softmax", (1, 4, 4), 3)
    with pytest.raises(CheckpointError, match="'preprocessing' is 'x'"):
        save_checkpoint(tmp_path / "m.pt", model, {"preprocessing": "x"})
    assert not (tmp_path / "m.pt").exists()


def test_generator_checkpoints_share_the_checks(tmp_path: Path) -> None:
    gen = build_generator("vae", 4, (1, 8, 8), seed=0, hidden=[16])
    path = save_generator(tmp_path / "vae.pt", gen, {"dataset": "digits"})
    loaded, meta = load_generator(path)  # a genuine one loads as it was saved
    z = torch.randn(3, 4)
    assert torch.equal(loaded(z), gen.eval()(z))
    genuine: dict[str, Any] = torch.load(path, weights_only=True)
    with pytest.raises(CheckpointError, match="'latent_dim' is 'four'"):
        load_generator(_forge(tmp_path / "forged.pt", genuine, latent_dim="four"))
    expanded = {k: torch.zeros(1).expand(*v.shape) for k, v in genuine["state_dict"].items()}
    with pytest.raises(CheckpointError, match="claim"):
        load_generator(_forge(tmp_path / "expanded.pt", genuine, expanded))
    assert meta["latent_dim"] == 4


# ------------------------------------------------------------------ (b) the result store

N, EPS = 24, 0.1
RUN, ATTACK = "r", "fgsm"


@pytest.fixture(scope="module")
def batches() -> list[tuple[list[int], AttackResult]]:
    """FGSM on a random linear model of 3 classes, in three batches of 8: every clean input
    is classified correctly (labels are the model's own), some are fooled."""
    torch.manual_seed(0)
    classifier = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
    x = torch.rand(N, 1, 4, 4)
    y = classifier.predict(x)
    out = []
    for start in range(0, N, 8):
        index = list(range(start, start + 8))
        out.append((index, FGSM(EPS)(classifier, x[index], y[index])))
    return out


@pytest.fixture
def store_path(tmp_path: Path, batches: list[tuple[list[int], AttackResult]]) -> Path:
    """A genuine store of the batches, its run judged by misclassification."""
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        store.register(RUN, {"threat": {"goal": "misclassification"}})
        for index, result in batches:
            store.insert(RUN, ATTACK, EPS, index, result)
    return path


def _tamper(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        changed = db.execute(sql).rowcount
    assert changed >= 1, f"nothing matched: {sql}"


def _content(path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return [
            *db.execute("SELECT * FROM samples ORDER BY rowid"),
            *db.execute("SELECT * FROM batches ORDER BY rowid"),
            *db.execute("SELECT kind, key, json FROM records ORDER BY kind, key"),
        ]


def test_a_genuine_store_reads_back_with_consistent_figures(
    store_path: Path, batches: list[tuple[list[int], AttackResult]]
) -> None:
    with ResultStore(store_path, classes=3) as store:
        result = store.result(RUN, ATTACK, EPS)
    original = AttackResult.concat([r for _, r in batches])
    assert torch.equal(result.success, original.success)
    assert torch.equal(result.pred_adv, original.pred_adv)
    summary = result.summary()
    assert 0 < summary["success_rate"] < 1
    assert summary["robust_accuracy"] == pytest.approx(
        summary["clean_accuracy"] * (1 - summary["success_rate"])
    )


@pytest.mark.parametrize(
    ("sql", "classes", "expected"),
    [
        ("UPDATE samples SET y = 'abc' WHERE sample_id = 5", None, "'y is an integer' (y='abc')"),
        ("UPDATE samples SET l2 = 'NaN' WHERE sample_id = 5", None, "'l2 is a number' (l2='NaN')"),
        (
            "UPDATE samples SET pred_adv = 99, success = 1 WHERE sample_id = 5",
            3,
            "pred_adv is a class index (0 to 2)",
        ),
        ("UPDATE samples SET success = 2 WHERE sample_id = 5", None, "success is 0 or 1"),
        ("UPDATE samples SET queries = -3 WHERE sample_id = 5", None, "queries is a number >= 0"),
        ("UPDATE samples SET nonfinite = 1 WHERE sample_id = 5", None, "-1 exactly where"),
        ("UPDATE samples SET target = 1 WHERE sample_id = 5", None, "for every row"),
        ("UPDATE batches SET seconds = 'abc' WHERE rowid = 2", None, "seconds"),
    ],
)
def test_a_store_with_rows_of_the_wrong_type_is_refused_and_never_written(
    store_path: Path,
    batches: list[tuple[list[int], AttackResult]],
    sql: str,
    classes: int | None,
    expected: str,
) -> None:
    _tamper(store_path, sql)
    before = _content(store_path)
    with ResultStore(store_path, classes=classes) as store:
        with pytest.raises(StorageError) as err:
            store.result(RUN, ATTACK, EPS)
        message = str(err.value)
        assert str(store_path) in message and expected in message
        assert "move the file aside" in message
        if "samples" in sql:
            assert "row " in message and "sample 5" in message
        index, result = batches[0]
        with pytest.raises(StorageError, match="is damaged"):  # a rerun's next batch
            store.insert(RUN, ATTACK, 0.2, index, result)
        with pytest.raises(StorageError, match="is damaged"):
            store.put_record("summary", RUN, {"robust_accuracy": 0.5})
    assert _content(store_path) == before


def test_a_flipped_success_is_refused_either_way(store_path: Path) -> None:
    """A robust sample marked fooled, and a fooled one (another class ahead, confidence above
    one half) marked not fooled: either contradicts the model's verdict the row records."""
    with closing(sqlite3.connect(store_path)) as db:
        robust = db.execute("SELECT sample_id FROM samples WHERE pred_adv = y").fetchone()
        fooled = db.execute(
            "SELECT sample_id FROM samples WHERE success = 1 AND pred_clean = y "
            "AND (pred_adv > y OR confidence_adv > 0.501)"
        ).fetchone()
    assert robust is not None and fooled is not None
    for sid, rule in ((robust[0], "untargeted success"), (fooled[0], "not fooled")):
        copy = store_path.with_name(f"flipped{sid}.sqlite")
        shutil.copy(store_path, copy)
        _tamper(copy, f"UPDATE samples SET success = 1 - success WHERE sample_id = {sid}")
        with ResultStore(copy, create=False) as store, pytest.raises(StorageError) as err:
            store.result(RUN, ATTACK, EPS)
        assert rule in str(err.value) and f"sample {sid}" in str(err.value)


def test_rows_of_a_run_of_another_goal_are_held_to_the_general_rules_only(
    store_path: Path,
) -> None:
    """Success means misclassification only where the run's goal says so: a run judged by
    confidence reduction may succeed with the label still on top."""
    _tamper(store_path, 'UPDATE records SET json = \'{"threat": {"goal": "x"}}\'')
    _tamper(store_path, "UPDATE samples SET success = 1 WHERE pred_adv = y")
    with ResultStore(store_path, create=False) as store:
        assert len(store.result(RUN, ATTACK, EPS)) == N


def test_a_record_that_is_not_json_is_refused_when_the_store_opens(store_path: Path) -> None:
    _tamper(store_path, "UPDATE records SET json = '{not json'")
    with pytest.raises(StorageError, match="'run' record 'r' is not a JSON object"):
        ResultStore(store_path)


def test_a_reader_opens_the_store_read_only(store_path: Path) -> None:
    before = _content(store_path)
    with ResultStore(store_path, create=False) as store:
        assert len(store.result(RUN, ATTACK, EPS)) == N
        with pytest.raises(StorageError, match="read-only"):
            store.put_record("summary", RUN, {})
    assert _content(store_path) == before


class ReadOnlyFolder:
    """SQLite's connection as in a read-only folder: a ``mode=ro`` connection to a store in
    WAL mode cannot create the ``-shm`` index beside it, and its first read fails with
    SQLITE_READONLY_DIRECTORY ("attempt to write a readonly database"), as it does for a
    user who cannot write the folder (tests run as root, for whom chmod changes nothing)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.uris: list[str] = []
        real = sqlite3.connect

        def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
            self.uris.append(str(database))
            db = real(database, *args, **kwargs)
            return _Failing(db) if "mode=ro" in str(database) else db

        monkeypatch.setattr(store_module.sqlite3, "connect", connect)


class _Failing:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, *args: Any) -> Any:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    def close(self) -> None:
        self._db.close()


def test_a_store_in_a_read_only_folder_is_read(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = ReadOnlyFolder(monkeypatch)
    with ResultStore(store_path, create=False) as store:
        assert len(store.result(RUN, ATTACK, EPS)) == N
    assert [u.rsplit("?", 1)[-1] for u in folder.uris] == ["mode=ro", "immutable=1"]


def test_a_read_only_folder_with_a_pending_write_is_refused(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Committed rows still in the -wal file would be invisible to an immutable reader."""
    with closing(sqlite3.connect(store_path)) as writer:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE records SET created = 'later'")
        writer.commit()
        assert Path(f"{store_path}-wal").stat().st_size > 0
        ReadOnlyFolder(monkeypatch)
        with pytest.raises(StorageError, match="read-only"):
            ResultStore(store_path, create=False)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished evaluation of an MLP on 30 digits under FGSM."""
    root = tmp_path_factory.mktemp("evaluation")
    model = root / "mlp.pt"
    argv = ["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "2", "--device", "cpu"]
    assert main([*argv, "--out", str(model)]) == 0
    argv = ["evaluate", "--model", str(model), "--attack", "fgsm", "--eps", "0.1", "--n", "30"]
    assert main([*argv, "--device", "cpu", "--out", str(root / "run")]) == 0
    return root / "run"


ROBUST_ROW = "SELECT MIN(rowid) FROM samples WHERE pred_clean = y AND pred_adv = y"


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("UPDATE samples SET y = 'abc' WHERE rowid = 3", "'y is an integer' (y='abc')"),
        ("UPDATE samples SET pred_adv = 99 WHERE rowid = 3", "pred_adv is a class index (0 to 9)"),
        (f"UPDATE samples SET success = 1 WHERE rowid = ({ROBUST_ROW})", "untargeted success"),
    ],
)
def test_resuming_a_damaged_store_exits_3_and_adds_no_row(
    evaluation: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sql: str, rule: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(evaluation, run)
    store = run / "results.sqlite"
    _tamper(store, sql)
    with closing(sqlite3.connect(store)) as db:
        rows = db.execute("SELECT * FROM samples ORDER BY rowid").fetchall()
    capsys.readouterr()
    code = main(["evaluate", "--resume", str(run), "--device", "cpu"])
    line = _one_error_line(capsys, code, 3)
    assert str(store) in line and rule in line and "move the file aside" in line
    with closing(sqlite3.connect(store)) as db:
        assert db.execute("SELECT * FROM samples ORDER BY rowid").fetchall() == rows


def test_compare_reads_stores_read_only_and_refuses_a_damaged_one(
    evaluation: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(evaluation, first)
    shutil.copytree(evaluation, second)
    with monkeypatch.context() as patch:
        folder = ReadOnlyFolder(patch)
        code = main(["compare", str(first), str(second), "--out", str(tmp_path / "cmp")])
        assert code == 0, capsys.readouterr().err
        assert all("mode=ro" in u or "immutable=1" in u for u in folder.uris)
    content = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    (pair,) = content["agreement"]
    assert pair["rows"][0]["only_first"] == pair["rows"][0]["only_second"] == 0
    _tamper(second / "results.sqlite", "UPDATE samples SET l2 = 'NaN' WHERE rowid = 2")
    capsys.readouterr()
    code = main(["compare", str(first), str(second), "--out", str(tmp_path / "cmp2")])
    line = _one_error_line(capsys, code, 3)
    assert "second" in line and "'l2 is a number'" in line


# ------------------------------------------------------------------ (c) models


class Raising(nn.Module):
    """A module whose forward raises ``error`` (after a layer, as a buggy model would)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 3)
        self.error = error

    def forward(self, x: Tensor) -> Tensor:
        self.linear(x.flatten(1))
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        KeyError("logits"),
        RuntimeError("boom: the cache was not warmed up"),
        ZeroDivisionError("division by zero"),
    ],
)
def test_an_exception_in_forward_is_a_model_error_with_its_message(error: Exception) -> None:
    classifier = Classifier(Raising(error), num_classes=3)
    x, y = torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)
    for call in (lambda: FGSM(0.1)(classifier, x, y), lambda: classifier.predict(x)):
        with pytest.raises(ModelError) as err:
            call()
        message = str(err.value)
        assert message.startswith(f"the model raised {type(error).__name__} on ")
        assert str(error).strip("'") in message  # the model's own message
        assert err.value.__cause__ is error


def test_a_genuine_shape_mismatch_is_still_a_shape_problem() -> None:
    classifier = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    with pytest.raises(InputError, match=r"inputs of shape \(1, 8, 8\).*mat1 and mat2 shapes"):
        FGSM(0.1)(classifier, torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_an_oracle_that_raises_is_a_model_error() -> None:
    def predict(x: Tensor) -> Tensor:
        raise KeyError("api_key")

    oracle = Oracle(predict, num_classes=3, input_shape=(1, 4, 4))
    with pytest.raises(ModelError, match=r"the oracle raised KeyError.*'api_key'"):
        oracle.query(torch.rand(2, 1, 4, 4))


def test_inputs_that_require_grad_are_detached_at_the_door() -> None:
    torch.manual_seed(0)
    classifier = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
    x = torch.rand(6, 1, 4, 4)
    y = classifier.predict(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = FGSM(0.1)(classifier, x.clone().requires_grad_(True), y)
    assert result.x_adv.grad_fn is None and not result.x_adv.requires_grad
    assert torch.equal(result.x_adv, FGSM(0.1)(classifier, x, y).x_adv)
    checked = classifier.check_inputs(x.clone().requires_grad_(True) * 1.0)
    assert checked.grad_fn is None


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine without CUDA (whatever this one has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    yield


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("cuda", "no CUDA GPU is available"),
        ("cuda:1", "no CUDA GPU is available"),
        ("meta", "not supported: use cpu, cuda or cuda:N"),
        ("mps", "not supported"),
        ("gpu", "unknown device 'gpu'"),
    ],
)
def test_a_device_that_is_not_there_is_an_input_error(
    no_gpu: None, device: str, expected: str
) -> None:
    with pytest.raises(InputError, match=expected):
        Classifier(nn.Linear(4, 2), device=device)
    with pytest.raises(InputError, match=expected):
        Oracle(lambda x: x[:, 0].long(), num_classes=2, input_shape=(4,), device=device)


def test_a_gpu_index_beyond_those_there_are_is_an_input_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(InputError, match=r"'cuda:2' does not exist: this machine has 2 GPU"):
        Classifier(nn.Linear(4, 2), device="cuda:2")


# ------------------------------------------------------------------ (d) the command line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--seed", "-1"], "--seed must be an integer in [0, 2**63 - 1], got '-1'"),
        (["attack", "--seed", str(2**63)], "--seed must be an integer in [0, 2**63 - 1]"),
        (["bound", "--seed", "1.5"], "--seed must be an integer, got '1.5'"),
    ],
)
def test_a_bad_seed_is_one_error_line_before_any_work(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_error_line(capsys, main(argv), 2)
    assert expected in line


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("meta", "device 'meta' is not supported"),
        ("mps", "device 'mps' is not supported"),
        ("cuda", "no CUDA GPU is available"),
    ],
)
def test_a_device_that_is_not_there_is_one_error_line(
    no_gpu: None,
    tmp_path: Path,
    payload: dict[str, Any],
    device: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    new = tmp_path / "new.pt"
    commands = (
        ["attack", "--model", str(tmp_path / "genuine.pt"), "--dataset", "digits", "--n", "4"],
        ["train", "--dataset", "digits", "--epochs", "1", "--out", str(new)],
    )
    for command in commands:
        code = main([*command, "--device", device])
        assert expected in _one_error_line(capsys, code, 2)
    assert not new.exists()
