"""Models from where users keep them: every format loads to the network that was saved, and
every file brittle does not load is refused with what it is and what brittle accepts.

One user CNN for 3x8x8 colour images (normalisation layer inside, batchnorm with non-trivial
statistics, dropout) is saved every way (``model_files.save_all_formats``); each loaded form
must compute the saved network's outputs in eval mode on random inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from brittle.attacks.fgsm import FGSM
from brittle.attacks.simba import SimBA
from brittle.classifier import Classifier
from brittle.errors import (
    BrittleError,
    CheckpointError,
    InputError,
    ModelOutputError,
    ThreatModelError,
)
from brittle.loading import load_model
from brittle.loading.loaders import MODEL_FORMATS, parse_classes, parse_preprocess
from brittle.oracle import Oracle
from brittle.threat import ThreatModel
from brittle.zoo import build_model, save_checkpoint
from model_files import CLASSES, INPUT_SHAPE, ModelFiles, colour_images, save_all_formats

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN = [0.5, 0.4, 0.3]
STD = [0.2, 0.25, 0.3]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return save_all_formats(tmp_path_factory.mktemp("models"))


def _path(saved: ModelFiles, form: str) -> Path:
    if form in saved.skipped:
        pytest.skip(saved.skipped[form])
    return saved.paths[form]


def _outputs(model: Classifier | Oracle, x: torch.Tensor) -> torch.Tensor:
    return model.predict_logits(x) if isinstance(model, Classifier) else model.query(x)


def _accepted_listed(message: str) -> None:
    """A refusal lists every format brittle accepts."""
    assert "brittle accepts:" in message
    for model_format in MODEL_FORMATS:
        assert model_format.accepts in message


FILE_FORMS = {
    "scripted": "torchscript",
    "traced": "torchscript",
    "exported": "torch-export",
    "exported_fixed_batch": "torch-export",
    "onnx": "onnx",
    "onnx_fixed_batch": "onnx",
}


@pytest.mark.parametrize("form", list(FILE_FORMS))
def test_model_files_compute_the_saved_network(saved: ModelFiles, form: str) -> None:
    """5 inputs: not a multiple of the fixed exports' batch of 2, so their padding is used."""
    path = _path(saved, form)
    loaded = load_model(path, input_shape=INPUT_SHAPE)
    x = colour_images(5, seed=1)
    with torch.no_grad():
        expected = saved.module(x)
    torch.testing.assert_close(_outputs(loaded.model, x), expected, atol=1e-5, rtol=1e-5)
    meta = loaded.meta
    assert meta["format"] == FILE_FORMS[form]
    assert meta["path"] == str(path)
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["num_classes"] == len(CLASSES)
    assert meta["input_shape"] == list(INPUT_SHAPE)
    assert meta["bounds"] == [0.0, 1.0]
    assert meta["classes"] is meta["accuracy"] is meta["dataset"] is meta["preprocessing"] is None
    assert json.loads(json.dumps(meta)) == meta


def test_white_box_formats_are_classifiers_in_eval_mode(saved: ModelFiles) -> None:
    """TorchScript and factories give a Classifier whose module is in eval mode (dropout off:
    two passes agree) and whose gradients reach the input; ONNX gives a score oracle."""
    x = colour_images(3, seed=2)
    for form in ("scripted", "traced", "exported"):
        model = load_model(saved.paths[form], input_shape=INPUT_SHAPE).model
        assert isinstance(model, Classifier) and not model.module.training
        torch.testing.assert_close(model.logits(x), model.logits(x))
        x_grad = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model.logits(x_grad).sum(), x_grad)
        assert grad.abs().sum() > 0
    factory = load_model(
        f"{saved.source}:MyNet", weights=saved.paths["state_dict"], input_shape=INPUT_SHAPE
    ).model
    assert isinstance(factory, Classifier) and not factory.module.training
    if "onnx" not in saved.skipped:
        oracle = load_model(saved.paths["onnx"]).model
        assert isinstance(oracle, Oracle) and oracle.outputs == "scores"


