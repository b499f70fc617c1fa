"""What every model format shares: the request, the loaded model, and the checks after loading.

A format (:class:`ModelFormat`) recognises a model from its spec and its file's first bytes
(:class:`ModelFile`), and loads it into a :class:`LoadedModel`: a
:class:`~brittle.classifier.Classifier` (white box) or an :class:`~brittle.oracle.Oracle`
(query only) with JSON-ready metadata. The helpers here complete what a format without
metadata cannot record itself: the input shape (the caller's), the number of classes (one
forward pass on zeros), the caller's preprocessing and class names.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from brittle.classifier import Classifier
from brittle.errors import BrittleError, CheckpointError, InputError, ModelOutputError
from brittle.oracle import Oracle

Preprocess = tuple[list[float], list[float]]
"""Per-channel ``(mean, std)``, checked: equal lengths, finite, ``std > 0``."""

DEFAULT_BOUNDS = (0.0, 1.0)
"""The input box of a model that records none: images scaled to [0, 1]."""

_HEAD_BYTES = 16
_MAX_EXPANSION = 100
"""How many times its stored size a compressed record may expand to: TorchScript compresses
its code about 3-fold; a zip bomb expands a thousand-fold."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to attack, and what identifies and describes it.

    ``meta`` is JSON-ready: ``format``, ``path`` (or the factory spec), ``sha256`` (the
    model's identity), ``classes``, ``accuracy`` and ``dataset`` (``None`` unless recorded),
    ``preprocessing``, ``bounds``, ``input_shape`` and ``num_classes``, plus a brittle
    checkpoint's own metadata, or a format's own fields (``weights`` for a factory).
    """

    model: Classifier | Oracle
    meta: dict[str, Any]


@dataclass(frozen=True)
class ModelRequest:
    """What the caller asked for: the model's spec and the options that complete it.

    ``bounds`` is ``None`` when the caller gave none (the model's recorded box, else
    :data:`DEFAULT_BOUNDS`).
    """

    spec: str
    weights: Path | None
    preprocess: Preprocess | None
    classes: list[str] | None
    input_shape: tuple[int, ...] | None
    bounds: tuple[float, float] | None
    device: torch.device


@dataclass(frozen=True)
class ModelFile:
    """A model file as recognition sees it: its path, first bytes, and, for a zip archive,
    its records' names without the archive's root folder (``torch.save``, ``torch.jit.save``
    and ``torch.export.save`` all put every record under one folder named after the file)."""

    path: Path
    head: bytes
    records: tuple[str, ...] | None
    compressed: tuple[zipfile.ZipInfo, ...]

    @classmethod
    def read(cls, path: Path) -> ModelFile:
        """Look at ``path`` without loading it."""
        try:
            with path.open("rb") as f:
                head = f.read(_HEAD_BYTES)
            if not zipfile.is_zipfile(path):
                return cls(path, head, None, ())
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
        except (OSError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"cannot read model file {path}: {err}") from err
        records = tuple(i.filename.partition("/")[2] for i in infos)
        packed = tuple(i for i in infos if i.compress_type != zipfile.ZIP_STORED)
        return cls(path, head, records, packed)

    def has(self, record: str) -> bool:
        """Whether the archive holds ``record`` (a name, or a folder ending in ``/``)."""
        if self.records is None:
            return False
        if record.endswith("/"):
            return any(r.startswith(record) for r in self.records)
        return record in self.records

    def check_stored(self, what: str, code: bool = False) -> None:
        """Refuse compressed records before torch expands them (a zip bomb could take far
        more memory than the file's size). Torch stores tensors and pickles uncompressed;
        with ``code`` (TorchScript), the records under ``code/`` may be compressed, expanding
        at most :data:`_MAX_EXPANSION`-fold."""
        refused = [
            info.filename
            for info in self.compressed
            if not (code and info.filename.partition("/")[2].startswith("code/"))
            or info.file_size > _MAX_EXPANSION * max(info.compress_size, 1)
        ]
        if refused:
            raise CheckpointError(
                f"{self.path} ({what}) holds compressed records ({', '.join(refused[:3])}) that "
                "torch does not write, and that could expand to far more memory than the "
                "file's size; it was refused. Save it again with torch"
            )

    def content(self) -> bytes:
        """The file's bytes (read once: the same bytes are hashed and loaded)."""
        try:
            return self.path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"cannot read model file {self.path}: {err}") from err


@dataclass(frozen=True)
class ModelFormat:
    """One way users keep models: how brittle recognises it and loads it.

    ``recognise(request, file)`` looks only at the spec and the file's first bytes or record
    names (``file`` is ``None`` when the spec names no file); ``load`` builds the model.
    ``accepts`` describes the format in the list every refusal ends with.
    """

    name: str
    accepts: str
    recognise: Callable[[ModelRequest, ModelFile | None], bool]
    load: Callable[[ModelRequest, ModelFile | None], LoadedModel]


class Refused(CheckpointError):
    """A model in a form brittle does not load: :func:`~brittle.loading.load_model` adds the
    list of what it accepts to the message."""


def weights_advice(path: Path | str) -> str:
    """How to give brittle weights without their network's code."""
    return (
        f"pass --model file.py:factory --weights {path} (the factory builds the network, the "
        "file fills in its weights)"
    )


def looks_like_safetensors(file: ModelFile) -> bool:
    """A ``.safetensors`` file, or one that starts as one: an 8-byte header length, then the
    JSON header."""
    return file.path.suffix.lower() == ".safetensors" or file.head[8:9] == b"{"


def load_tensors(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and containers only.

    A file that pickles other objects (a whole model saved with ``torch.save(model)``) is
    refused with how to save it instead: unpickling it could run any code.
    """
    file = ModelFile.read(path)
    file.check_stored(what)
    try:
        with warnings.catch_warnings():
            # torch warns about foreign pickles before failing; the error below says more
            warnings.filterwarnings("ignore", module=r"torch(\.|$)")
            return torch.load(
                path, map_location="cpu", weights_only=True, mmap=file.records is not None
            )
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        names = f", naming {found.group(1)}" if found else ""
        raise Refused(
            f"{path} holds pickled Python objects{names}: a whole model saved with "
            "torch.save(model), or a checkpoint holding other objects. brittle never unpickles "
            f"code: save model.state_dict() and {weights_advice('state.pt')}, or save TorchScript "
            "(torch.jit.save(torch.jit.script(model), path))"
        ) from err
    except Exception as err:  # torch raises many types on a corrupt or foreign file
        raise Refused(
            f"{path} is not a readable torch.save file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); it may be truncated"
        ) from err


def unreadable(label: str, reader: str, err: BaseException, advice: str) -> CheckpointError:
    """The error for a file ``reader`` could not read: its first line (or its type), and
    ``advice`` on what to do."""
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return CheckpointError(f"{label} could not be read by {reader} ({reason}); {advice}")


def is_state_dict(payload: Any) -> bool:
    """Whether ``payload`` maps names to tensors (a ``state_dict``)."""
    return (
        isinstance(payload, Mapping)
        and bool(payload)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in payload.items())
    )


def digest(*parts: bytes) -> str:
    """The SHA-256 of ``parts``, each length-prefixed so that no two splits collide."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def check_input_shape(
    request: ModelRequest, label: str, recorded: Sequence[int] | None = None
) -> tuple[int, ...]:
    """The input shape: the one the model records, else the caller's.

    A caller's shape that disagrees with the recorded one is refused with both; a model that
    records none needs the caller's (the command line takes it from the data).
    """
    if recorded is not None:
        shape = tuple(int(d) for d in recorded)
        if request.input_shape is not None and request.input_shape != shape:
            raise InputError(
                f"{label} takes inputs of shape {shape}, but input_shape {request.input_shape} "
                "was given; give data of the model's shape"
            )
        return shape
    if request.input_shape is None:
        raise InputError(
            f"{label} does not record the shape of its inputs; give input_shape, the shape of "
            "one input such as (3, 32, 32) (the command line takes it from the data)"
        )
    return request.input_shape


def check_preprocess(
    preprocess: Preprocess | None, input_shape: Sequence[int], label: str
) -> tuple[Any, Any] | None:
    """``preprocess`` as :class:`Classifier` takes it: one number per channel, or one number
    for every feature; a count that is neither is refused."""
    if preprocess is None:
        return None
    mean, std = preprocess
    if len(mean) == 1:
        return (mean[0], std[0])
    if len(input_shape) != 3 or input_shape[0] != len(mean):
        raise InputError(
            f"the preprocessing has {len(mean)} channel values but {label} takes inputs of "
            f"shape {tuple(input_shape)}; give one mean and std per channel (the first "
            "dimension), or one of each for all"
        )
    return (mean, std)


def normaliser(
    preprocess: Preprocess | None, input_shape: Sequence[int], label: str
) -> Callable[[Tensor], Tensor]:
    """The function ``x -> (x - mean) / std`` of ``preprocess`` (per channel), for models that
    are not a :class:`Classifier`; the identity without ``preprocess``."""
    spec = check_preprocess(preprocess, input_shape, label)
    if spec is None:
        return lambda x: x
    mean, std = (torch.as_tensor(v, dtype=torch.float64) for v in spec)
    if mean.ndim:
        mean, std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)

    def normalise(x: Tensor) -> Tensor:
        return (x - mean.to(x)) / std.to(x)

    return normalise


