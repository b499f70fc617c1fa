"""Models from where users keep them: one call, :func:`load_model`, for every format.

A model is given as a path or a spec, and its format is recognised from the spec and the
file's first bytes (never from unpickling it). :data:`MODEL_FORMATS` lists the formats, each a
small :class:`~brittle.loading.formats.base.ModelFormat` object in its own module under
:mod:`brittle.loading.formats`; adding a format is writing one and listing it here:

- a brittle checkpoint (:mod:`~brittle.loading.formats.checkpoint`);
- TorchScript, ``torch.jit.save`` (:mod:`~brittle.loading.formats.torchscript`);
- a ``torch.export`` program, ``.pt2`` (:mod:`~brittle.loading.formats.exported`);
- ``path/to/file.py:factory`` or ``package.module:factory`` with a ``state_dict`` in
  ``weights`` (:mod:`~brittle.loading.formats.factory`): **this runs your own Python code**;
- ONNX, through ``onnxruntime``, as a query-only :class:`~brittle.oracle.Oracle`
  (:mod:`~brittle.loading.formats.onnx`).

Files that hold pickled Python objects (a whole model saved with ``torch.save(model)``) are
refused, never unpickled; so is a ``state_dict`` given without the code of its network. Every
refusal says what brittle saw and what it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from brittle.devices import check_device
from brittle.errors import CheckpointError, InputError
from brittle.loading.formats.base import (
    LoadedModel,
    ModelFile,
    ModelFormat,
    ModelRequest,
    Preprocess,
    Refused,
    looks_like_safetensors,
    weights_advice,
)
from brittle.loading.formats.checkpoint import BRITTLE_CHECKPOINT
from brittle.loading.formats.exported import TORCH_EXPORT
from brittle.loading.formats.factory import PYTHON_FACTORY
from brittle.loading.formats.onnx import ONNX
from brittle.loading.formats.torchscript import TORCHSCRIPT
from brittle.validation import is_shape

__all__ = ["MODEL_FORMATS", "LoadedModel", "load_model", "parse_classes", "parse_preprocess"]

MODEL_FORMATS: tuple[ModelFormat, ...] = (
    BRITTLE_CHECKPOINT,
    TORCHSCRIPT,
    TORCH_EXPORT,
    PYTHON_FACTORY,
    ONNX,
)
"""The formats :func:`load_model` reads, in the order they are tried."""


def accepted() -> str:
    """The sentence every refusal ends with: what brittle accepts."""
    return "brittle accepts: " + "; ".join(f.accepts for f in MODEL_FORMATS)


def load_model(
    spec: str | Path,
    *,
    weights: str | Path | None = None,
    preprocess: tuple[Sequence[float], Sequence[float]] | None = None,
    classes: Sequence[str] | None = None,
    input_shape: Sequence[int] | None = None,
    bounds: tuple[float, float] | None = None,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Load the model ``spec`` names, in whichever of :data:`MODEL_FORMATS` it is.

    ``spec``: a model file, or ``path/to/file.py:factory`` / ``package.module:factory`` (a
    function returning an ``nn.Module``, or an ``nn.Module`` class). **A factory is your own
    Python code, and loading it runs that code**: give only code you trust.
    ``weights``: the factory's ``state_dict``, a ``.pt`` (read with
    ``torch.load(weights_only=True)``) or ``.safetensors`` file; without it the network is
    used as the factory returns it. ``preprocess``: per-channel ``(mean, std)``, applied
    inside the model as ``(x - mean) / std`` so that attacks work on the inputs as given.
    ``classes``: the class names, one per output, recorded in the metadata.
    ``input_shape``: the shape of one input, for formats that do not record it (TorchScript,
    a factory; a ``.pt2`` or ONNX graph with dynamic dimensions); the command line takes it
    from the data. ``bounds``: the input box, by default the one a checkpoint records, else
    ``(0, 1)``. ``device``: where the model runs (default CPU).

    A brittle checkpoint records its own preprocessing, bounds, input shape and classes: a
    caller's that contradict them are refused. Returns the model (a
    :class:`~brittle.Classifier`, or an :class:`~brittle.Oracle` for ONNX) in eval mode, with
    its metadata (:class:`LoadedModel`). Every option is checked before the model is loaded.
    """
    request = _request(spec, weights, preprocess, classes, input_shape, bounds, device)
    path = Path(request.spec)
    file = ModelFile.read(path) if path.is_file() else None
    chosen = _recognise(request, file)
    try:
        return chosen.load(request, file)
    except Refused as err:
        raise CheckpointError(f"{err}. {accepted()}") from err