@pytest.mark.parametrize("weights", ["state_dict", "safetensors", None])
def test_factory_file_with_weights(saved: ModelFiles, weights: str | None) -> None:
    """``mynet.py:MyNet`` filled with a state dict (.pt or .safetensors) computes the saved
    network; ``mynet.py:load_trained`` (no weights) is used as it returns it."""
    weights_path = None if weights is None else _path(saved, weights)
    spec = f"{saved.source}:{'load_trained' if weights is None else 'MyNet'}"
    loaded = load_model(spec, weights=weights_path, input_shape=INPUT_SHAPE)
    x = colour_images(4, seed=3)
    with torch.no_grad():
        expected = saved.module(x)
    torch.testing.assert_close(_outputs(loaded.model, x), expected, atol=1e-6, rtol=1e-6)
    meta = loaded.meta
    assert meta["format"] == "python" and meta["path"] == spec and meta["network"] == "MyNet"
    assert meta["weights"] == (None if weights_path is None else str(weights_path))
    assert json.loads(json.dumps(meta)) == meta


def test_factory_identity_follows_code_and_weights(saved: ModelFiles, tmp_path: Path) -> None:
    """The identity is the same for the same factory, code and weights (wherever the file
    lies), and changes when the code or the weights change."""

    def identity(source: Path, weights: Path) -> str:
        return load_model(f"{source}:MyNet", weights=weights, input_shape=INPUT_SHAPE).meta[
            "sha256"
        ]

    first = identity(saved.source, saved.paths["state_dict"])
    copy = tmp_path / "copy.py"
    copy.write_bytes(saved.source.read_bytes())
    assert identity(copy, saved.paths["state_dict"]) == first
    copy.write_text(saved.source.read_text() + "\n# edited\n")
    assert identity(copy, saved.paths["state_dict"]) != first
    state = {k: v.clone() for k, v in saved.module.state_dict().items()}
    state["fc.bias"] += 1
    torch.save(state, tmp_path / "other.pt")
    assert identity(saved.source, tmp_path / "other.pt") != first