def in_batches_of(run: Callable[[Tensor], Tensor], x: Tensor, size: int | None) -> Tensor:
    """``run`` on ``x`` for a model that takes batches of exactly ``size`` inputs (``None``:
    any size): ``x`` in chunks of ``size``, the last padded with zeros, the padding's outputs
    dropped. Differentiable, so gradients reach ``x``."""
    if size is None or len(x) == size:
        return run(x)
    chunks = max(1, math.ceil(len(x) / size))
    padded = torch.cat([x, x.new_zeros((chunks * size - len(x), *x.shape[1:]))])
    return torch.cat([run(chunk) for chunk in padded.split(size)])[: len(x)]


def check_classes(classes: list[str] | None, num_classes: int, label: str) -> None:
    """Refuse class names whose count is not the model's number of outputs."""
    if classes is not None and len(classes) != num_classes:
        raise InputError(
            f"{len(classes)} class names were given but {label} has {num_classes} outputs; "
            "give one name per output, in the order of the model's outputs"
        )


def relabel(err: BrittleError, label: str) -> BrittleError:
    """``err`` with ``label`` (what was loaded, in which format) in front of its message."""
    return type(err)(f"{label}: {err}")


def probe_classifier(
    module: nn.Module, request: ModelRequest, input_shape: Sequence[int], label: str
) -> Classifier:
    """``module`` in eval mode as a :class:`Classifier` with the caller's bounds and
    preprocessing; its number of classes from one forward pass on zeros, whose output must be
    one row of logits per input, ``(N, K)``."""
    module.eval()
    try:
        classifier = Classifier(
            module,
            bounds=request.bounds or DEFAULT_BOUNDS,
            preprocessing=check_preprocess(request.preprocess, input_shape, label),
            input_shape=input_shape,
            device=request.device,
        )
        zeros = torch.zeros(2, *input_shape, device=classifier.device, dtype=classifier.dtype)
        classifier.check_outputs(zeros)
    except BrittleError as err:
        raise relabel(err, label) from err
    return classifier