def _recognise(request: ModelRequest, file: ModelFile | None) -> ModelFormat:
    """The first format that recognises the model; an error saying what was seen if none."""
    for model_format in MODEL_FORMATS:
        if model_format.recognise(request, file):
            return model_format
    spec = request.spec
    if file is None:
        what = "is a folder" if Path(spec).is_dir() else "does not exist"
        raise CheckpointError(f"model {spec} {what}. {accepted()}")
    if looks_like_safetensors(file):
        seen = f"a safetensors file (weights without the network's code): {weights_advice(spec)}"
    elif file.records is not None:
        seen = "a zip archive of no model format brittle reads"
    else:
        seen = f"in no model format brittle reads (it starts with bytes {file.head[:8].hex(' ')})"
    raise CheckpointError(f"{spec} is {seen}. {accepted()}")


def _request(
    spec: str | Path,
    weights: str | Path | None,
    preprocess: tuple[Sequence[float], Sequence[float]] | None,
    classes: Sequence[str] | None,
    input_shape: Sequence[int] | None,
    bounds: tuple[float, float] | None,
    device: str | torch.device | None,
) -> ModelRequest:
    """The caller's options, each checked."""
    if not isinstance(spec, str | Path) or not str(spec):
        raise InputError(f"the model must be a path or a file.py:factory spec, got {spec!r}")
    torch_device = check_device(device if device is not None else "cpu")
    if weights is not None and not Path(weights).is_file():
        what = "is a folder" if Path(weights).is_dir() else "does not exist"
        raise InputError(f"weights {weights} {what}; give a state_dict .pt or .safetensors file")
    return ModelRequest(
        spec=str(spec),
        weights=None if weights is None else Path(weights),
        preprocess=None if preprocess is None else _check_preprocess(*preprocess),
        classes=None if classes is None else _check_classes(classes),
        input_shape=None if input_shape is None else _check_shape(input_shape),
        bounds=None if bounds is None else _check_bounds(bounds),
        device=torch_device,
    )


def _check_preprocess(mean: Sequence[float], std: Sequence[float]) -> Preprocess:
    """``(mean, std)`` as two lists of floats of one length, finite, ``std > 0``."""
    try:
        means, stds = [float(v) for v in mean], [float(v) for v in std]
    except (TypeError, ValueError):
        raise InputError(
            f"preprocessing mean and std must be lists of numbers, got {mean!r} and {std!r}"
        ) from None
    if not means or len(means) != len(stds):
        raise InputError(
            f"preprocessing needs one std per mean (per channel): got {len(means)} means "
            f"and {len(stds)} stds"
        )
    if not all(math.isfinite(v) for v in means + stds) or min(stds) <= 0:
        raise InputError(
            f"preprocessing mean must be finite and std positive, got mean {means}, std {stds}"
        )
    return means, stds


def _check_classes(classes: Sequence[str]) -> list[str]:
    """Class names: at least one, none empty, none twice."""
    if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
        raise InputError(f"classes must be a list of names, got {classes!r}")
    names = [c.strip() for c in classes]
    if not names or not all(names):
        raise InputError(f"class names must not be empty, got {list(classes)!r}")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise InputError(f"class names must differ; given twice: {', '.join(twice)}")
    return names


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The shape of one input: positive integers."""
    dims = tuple(shape)
    if not is_shape(dims):
        raise InputError(
            f"input_shape must be the shape of one input, positive integers such as "
            f"(3, 32, 32); got {shape!r}"
        )
    return dims


def _check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    """``(low, high)`` as floats with ``low < high``."""
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be two numbers (low, high), got {bounds!r}") from None
    if not low < high:
        raise InputError(f"bounds must satisfy low < high, got {bounds!r}")
    return low, high


def parse_preprocess(text: str) -> Preprocess:
    """``MEAN/STD`` from the command line: each a comma-separated list, one value per channel
    (or one for all), e.g. ``0.4914,0.4822,0.4465/0.2470,0.2435,0.2616``. Checked: as many
    stds as means, finite, ``std > 0``."""
    mean, slash, std = text.partition("/")
    if not slash or "/" in std:
        raise InputError(
            f"--preprocess must be MEAN/STD, each a comma-separated list with one value per "
            f"channel, e.g. 0.4914,0.4822,0.4465/0.2470,0.2435,0.2616; got {text!r}"
        )
    try:
        means = [float(v) for v in mean.split(",")]
        stds = [float(v) for v in std.split(",")]
    except ValueError:
        raise InputError(
            f"--preprocess must be numbers: MEAN/STD, e.g. 0.5,0.5,0.5/0.25,0.25,0.25; got {text!r}"
        ) from None
    return _check_preprocess(means, stds)


def parse_classes(text: str) -> list[str]:
    """Class names from the command line: ``cat,dog,...`` (comma-separated, in the order of
    the model's outputs), or the path of a text file with one name per line (blank lines
    skipped)."""
    path = Path(text)
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read the class names in {path}: {err}") from None
        return _check_classes([line for line in lines if line.strip()])
    if "," not in text and (path.suffix or "/" in text):
        raise InputError(
            f"--classes {text}: no such file; give a text file with one name per line, or "
            "the names separated by commas (cat,dog,...)"
        )
    return _check_classes(text.split(","))