def test_module_factory_from_the_current_folder(
    saved: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mynet:load_trained`` imports ``mynet`` from the current folder (as ``python -m``)."""
    monkeypatch.chdir(saved.folder)
    try:
        loaded = load_model("mynet:load_trained", input_shape=INPUT_SHAPE)
    finally:
        sys.modules.pop("mynet", None)
    x = colour_images(2, seed=4)
    with torch.no_grad():
        expected = saved.module(x)
    torch.testing.assert_close(_outputs(loaded.model, x), expected, atol=1e-6, rtol=1e-6)
    assert loaded.meta["path"] == "mynet:load_trained"
    with pytest.raises(InputError, match=r"no module named 'nomodule'.*nomodule.py:f"):
        load_model("nomodule:f", input_shape=INPUT_SHAPE)


@pytest.mark.parametrize("form", ["scripted", "onnx"])
def test_preprocessing_runs_inside_the_model(saved: ModelFiles, form: str) -> None:
    """``preprocess=(mean, std)``: the model sees (x - mean) / std per channel, for a
    Classifier and for an ONNX oracle alike, and the metadata record it."""
    loaded = load_model(_path(saved, form), preprocess=(MEAN, STD), input_shape=INPUT_SHAPE)
    x = colour_images(3, seed=5)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = saved.module((x - mean) / std)
    torch.testing.assert_close(_outputs(loaded.model, x), expected, atol=1e-5, rtol=1e-5)
    assert loaded.meta["preprocessing"] == {"mean": MEAN, "std": STD}
    with pytest.raises(InputError, match=r"2 channel values.*shape \(3, 8, 8\)"):
        load_model(saved.paths[form], preprocess=([0.5, 0.5], [1.0, 1.0]), input_shape=INPUT_SHAPE)


def test_classes_are_recorded_and_counted(saved: ModelFiles) -> None:
    loaded = load_model(saved.paths["scripted"], classes=CLASSES, input_shape=INPUT_SHAPE)
    assert loaded.meta["classes"] == CLASSES
    with pytest.raises(InputError, match=r"3 class names were given but .* has 4 outputs"):
        load_model(saved.paths["scripted"], classes=CLASSES[:3], input_shape=INPUT_SHAPE)


def test_onnx_is_query_only(saved: ModelFiles) -> None:
    """The ONNX oracle grants scores only: FGSM (white box) is refused by the capability
    check, as called and under a threat of the oracle's capability; SimBA (scores) runs and
    its queries are counted."""
    oracle = load_model(_path(saved, "onnx")).model
    x = colour_images(2, seed=6)
    y = oracle.predict_scores(x).argmax(1)
    fgsm = FGSM(eps=0.1)
    with pytest.raises(
        ThreatModelError,
        match=r"needs capability WHITE_BOX but the model grants only ORACLE_SCORES",
    ):
        fgsm(oracle, x, y)
    with pytest.raises(
        ThreatModelError,
        match=r"needs capability WHITE_BOX, stronger than the threat's ORACLE_SCORES",
    ):
        fgsm.check_threat(ThreatModel(capability=oracle.capability, eps=0.1))
    result = SimBA(eps=0.1, norm="linf")(oracle, x, y, max_queries=20)
    assert bool((result.queries > 0).all()) and bool((result.queries <= 20).all())
    assert float((result.x_adv - x).abs().max()) <= 0.1 + 1e-6


def test_onnx_without_onnxruntime_says_how_to_install(
    saved: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    with pytest.raises(CheckpointError, match=r"ONNX.*pip install brittle\[onnx\]"):
        load_model(_path(saved, "onnx"))


def test_input_shape_comes_from_the_caller_or_the_graph(saved: ModelFiles) -> None:
    """TorchScript records no input shape: it must be given, and a wrong one is refused
    naming the format. A static .pt2 or ONNX graph gives its own, and a caller's that
    disagrees is refused with both."""
    with pytest.raises(InputError, match=r"TorchScript\) does not record the shape.*input_shape"):
        load_model(saved.paths["scripted"])
    with pytest.raises(BrittleError, match=r"TorchScript\): .* of shape \(3, 4, 4\)"):
        load_model(saved.paths["scripted"], input_shape=(3, 4, 4))
    exported = load_model(saved.paths["exported"])
    assert exported.meta["input_shape"] == list(INPUT_SHAPE)
    with pytest.raises(
        InputError,
        match=r"torch.export program\) takes inputs of shape "
        r"\(3, 8, 8\), but input_shape \(3, 4, 4\)",
    ):
        load_model(saved.paths["exported"], input_shape=(3, 4, 4))
    if "onnx" not in saved.skipped:
        assert load_model(saved.paths["onnx"]).meta["input_shape"] == list(INPUT_SHAPE)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script and save
def test_outputs_that_are_not_one_row_per_input_are_refused(tmp_path: Path) -> None:
    class Flat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten()

    path = tmp_path / "flat.pt"
    torch.jit.save(torch.jit.script(Flat()), path)
    with pytest.raises(ModelOutputError, match=r"flat.pt \(TorchScript\).*one row of logits"):
        load_model(path, input_shape=INPUT_SHAPE)


# ---------------------------------------------------------------------------- refusals
class Touch:
    """A pickle that creates a file when unpickled: proof of code run on loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _hostile(tmp_path: Path) -> tuple[Path, bytes]:
    """A marker path, and torch.save bytes that create it when unpickled (checked here)."""
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save(Touch(marker), buffer)
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert marker.exists()  # the payload does run when unpickled
    marker.unlink()
    return marker, buffer.getvalue()


def test_whole_pickled_model_is_refused_without_unpickling(
    saved: ModelFiles, tmp_path: Path
) -> None:
    with pytest.raises(CheckpointError) as refused:
        load_model(saved.paths["whole_pickle"])
    message = str(refused.value)
    assert "whole model saved with torch.save(model)" in message
    assert "model_files_mynet.MyNet" in message and "never unpickles" in message
    assert "--model file.py:factory --weights" in message and "TorchScript" in message
    _accepted_listed(message)
    marker, payload = _hostile(tmp_path)
    (tmp_path / "hostile.pt").write_bytes(payload)
    for spec, weights in (
        (tmp_path / "hostile.pt", None),
        (f"{saved.source}:MyNet", tmp_path / "hostile.pt"),
    ):
        with pytest.raises(CheckpointError, match=r"pickled Python objects"):
            load_model(spec, weights=weights, input_shape=INPUT_SHAPE)
        assert not marker.exists()


@pytest.mark.parametrize(
    ("form", "seen"),
    [
        ("state_dict", "is a state_dict (weights without the network's code)"),
        ("safetensors", "is a safetensors file (weights without the network's code)"),
        ("random", "is in no model format brittle reads (it starts with bytes"),
    ],
)
def test_files_that_are_no_model_are_refused(saved: ModelFiles, form: str, seen: str) -> None:
    path = _path(saved, form)
    with pytest.raises(CheckpointError) as refused:
        load_model(path)
    message = str(refused.value)
    assert f"{path} {seen}" in message
    if form != "random":
        assert f"--model file.py:factory --weights {path}" in message
    _accepted_listed(message)


def test_missing_model_and_weights(saved: ModelFiles, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"model .*absent.pt does not exist.*brittle accepts"):
        load_model(tmp_path / "absent.pt")
    with pytest.raises(InputError, match=r"weights .*absent.pt does not exist"):
        load_model(f"{saved.source}:MyNet", weights=tmp_path / "absent.pt")
    with pytest.raises(InputError, match=r"--weights goes with --model file.py:factory"):
        load_model(saved.paths["scripted"], weights=saved.paths["state_dict"])


def test_weights_that_do_not_fit_are_one_error(saved: ModelFiles, tmp_path: Path) -> None:
    state = dict(saved.module.state_dict())
    del state["conv.bias"]
    state["extra.weight"] = torch.zeros(2)
    state["fc.weight"] = torch.zeros(4, 10)
    state["bn.weight"] = state["bn.weight"].long()
    torch.save(state, tmp_path / "misfit.pt")
    with pytest.raises(CheckpointError) as refused:
        load_model(f"{saved.source}:MyNet", weights=tmp_path / "misfit.pt", input_shape=INPUT_SHAPE)
    message = str(refused.value)
    for part in (
        "1 missing from the file (conv.bias)",
        "1 unexpected (extra.weight)",
        "fc.weight (4, 10) in the file, (4, 96) in the network",
        "bn.weight torch.int64 in the file, torch.float32 in the network",
    ):
        assert part in message
    wrapped = {f"module.{k}": v for k, v in saved.module.state_dict().items()}
    torch.save(wrapped, tmp_path / "wrapped.pt")
    with pytest.raises(CheckpointError, match=r"DataParallel.*model.module.state_dict"):
        load_model(
            f"{saved.source}:MyNet", weights=tmp_path / "wrapped.pt", input_shape=INPUT_SHAPE
        )
    torch.save({"epoch": 3, "state_dict": saved.module.state_dict()}, tmp_path / "nested.pt")
    with pytest.raises(InputError, match=r"dict with keys 'epoch', 'state_dict', not a state_dict"):
        load_model(f"{saved.source}:MyNet", weights=tmp_path / "nested.pt", input_shape=INPUT_SHAPE)


USER_CODE_ERRORS = {
    "missing": ("", "mynet.py:Missing", InputError, "has no 'Missing'; it defines .*MyNet"),
    "no_factory": ("", "mynet.py", InputError, "is Python code: name the function or class"),
    "arguments": (
        "def needs(width):\n    return None\n",
        "mynet.py:needs",
        InputError,
        r"needs arguments \(width\); brittle calls it without any",
    ),
    "raises": (
        "def broken():\n    raise KeyError('layer4')\n",
        "mynet.py:broken",
        CheckpointError,
        r"broken\(\) raised KeyError: 'layer4'",
    ),
    "not_module": (
        "def numbers():\n    return [1, 2]\n",
        "mynet.py:numbers",
        InputError,
        r"returned a list, not a torch.nn.Module",
    ),
    "exits": (
        "import sys\nsys.exit(2)\n",
        "mynet.py:MyNet",
        CheckpointError,
        "running .*mynet.py failed \\(SystemExit: 2\\).*__main__",
    ),
}


@pytest.mark.parametrize("case", list(USER_CODE_ERRORS))
def test_factory_errors_are_one_line(saved: ModelFiles, tmp_path: Path, case: str) -> None:
    extra, spec, error, pattern = USER_CODE_ERRORS[case]
    (tmp_path / "mynet.py").write_text(saved.source.read_text() + extra)
    with pytest.raises(error, match=pattern):
        load_model(str(tmp_path / spec), input_shape=INPUT_SHAPE)


def _rezip(
    source: Path, target: Path, replace: dict[str, bytes], compression: int = zipfile.ZIP_STORED
) -> Path:
    """``source``'s archive with records replaced or added (names without the root folder)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        root = old.namelist()[0].partition("/")[0]
        for info in old.infolist():
            name = info.filename.partition("/")[2]
            new.writestr(info.filename, replace.pop(name, old.read(info)))
        for name, content in replace.items():
            new.writestr(f"{root}/{name}", content)
    return target


def test_exported_program_records_are_checked_before_loading(
    saved: ModelFiles, tmp_path: Path
) -> None:
    """A .pt2 whose sample inputs are a hostile pickle is refused and the pickle never runs;
    one with compiled code (AOTInductor) is refused; one exported in training mode (it
    updates batchnorm statistics on every call) is refused."""
    marker, payload = _hostile(tmp_path)
    hostile = _rezip(
        saved.paths["exported"], tmp_path / "hostile.pt2", {"data/sample_inputs/model.pt": payload}
    )
    with pytest.raises(CheckpointError, match=r"pickled Python objects in data/sample_inputs"):
        load_model(hostile)
    assert not marker.exists()
    compiled = _rezip(
        saved.paths["exported"],
        tmp_path / "compiled.pt2",
        {"data/aotinductor/model/model.so": b"\x7fELF"},
    )
    with pytest.raises(CheckpointError, match=r"holds data/aotinductor/model/model.so"):
        load_model(compiled)
    net = build_network_in_train_mode(saved)
    torch.export.save(torch.export.export(net, (colour_images(2),)), tmp_path / "train.pt2")
    with pytest.raises(InputError, match=r"exported in training mode .*batch_norm"):
        load_model(tmp_path / "train.pt2")


def build_network_in_train_mode(saved: ModelFiles) -> nn.Module:
    net = type(saved.module)()
    net.load_state_dict(saved.module.state_dict())
    return net.train()


def test_compressed_records_are_refused(saved: ModelFiles, tmp_path: Path) -> None:
    """Torch stores tensors uncompressed: a TorchScript file whose tensors are deflated (a
    zip bomb's form) is refused before anything is expanded."""
    packed = _rezip(saved.paths["scripted"], tmp_path / "packed.pt", {}, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match=r"compressed records .*data/"):
        load_model(packed, input_shape=INPUT_SHAPE)


# ---------------------------------------------------------------------------- checkpoints
def test_brittle_checkpoint_keeps_its_metadata(tmp_path: Path) -> None:
    model = build_model("softmax", (1, 4, 4), 3)
    meta = {"dataset": "toy", "classes": ["a", "b", "c"], "accuracy": 0.75, "seed": 7}
    path = save_checkpoint(tmp_path / "ckpt.pt", model, meta)
    loaded = load_model(path)
    assert isinstance(loaded.model, Classifier)
    got = loaded.meta
    assert got["format"] == "brittle-checkpoint" and got["path"] == str(path)
    assert got["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (got["dataset"], got["classes"], got["accuracy"], got["seed"]) == (
        "toy",
        ["a", "b", "c"],
        0.75,
        7,
    )
    assert (got["arch"], got["input_shape"], got["num_classes"]) == ("softmax", [1, 4, 4], 3)
    assert got["bounds"] == [0.0, 1.0] and got["preprocessing"] is None
    x = torch.rand(2, 1, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.predict_logits(x), model.eval()(x))
    for options, pattern in (
        ({"input_shape": (1, 8, 8)}, r"takes inputs of shape \(1, 4, 4\)"),
        ({"classes": ["x", "y", "z"]}, r"records classes \['a', 'b', 'c'\]"),
        ({"preprocess": ([0.5], [0.5])}, "records preprocessing none"),
        ({"bounds": (0.0, 255.0)}, r"records bounds \[0.0, 1.0\]"),
    ):
        with pytest.raises(InputError, match=pattern):
            load_model(path, **options)
    assert load_model(path, bounds=(0, 1), input_shape=(1, 4, 4)).meta["bounds"] == [0.0, 1.0]


# ---------------------------------------------------------------------------- parsing
def test_parse_preprocess() -> None:
    assert parse_preprocess("0.5,0.4,0.3/0.2,0.25,0.3") == (MEAN, STD)
    assert parse_preprocess(" 0.5 / 0.25 ") == ([0.5], [0.25])
    for text, pattern in (
        ("0.5,0.4", "must be MEAN/STD"),
        ("0.5/0.2/0.1", "must be MEAN/STD"),
        ("a,b/c,d", "must be numbers"),
        ("0.5,0.4/0.2", "2 means and 1 stds"),
        ("0.5/0", "std positive"),
        ("nan/1", "mean must be finite"),
    ):
        with pytest.raises(InputError, match=pattern):
            parse_preprocess(text)


def test_parse_classes(saved: ModelFiles, tmp_path: Path) -> None:
    assert parse_classes("cat, dog,ship,frog") == CLASSES
    assert parse_classes(str(saved.paths["classes"])) == CLASSES
    for text, pattern in (
        ("cat,,dog", "must not be empty"),
        ("cat,dog,cat", "given twice: cat"),
        (str(tmp_path / "missing.txt"), "no such file"),
    ):
        with pytest.raises(InputError, match=pattern):
            parse_classes(text)


def test_every_error_is_brittles(saved: ModelFiles) -> None:
    """Bad options are refused before anything is loaded, as brittle's own errors."""
    for options in (
        {"input_shape": (3, 0, 8)},
        {"classes": []},
        {"bounds": (1, 0)},
        {"device": "nonsense"},
        {"preprocess": ([0.5], [-1.0])},
    ):
        with pytest.raises(BrittleError):
            load_model(saved.paths["scripted"], **options)
