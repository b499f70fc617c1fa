"""Brittle checkpoints, and the other files ``torch.save`` writes, which brittle refuses.

A ``torch.save`` file is read with ``torch.load(weights_only=True)`` only: a brittle
checkpoint loads (:func:`~brittle.zoo.load_classifier`); a bare ``state_dict`` is refused
with how to pair it with its network's code (``--model file.py:factory --weights``); a file
that pickles other objects (a whole model, ``torch.save(model)``) is refused before any of its
code could run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from brittle.errors import InputError
from brittle.loading.formats.base import (
    DEFAULT_BOUNDS,
    LoadedModel,
    ModelFile,
    ModelFormat,
    ModelRequest,
    Refused,
    check_classes,
    check_input_shape,
    is_state_dict,
    load_tensors,
    no_weights,
    weights_advice,
)
from brittle.zoo.checkpoint import FORMAT, load_classifier

_PICKLE_PROTOCOL = b"\x80"
"""The first byte of a pickle of protocol 2 or later: ``torch.save``'s legacy (non-zip) files."""


def recognise(request: ModelRequest, file: ModelFile | None) -> bool:
    """A ``torch.save`` file: a zip archive with ``data.pkl`` and no code, or a legacy pickle."""
    if file is None:
        return False
    if file.records is None:
        return file.head.startswith(_PICKLE_PROTOCOL)
    return file.has("data.pkl") and not file.has("code/")


def load(request: ModelRequest, file: ModelFile | None) -> LoadedModel:
    """Load a brittle checkpoint; refuse any other ``torch.save`` file, saying what it holds."""
    assert file is not None
    path = file.path
    payload = load_tensors(path, "a torch.save file")
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT):
        if is_state_dict(payload):
            raise Refused(
                f"{path} is a state_dict (weights without the network's code), not a model: "
                f"{weights_advice(path)}"
            )
        raise Refused(
            f"{path} is a torch.save file holding {_contents(payload)}, not a brittle "
            "checkpoint; if it holds a state_dict, save that alone and "
            f"{weights_advice('weights.pt')}"
        )
    label = f"{path} (a brittle checkpoint)"
    no_weights(request, label)
    classifier = load_classifier(path, request.device)
    recorded = json.loads(payload["meta_json"])
    shape = check_input_shape(request, label, recorded["input_shape"])
    _check_same(label, "preprocessing", classifier.preprocessing, _preprocessing(request))
    bounds = [float(v) for v in recorded.get("bounds") or DEFAULT_BOUNDS]
    if request.bounds is not None:
        _check_same(label, "bounds", bounds, [float(v) for v in request.bounds])
    classes = recorded.get("classes")
    if classes is not None:
        _check_same(label, "classes", list(classes), request.classes)
    else:
        check_classes(request.classes, int(recorded["num_classes"]), label)
        classes = request.classes
    with path.open("rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    meta = {
        **recorded,
        "format": FORMAT,
        "path": str(path),
        "sha256": sha256,
        "classes": classes,
        "accuracy": recorded.get("accuracy"),
        "dataset": recorded.get("dataset"),
        "preprocessing": classifier.preprocessing,
        "bounds": bounds,
        "input_shape": list(shape),
        "num_classes": int(recorded["num_classes"]),
    }
    return LoadedModel(classifier, meta)


def _preprocessing(request: ModelRequest) -> dict[str, list[float]] | None:
    if request.preprocess is None:
        return None
    return {"mean": request.preprocess[0], "std": request.preprocess[1]}


def _check_same(label: str, what: str, recorded: Any, given: Any) -> None:
    """Refuse a caller's ``what`` that contradicts the one the checkpoint records (a caller
    who gives none takes the recorded one)."""
    if given is None or given == recorded or _close(given, recorded):
        return
    shown = "none" if recorded is None else recorded
    raise InputError(
        f"{label} records {what} {shown}, but {given} was given; brittle uses the "
        "checkpoint's own: drop the option"
    )


def _close(a: Any, b: Any) -> bool:
    """Whether two preprocessing records hold the same numbers up to float32 rounding."""
    if not (isinstance(a, dict) and isinstance(b, dict)) or a.keys() != b.keys():
        return False
    return all(
        len(a[k]) == len(b[k])
        and all(abs(x - y) <= 1e-6 * max(1.0, abs(y)) for x, y in zip(a[k], b[k], strict=True))
        for k in a
    )


def _contents(payload: Any) -> str:
    """What a ``torch.save`` payload is, in a few words."""
    if isinstance(payload, dict):
        keys = ", ".join(map(repr, list(payload)[:5]))
        return f"a dict with keys {keys}{', ...' if len(payload) > 5 else ''}"
    return f"a {type(payload).__name__}"


BRITTLE_CHECKPOINT = ModelFormat(
    name=FORMAT,
    accepts="a brittle checkpoint (brittle train, brittle.zoo.save_checkpoint)",
    recognise=recognise,
    load=load,
)
