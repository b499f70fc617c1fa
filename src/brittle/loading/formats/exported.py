"""``torch.export`` programs (``torch.export.save``, ``.pt2``).

``torch.export.load`` unpickles some records of the archive (sample inputs, some weights,
Python objects among the constants) and would load compiled code (AOTInductor), so the archive
is checked first: every record must be one that ``torch.export.save`` writes for a plain
program, and every pickled record must load with ``torch.load(weights_only=True)`` (tensors
only). The program's input shape is read from its graph when static, else given by the
caller. A program exported with a fixed batch size runs on batches of that size, the last one
padded. Exported programs cannot switch between training and eval mode: one exported in
training mode (updating batchnorm statistics on every call) is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from typing import Any

import torch
from torch import Tensor, nn

from brittle.errors import CheckpointError, InputError
from brittle.loading.formats.base import (
    LoadedModel,
    ModelFile,
    ModelFormat,
    ModelRequest,
    check_input_shape,
    finish,
    in_batches_of,
    no_weights,
    probe_classifier,
    unreadable,
)

_PLAIN = re.compile(
    r"archive_format|archive_version|byteorder|\.data/[^/]+|models/[^/]+\.json|extra/.+"
    r"|data/(weights|constants)/[^/]+_config\.json"
)
"""Records read as text or JSON, never unpickled."""
_CONFIG = re.compile(r"data/(weights|constants)/[^/]+_config\.json")
_TENSOR_PAYLOAD = ("weight_", "tensor_")
"""How the payloads of tensors are named (other constants are pickled Python objects)."""


class ExportedModule(nn.Module):
    """An exported program's module, run as it was exported.

    Exported modules refuse ``train()`` and ``eval()``; here they only set the flag (the
    program computes as exported, in eval mode). ``batch``: the one batch size the program
    takes, when it was exported with a static one (inputs then run in chunks of it).
    """

    def __init__(self, program: nn.Module, batch: int | None) -> None:
        super().__init__()
        self.program = program
        self.batch = batch

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = in_batches_of(self.program, x, self.batch)
        return out


def recognise(request: ModelRequest, file: ModelFile | None) -> bool:
    """A ``torch.export.save`` archive: an ``archive_format`` record and ``models/``."""
    return file is not None and file.has("archive_format") and file.has("models/")


def load(request: ModelRequest, file: ModelFile | None) -> LoadedModel:
    """The exported program at ``file`` as a :class:`~brittle.Classifier`."""
    assert file is not None
    label = f"{file.path} (a torch.export program)"
    no_weights(request, label)
    file.check_stored("a torch.export program")
    data = file.content()
    _check_records(data, label)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as err:  # the deserialiser raises many types on foreign files
        raise unreadable(
            label,
            "torch.export.load",
            err,
            "it may be truncated or exported by another torch: export it again with "
            "torch.export.save",
        ) from err
    training = _training(program)
    if training:
        raise InputError(
            f"{label} was exported in training mode ({', '.join(training[:3])}: batch "
            "statistics, random dropout, updated buffers). Export the model in eval mode: "
            "torch.export.export(model.eval(), ...)"
        )
    batch, recorded = _input_shape(program, label)
    shape = check_input_shape(request, label, recorded)
    if request.device.type != "cpu":
        from torch.export.passes import move_to_device_pass  # torch >= 2.6

        program = move_to_device_pass(program, request.device)
    classifier = probe_classifier(ExportedModule(program.module(), batch), request, shape, label)
    meta = {
        "format": "torch-export",
        "path": str(file.path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "batch_size": batch,
    }
    return finish(classifier, request, meta, label)


def _check_records(data: bytes, label: str) -> None:
    """Refuse an archive with records ``torch.export.load`` would unpickle beyond tensors or
    run (compiled code), before loading it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = {i.filename.partition("/")[2]: i.filename for i in archive.infolist()}
            payloads, pickled = _payloads(archive, names, label)
            for record in names:
                if record not in payloads and not _PLAIN.fullmatch(record):
                    if not record.startswith("data/sample_inputs/"):
                        raise CheckpointError(
                            f"{label} holds {record}, which brittle does not load (compiled "
                            "code, or an archive layout of another torch); export the model "
                            "again with torch.export.save"
                        )
                    pickled.append(record)
            for record in pickled:
                _check_tensors_only(archive.read(names[record]), record, label)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"{label} is damaged ({type(err).__name__}: {err})") from err


def _payloads(
    archive: zipfile.ZipFile, names: dict[str, str], label: str
) -> tuple[set[str], list[str]]:
    """The weight and constant payloads the archive's configs name, and those of them that are
    pickled; a constant that is a Python or TorchBind object is refused."""
    payloads: set[str] = set()
    pickled: list[str] = []
    for config in filter(_CONFIG.fullmatch, names):
        folder = config.rpartition("/")[0]
        entries: dict[str, Any] = json.loads(archive.read(names[config]))["config"]
        for name, entry in entries.items():
            record = f"{folder}/{entry['path_name']}"
            if not str(entry["path_name"]).startswith(_TENSOR_PAYLOAD):
                raise CheckpointError(
                    f"{label} holds {name!r}, a Python or TorchBind object that loading would "
                    "unpickle; brittle loads programs whose constants are tensors only"
                )
            payloads.add(record)
            if entry.get("use_pickle"):
                pickled.append(record)
    return payloads, pickled


def _check_tensors_only(content: bytes, record: str, label: str) -> None:
    try:
        torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as err:  # an UnpicklingError, or torch's errors on a corrupt record
        raise CheckpointError(
            f"{label} holds pickled Python objects in {record}, which loading would unpickle; "
            "brittle never unpickles code. Export the model again from plain tensors"
        ) from err


def _training(program: Any) -> list[str]:
    """What in the program runs as in training: operators called with ``training`` or
    ``train`` true (batchnorm, dropout), and buffers it updates."""
    found = []
    for node in program.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None:
            continue
        for index, argument in enumerate(schema.arguments):
            if argument.name in ("training", "train"):
                value = (
                    node.args[index]
                    if index < len(node.args)
                    else node.kwargs.get(argument.name, argument.default_value)
                )
                if value is True:
                    found.append(f"{schema.name} in training mode")
    updated = program.graph_signature.buffers_to_mutate.values()
    return found + [f"updates {name}" for name in updated]


def _input_shape(program: Any, label: str) -> tuple[int | None, tuple[int, ...] | None]:
    """The program's static batch size (``None`` if dynamic) and the shape of one input
    (``None`` if any of its dimensions is dynamic)."""
    inputs = list(program.graph_signature.user_inputs)
    if len(inputs) != 1:
        raise InputError(
            f"{label} takes {len(inputs)} inputs ({', '.join(map(str, inputs))}); brittle "
            "attacks models of one input tensor"
        )
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == inputs[0])
    dims = tuple(node.meta["val"].shape)
    if not dims:
        raise InputError(f"{label} takes a scalar input; brittle needs a batch of inputs")
    batch = dims[0] if isinstance(dims[0], int) else None
    rest = dims[1:]
    shape = tuple(rest) if all(isinstance(d, int) for d in rest) else None
    return batch, shape


TORCH_EXPORT = ModelFormat(
    name="torch-export",
    accepts="a torch.export program (torch.export.save, .pt2)",
    recognise=recognise,
    load=load,
)