def check_scores(out: Any, n: int, label: str) -> int:
    """The number of classes of a model whose outputs on ``n`` inputs are ``out``; outputs
    that are not one row of at least two scores per input are refused."""
    shape = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
    if not isinstance(shape, tuple) or len(shape) != 2 or shape[0] != n or shape[1] < 2:
        raise ModelOutputError(
            f"{label} must return one row of scores per input, shape (N, classes) with at "
            f"least 2 classes; it returned {shape} for {n} inputs"
        )
    return int(shape[1])


def describe(model: Classifier | Oracle, request: ModelRequest) -> dict[str, Any]:
    """The metadata every loaded model has: how it is used and what it outputs."""
    preprocessing = None
    if request.preprocess is not None:
        preprocessing = {"mean": request.preprocess[0], "std": request.preprocess[1]}
    assert model.num_classes is not None and model.input_shape is not None
    return {
        "classes": request.classes,
        "accuracy": None,
        "dataset": None,
        "preprocessing": preprocessing,
        "bounds": list(request.bounds or DEFAULT_BOUNDS),
        "input_shape": list(model.input_shape),
        "num_classes": int(model.num_classes),
    }


def finish(
    model: Classifier | Oracle, request: ModelRequest, meta: dict[str, Any], label: str
) -> LoadedModel:
    """The loaded model with the caller's class names checked and recorded."""
    assert model.num_classes is not None
    check_classes(request.classes, model.num_classes, label)
    return LoadedModel(model, {**meta, **describe(model, request)})


def no_weights(request: ModelRequest, label: str) -> None:
    """Refuse ``weights`` for a format that holds its own."""
    if request.weights is not None:
        raise InputError(
            f"{label} holds its own weights; --weights goes with --model file.py:factory only"
        )
