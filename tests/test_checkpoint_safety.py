"""Untrusted checkpoints: forged metadata never make brittle build (allocate) a network, a
compressed archive is refused before it is expanded, and torch's warnings do not leak.

The work a forged file costs is counted, not timed: every network ``load_checkpoint`` builds
is recorded with the device it was built on, and a refusal may build on the meta device only
(shapes without storage; building hidden=[20000, 20000] for real allocates 1.6 GB)."""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import brittle.zoo.checkpoint as checkpoint
from brittle.errors import CheckpointError
from brittle.zoo import ARCHITECTURES, build_model, load_checkpoint, save_checkpoint


@pytest.fixture
def payload(tmp_path: Path) -> dict[str, Any]:
    """The content of a genuine checkpoint of a tiny softmax model (51 weights)."""
    path = save_checkpoint(tmp_path / "genuine.pt", build_model("softmax", (1, 4, 4), 3), {})
    loaded: dict[str, Any] = torch.load(path, weights_only=True)
    return loaded


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The default device of every network load_checkpoint builds ("meta": shapes only)."""
    devices: list[str] = []
    real_build: Callable[..., Any] = checkpoint.build_model

    def recording_build(*args: Any, **kwargs: Any) -> Any:
        devices.append(torch.get_default_device().type)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "build_model", recording_build)
    return devices


def _forge(tmp_path: Path, payload: dict[str, Any], **meta: Any) -> Path:
    """A checkpoint with ``payload``'s tiny weights and metadata changed by ``meta``."""
    path = tmp_path / "forged.pt"
    torch.save(
        {**payload, "meta_json": json.dumps({**json.loads(payload["meta_json"]), **meta})}, path
    )
    return path


def _refused(path: Path, match: str) -> str:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    return str(info.value)


@pytest.mark.parametrize(
    "meta",
    [
        {"arch": "mlp", "arch_kwargs": {"hidden": [20000, 20000]}},
        {"arch": "mlp", "arch_kwargs": {"hidden": [10**6, 10**6]}},
        {"arch": "lenet", "arch_kwargs": {"channels": [4096], "hidden": [10**6]}},
        {"arch": "maxout", "arch_kwargs": {"units": 10**5, "pieces": 1000}},
        {"arch": "softmax", "input_shape": [3, 10**5, 10**5]},
        {"arch": "rbf", "input_shape": [3, 10**4, 10**4]},
    ],
)
def test_metadata_of_a_huge_network_are_refused_without_building_it(
    tmp_path: Path, payload: dict[str, Any], builds: list[str], meta: dict[str, Any]
) -> None:
    message = _refused(_forge(tmp_path, payload, **meta), "do not fit")
    assert builds and set(builds) == {"meta"}, "a network was built on a real device"
    assert "file holds 51" in message and "forged" in message


def test_a_long_list_of_layer_sizes_is_refused_before_any_build(
    tmp_path: Path, payload: dict[str, Any], builds: list[str]
) -> None:
    path = _forge(tmp_path, payload, arch="mlp", arch_kwargs={"hidden": [8] * 200_000})
    message = _refused(path, "200,000 layer sizes")
    assert builds == []
    assert len(message) < 1000  # the list itself is not repeated in full


def test_weights_of_the_right_count_but_the_wrong_names_or_shapes_are_refused(
    tmp_path: Path, payload: dict[str, Any], builds: list[str]
) -> None:
    state = payload["state_dict"]
    renamed = {k.replace("linear", "fc"): v for k, v in state.items()}
    path = tmp_path / "renamed.pt"
    torch.save({**payload, "state_dict": renamed}, path)
    message = _refused(path, "differences, name and shape")
    assert "fc.weight" in message and "linear.weight" in message
    transposed = {**state, "linear.weight": state["linear.weight"].T.contiguous()}
    torch.save({**payload, "state_dict": transposed}, path)
    _refused(path, r"\(16, 3\)")
    assert set(builds) == {"meta"}


def test_entries_that_are_not_tensors_are_refused(tmp_path: Path, payload: dict[str, Any]) -> None:
    path = tmp_path / "numbers.pt"
    torch.save({**payload, "state_dict": {**payload["state_dict"], "linear.bias": 3}}, path)
    _refused(path, "not named tensors")


def test_sizes_beyond_any_tensor_give_one_clear_line(
    tmp_path: Path, payload: dict[str, Any]
) -> None:
    message = _refused(
        _forge(tmp_path, payload, arch="mlp", arch_kwargs={"hidden": [10**30]}), "cannot rebuild"
    )
    assert "\n" not in message and str(tmp_path) in message


def test_a_compressed_archive_is_refused_before_it_is_expanded(
    tmp_path: Path, payload: dict[str, Any]
) -> None:
    genuine = tmp_path / "genuine.pt"
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(genuine) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert torch.load(bomb, weights_only=True).keys() == payload.keys()  # torch would expand it
    message = _refused(bomb, "compressed records")
    assert "save_checkpoint" in message


def test_genuine_checkpoints_still_load(tmp_path: Path, builds: list[str]) -> None:
    for arch, kwargs in (("mlp", {"hidden": [6, 5]}), ("lenet", {"channels": [2], "hidden": [4]})):
        model = build_model(arch, (1, 8, 8), 10, seed=0, **kwargs)
        loaded, meta = load_checkpoint(save_checkpoint(tmp_path / f"{arch}.pt", model, {}))
        x = torch.rand(3, 1, 8, 8)
        assert meta["arch_kwargs"] == kwargs
        assert torch.equal(loaded(x), model.eval()(x))
    assert builds.count("meta") == 4 and builds.count("cpu") == 2  # 2 checks per save + load


def test_a_plain_pickle_gives_brittles_error_and_no_torch_warning(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match=r"not a torch\.save archive"):
            load_checkpoint(path)
    assert [str(w.message) for w in caught] == []


def test_a_foreign_pickle_protocol_in_an_archive_gives_no_torch_warning(
    tmp_path: Path, payload: dict[str, Any]
) -> None:
    path = tmp_path / "protocol4.pt"
    torch.save(payload, path, pickle_protocol=4)
    with warnings.catch_warnings(record=True) as torch_direct:
        warnings.simplefilter("always")
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
    assert any("pickle protocol" in str(w.message) for w in torch_direct)  # what torch does
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="was refused"):
            load_checkpoint(path)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_building_on_the_meta_device_allocates_nothing_and_keeps_the_rng(arch: str) -> None:
    """What the checks rely on: huge sizes under ``torch.device("meta")`` are free, with or
    without a seed, and the caller's random state is left alone."""
    huge: dict[str, dict[str, Any]] = {
        "mlp": {"hidden": [10**6, 10**6]},
        "lenet": {"channels": [10**4, 10**4], "hidden": [10**6]},
        "maxout": {"units": 10**6, "pieces": 100},
    }
    shape = (1, 28, 28) if arch in huge else (3, 10**4, 10**4)
    state = torch.random.get_rng_state()
    for seed in (None, 0):
        with torch.device("meta"):
            model = build_model(arch, shape, 2, seed=seed, **huge.get(arch, {}))
        tensors = list(model.state_dict().values())
        assert {t.device.type for t in tensors} == {"meta"}
        assert sum(t.numel() for t in tensors) > 10**8
    assert torch.equal(torch.random.get_rng_state(), state)
