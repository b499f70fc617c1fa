"""ONNX models, run by ``onnxruntime`` (an optional extra: ``pip install brittle[onnx]``).

An ONNX model gives no gradients to PyTorch, so it is loaded as an
:class:`~brittle.oracle.Oracle` with scores: a query-only model, which the attacks' capability
check keeps from white-box attacks. The caller's preprocessing runs in the oracle's predict
function, before the model. The input shape comes from the graph when its dimensions are
static, else from the caller; a graph with a fixed batch size runs on batches of that size,
the last one padded. The first output must be one row of scores (logits or probabilities) per
input.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from brittle.errors import CheckpointError, InputError
from brittle.loading.formats.base import (
    DEFAULT_BOUNDS,
    LoadedModel,
    ModelFile,
    ModelFormat,
    ModelRequest,
    check_input_shape,
    check_scores,
    finish,
    in_batches_of,
    no_weights,
    normaliser,
    unreadable,
)
from brittle.model import model_failure
from brittle.oracle import Oracle

_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}
"""The input types brittle feeds, as numpy types."""
_MODEL_FIELDS = (b"\x12", b"\x1a", b"\x22", b"\x2a", b"\x32", b"\x3a", b"\x42")
"""The tags of a ModelProto's first fields after ``ir_version`` (fields 2 to 8, bytes)."""


def recognise(request: ModelRequest, file: ModelFile | None) -> bool:
    """A ``.onnx`` file, or one that starts as an ONNX ModelProto: ``ir_version`` (field 1, a
    small varint) followed by another of the model's fields."""
    if file is None:
        return False
    head = file.head
    starts_as_model = len(head) > 2 and head[0] == 0x08 and head[1] < 0x80
    return file.path.suffix.lower() == ".onnx" or (starts_as_model and head[2:3] in _MODEL_FIELDS)


def load(request: ModelRequest, file: ModelFile | None) -> LoadedModel:
    """The ONNX model at ``file`` as an :class:`~brittle.oracle.Oracle` with scores."""
    assert file is not None
    label = f"{file.path} (ONNX)"
    no_weights(request, label)
    try:
        import onnxruntime
    except ImportError as err:
        raise CheckpointError(
            f"{label}: reading ONNX models needs onnxruntime: pip install brittle[onnx]"
        ) from err
    data = file.content()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the reader's warnings are not the user's
    try:
        session = onnxruntime.InferenceSession(data, options, providers=_providers(request))
    except Exception as err:  # onnxruntime raises its own types on a foreign file
        raise unreadable(
            label, "onnxruntime", err, "it may be truncated or not an ONNX model"
        ) from err
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise InputError(
            f"{label} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            "brittle attacks models of one input tensor"
        )
    dims, kind = list(inputs[0].shape), inputs[0].type
    if kind not in _DTYPES or not dims:
        raise InputError(
            f"{label} takes {kind} of shape {dims}; brittle feeds a batch of float inputs"
        )
    batch = dims[0] if isinstance(dims[0], int) else None
    static = all(isinstance(d, int) for d in dims[1:])
    shape = check_input_shape(request, label, dims[1:] if static else None)
    normalise = normaliser(request.preprocess, shape, label)
    names = (inputs[0].name, outputs[0].name)

    def run(x: Tensor) -> Tensor:
        array = x.detach().cpu().numpy().astype(_DTYPES[kind], copy=False)
        (out,) = session.run([names[1]], {names[0]: array})
        return torch.from_numpy(np.asarray(out))

    def predict(x: Tensor) -> Tensor:
        return in_batches_of(run, normalise(x), batch)

    probe = torch.zeros(batch or 2, *shape)
    try:
        num_classes = check_scores(predict(probe), len(probe), label)
    except Exception as err:  # onnxruntime's errors on inputs of the wrong shape or type
        raise model_failure(err, probe, who=label) from err
    predict.__name__ = file.path.name
    oracle = Oracle(
        predict,
        num_classes=num_classes,
        input_shape=shape,
        bounds=request.bounds or DEFAULT_BOUNDS,
        outputs="scores",
        device=request.device,
        dtype=torch.float64 if kind == "tensor(double)" else torch.float32,
    )
    meta: dict[str, Any] = {
        "format": "onnx",
        "path": str(file.path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "batch_size": batch,
    }
    return finish(oracle, request, meta, label)


def _providers(request: ModelRequest) -> list[str]:
    """CUDA when the model is asked for on a GPU and this onnxruntime has it, else the CPU."""
    import onnxruntime

    cuda = "CUDAExecutionProvider"
    wanted = request.device.type == "cuda" and cuda in onnxruntime.get_available_providers()
    return [cuda, "CPUExecutionProvider"] if wanted else ["CPUExecutionProvider"]


ONNX = ModelFormat(
    name="onnx",
    accepts="ONNX (.onnx, run as a query-only model; needs pip install brittle[onnx])",
    recognise=recognise,
    load=load,
)
