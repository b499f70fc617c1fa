"""Checkpoints that load without unpickling code: a state_dict plus JSON metadata.

A checkpoint is ``torch.save`` of
``{"format": "brittle-checkpoint", "version": 1, "state_dict": ..., "meta_json": "..."}``.
It holds tensors, strings and numbers only, so :func:`load_checkpoint` reads it with
``torch.load(weights_only=True)`` and refuses any file that carries other pickled objects:
unpickling an untrusted file can run arbitrary code. The metadata say how to rebuild the
network (``arch``, ``arch_kwargs``, ``input_shape``, ``num_classes``) and how to use it
(``bounds``, ``preprocessing``), plus provenance (dataset, classes, accuracy, seed, epochs,
brittle version, creation time).

A checkpoint holds one :class:`Kind` of network, named by the metadata's ``kind``:
``"classifier"`` (files without the field are classifiers) or ``"generator"``
(:mod:`brittle.generators.checkpoint`). :func:`save_module` and :func:`load_module` do the
work for any kind; :func:`save_checkpoint` and :func:`load_checkpoint` are the classifiers'.
A file of another kind than the one asked for is refused with what it is and how to load it.

An untrusted file must not exhaust memory either: before any real network is built, the
architecture its metadata name is built on the meta device (shapes only, no memory) and must
match the file's tensors name by name and shape by shape, so a forged ``hidden=[10**6, 10**6]``
is refused in milliseconds. What the file holds is counted in the bytes of its storages, not
in the elements its tensors claim: a tensor ``expand()``-ed from one number (stride 0) claims
millions of elements from 4 bytes, and is refused. Weights must be numbers of the network's
kind (floating point for floating-point weights): integer weights would load as a different
model without a word. The metadata are checked against a schema (:data:`META_SCHEMA`), so a
forged field is one :class:`CheckpointError` naming it. Checkpoints are written atomically
(:mod:`brittle.files`): a failed save leaves the previous file as it was.
"""

from __future__ import annotations

import datetime
import json
import math
import pickle
import reprlib
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from brittle.classifier import Classifier
from brittle.errors import BrittleError, CheckpointError
from brittle.files import atomic_path
from brittle.validation import is_integer, is_real, is_shape
from brittle.version import __version__
from brittle.zoo.architectures import ARCHITECTURES, build_model

FORMAT = "brittle-checkpoint"
VERSION = 1


def _bounds(value: Any) -> bool:
    if value is None:
        return True
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(is_real(b) for b in value)
        and value[0] < value[1]
    )


def _statistic(value: Any, positive: bool) -> bool:
    """One number or a non-empty list of numbers, finite (and > 0 for a ``std``)."""
    values = value if isinstance(value, list | tuple) and value else [value]
    return all(is_real(v) and math.isfinite(v) and (not positive or v > 0) for v in values)


def _preprocessing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple) and len(value) == 2:
        value = {"mean": value[0], "std": value[1]}
    return (
        isinstance(value, dict)
        and set(value) <= {"mean", "std"}
        and _statistic(value.get("mean", 0.0), positive=False)
        and _statistic(value.get("std", 1.0), positive=True)
    )


META_SCHEMA: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "kind": ("a string", lambda v: isinstance(v, str)),
    "arch": ("a string naming an architecture", lambda v: isinstance(v, str)),
    "arch_kwargs": ("an object of keyword arguments", lambda v: isinstance(v, dict)),
    "input_shape": ("a list of positive integers (C, H, W)", is_shape),
    "num_classes": ("an integer >= 2", lambda v: is_integer(v) and v >= 2),
    "latent_dim": ("an integer >= 1", lambda v: is_integer(v) and v >= 1),
    "output_shape": ("a list of positive integers (C, H, W)", is_shape),
    "bounds": ("null or two numbers [low, high] with low < high", _bounds),
    "preprocessing": (
        'null or {"mean": M, "std": S}, each a number or a list of numbers (std > 0)',
        _preprocessing,
    ),
    "dataset": ("null or a string", lambda v: v is None or isinstance(v, str)),
    "classes": (
        "a list of strings (one name per class)",
        lambda v: isinstance(v, list | tuple) and all(isinstance(c, str) for c in v),
    ),
    "accuracy": ("null or a number", lambda v: v is None or is_real(v)),
    "defense": ("null or an object", lambda v: v is None or isinstance(v, dict)),
}
"""The metadata fields brittle reads: for each, what it must be (in words, for messages) and
the test of a value. Other fields (provenance: seed, epochs, ...) are kept as they are."""


@dataclass(frozen=True)
class Kind:
    """A kind of network a checkpoint can hold, and how to rebuild it from its metadata.

    ``fields`` are the attributes besides ``arch`` and ``arch_kwargs`` that the network
    records and the metadata need (``input_shape`` and ``num_classes`` for a classifier);
    ``architectures`` the names ``arch`` may take; ``build(meta)`` the network they describe
    (called on the meta device too, to check shapes without allocating). ``builder``,
    ``saver`` and ``convert`` are for messages: what builds such a network, what saves it,
    and how to turn foreign weights into a checkpoint.
    """

    name: str
    fields: tuple[str, ...]
    architectures: Mapping[str, Any]
    build: Callable[[Mapping[str, Any]], nn.Module]
    builder: str
    saver: str
    convert: str

    @property
    def required(self) -> tuple[str, ...]:
        """The metadata every checkpoint of this kind holds."""
        return ("arch", *self.fields)


_MAKE = {
    "classifier": ("brittle.zoo.load_checkpoint", "`brittle train --out PATH`"),
    "generator": (
        "brittle.generators.load_generator",
        "`brittle generator train --latent-dim 16 --out PATH`",
    ),
}
"""For each kind: the function that loads it and the command that makes one."""


def _build_classifier(meta: Mapping[str, Any]) -> nn.Module:
    return build_model(
        meta["arch"], meta["input_shape"], meta["num_classes"], **meta["arch_kwargs"]
    )


CLASSIFIER = Kind(
    name="classifier",
    fields=("input_shape", "num_classes"),
    architectures=ARCHITECTURES,
    build=_build_classifier,
    builder="brittle.zoo.build_model",
    saver="save_checkpoint",
    convert=(
        "build the model with brittle.zoo.build_model(arch, input_shape, num_classes), load "
        "the weights into it with model.load_state_dict(...), and save it with "
        "brittle.zoo.save_checkpoint(path, model, meta)"
    ),
)
"""The classifiers of the zoo (:mod:`brittle.zoo.architectures`)."""


def save_checkpoint(path: str | Path, model: nn.Module, meta: Mapping[str, Any]) -> Path:
    """Save ``model``'s state_dict and ``meta`` to ``path``; return the path.

    ``arch``, ``arch_kwargs``, ``input_shape`` and ``num_classes`` default to those a zoo
    model records; ``kind`` (``"classifier"``), ``brittle_version`` and ``created`` (ISO
    time, UTC) are filled in. The metadata must be JSON-serialisable and name a known
    architecture whose state_dict matches the model's, so that :func:`load_checkpoint` can
    rebuild it. Parent folders are created. The file is written atomically: on failure (a
    full disk, say) a :class:`~brittle.errors.StorageError` is raised and a previous file at
    ``path`` is kept.
    """
    return save_module(path, model, meta, CLASSIFIER)


def load_checkpoint(
    path: str | Path, device: str | torch.device | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network saved at ``path`` and return it (in eval mode) with its metadata.

    Raises :class:`CheckpointError` if the file is missing, is not a brittle checkpoint (a raw
    state_dict, say), holds a generator, carries pickled objects other than tensors, names an
    unknown architecture, or holds weights that do not fit it. The fit is checked before the
    network is built, so metadata that describe a bigger network than the file holds never
    allocate it.
    """
    return load_module(path, CLASSIFIER, device)


def save_module(path: str | Path, module: nn.Module, meta: Mapping[str, Any], kind: Kind) -> Path:
    """Save ``module``, a network of ``kind``, with ``meta`` (see :func:`save_checkpoint`).

    ``arch``, ``arch_kwargs`` and ``kind.fields`` default to the module's attributes of those
    names, and must equal them when ``meta`` gives them too.
    """
    full = {
        key: getattr(module, key)
        for key in ("arch", "arch_kwargs", *kind.fields)
        if hasattr(module, key)
    }
    for key, value in meta.items():
        if key in full and _jsonable(value) != _jsonable(full[key]):
            raise CheckpointError(
                f"meta[{key!r}] = {value!r} but the model has {key} = {full[key]!r}; "
                f"drop {key!r} from meta to use the model's"
            )
        full[key] = value
    if full.setdefault("kind", kind.name) != kind.name:
        raise CheckpointError(
            f"meta['kind'] = {full['kind']!r} but {kind.saver} saves a {kind.name}; drop "
            "'kind' from meta"
        )
    full.setdefault("arch_kwargs", {})
    full["brittle_version"] = __version__
    full["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        meta_json = json.dumps(full, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint metadata must be JSON-serialisable (numbers, strings, lists, dicts): "
            f"{err}. Convert tensors and arrays with .tolist()"
        ) from err
    _check_meta(json.loads(meta_json), kind)  # as load_module will read them back
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    _check_state_dict(state, json.loads(meta_json), kind)
    payload = {"format": FORMAT, "version": VERSION, "state_dict": state, "meta_json": meta_json}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_module(
    path: str | Path, kind: Kind, device: str | torch.device | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of ``kind`` saved at ``path``; it and its metadata (see
    :func:`load_checkpoint`). A checkpoint of another kind is refused."""
    payload = _read(Path(path), kind)
    meta = _parse_meta(payload, path, kind)
    state = payload["state_dict"]
    _check_file_weights(state, meta, path, kind)
    module = _rebuild(meta, kind)
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: {_misfit(meta, kind)}: {err}. {_resave(kind)}") from err
    module.to(torch.device(device) if device is not None else "cpu")
    module.eval()
    return module, meta


def load_classifier(path: str | Path, device: str | torch.device | None = None) -> Classifier:
    """Load a checkpoint as a :class:`~brittle.Classifier` with its bounds and preprocessing."""
    model, meta = load_checkpoint(path, device)
    bounds = meta.get("bounds") or (0.0, 1.0)  # checked by META_SCHEMA
    return Classifier(
        model,
        bounds=(float(bounds[0]), float(bounds[1])),
        preprocessing=meta.get("preprocessing"),
        num_classes=meta["num_classes"],
        input_shape=meta["input_shape"],
        device=device,
    )


def _read(path: Path, kind: Kind) -> Any:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise CheckpointError(
            f"checkpoint {path} {what}; give the path of a file written by {kind.saver} "
            f"(e.g. from {_MAKE[kind.name][1]})"
        )
    _check_archive(path, kind)
    try:
        with warnings.catch_warnings():
            # torch warns about foreign pickles (e.g. "pickle protocol 4") before failing;
            # the error below says what is wrong, and the warning would only confuse
            warnings.filterwarnings("ignore", module=r"torch(\.|$)")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives
            raise CheckpointError(
                f"{path} is not a readable PyTorch file (not a torch.save archive); "
                f"give the path of a file written by {kind.saver}"
            ) from err
        raise CheckpointError(
            f"{path} holds pickled Python objects other than tensors, and was refused: "
            "unpickling an untrusted file can run arbitrary code, so brittle only loads "
            f"with torch.load(weights_only=True). If you trust the file, load it yourself, "
            f"then re-save the model's state_dict with brittle's {kind.saver}: {kind.convert}. "
            f"(pickle said: {str(err).splitlines()[0]})"
        ) from err
    except Exception as err:  # torch raises many types on a corrupt or foreign file
        raise CheckpointError(
            f"{path} is not a readable PyTorch file ({type(err).__name__}: {err}); "
            "it may be truncated or in another format"
        ) from err


def _check_archive(path: Path, kind: Kind) -> None:
    """Refuse a zip archive with compressed records before ``torch.load`` expands them.

    ``torch.save`` stores records uncompressed, so what loading allocates is bounded by the
    file's size; a compressed record (a zip bomb) could expand to a thousand times more.
    Files that are not zip archives are left to ``torch.load`` and the checks after it.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            packed = [
                i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED
            ]
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"{path} is not a readable PyTorch file ({err}); it may be truncated"
        ) from err
    if packed:
        raise CheckpointError(
            f"{path} holds compressed records ({', '.join(packed[:3])}), which torch.save never "
            "writes and which could expand to far more memory than the file's size; it was "
            f"refused. Give the path of a file written by {kind.saver}"
        )


def _parse_meta(payload: Any, path: str | Path, kind: Kind) -> dict[str, Any]:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if (
            isinstance(payload, dict)
            and payload
            and all(isinstance(v, Tensor) for v in payload.values())
        ):
            raise CheckpointError(
                f"{path} is a raw state_dict, not a brittle checkpoint: it has the weights but "
                f"not the architecture needed to rebuild the model. To convert it, {kind.convert}"
            )
        raise CheckpointError(
            f"{path} is not a brittle checkpoint (no 'format': {FORMAT!r} entry); {kind.convert}"
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} is a brittle checkpoint of version {payload.get('version')!r}; this "
            f"brittle ({__version__}) reads version {VERSION}. Use a matching brittle"
        )
    try:
        meta = json.loads(payload["meta_json"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: the checkpoint's metadata are missing or corrupt") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the checkpoint's metadata are corrupt (not a mapping)")
    if not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path}: the checkpoint has no state_dict")
    _check_kind(meta, path, kind)
    meta.setdefault("arch_kwargs", {})
    try:
        _check_meta(meta, kind)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from err
    return dict(meta)


def _check_kind(meta: Mapping[str, Any], path: str | Path, kind: Kind) -> None:
    """Refuse a checkpoint of another kind than ``kind``, saying what it is and how to load it
    (metadata without ``kind`` are a classifier's: files written before the field)."""
    found = meta.get("kind", CLASSIFIER.name)
    if found == kind.name:
        return
    if not isinstance(found, str) or found not in _MAKE:
        raise CheckpointError(
            f"{path}: the checkpoint's metadata name an unknown kind {found!r}; brittle "
            f"checkpoints hold a {' or a '.join(_MAKE)}"
        )
    loader, _ = _MAKE[found]
    _, make = _MAKE[kind.name]
    details = ", ".join(f"{key} {meta[key]!r}" for key in ("arch", "latent_dim") if key in meta)
    raise CheckpointError(
        f"{path} is a {found} checkpoint ({details}), not a {kind.name}: load it with "
        f"{loader}. To make a {kind.name}, run {make} (or save one with {kind.saver})"
    )


def _check_meta(meta: Mapping[str, Any], kind: Kind) -> None:
    """Refuse metadata that lack a field ``kind`` needs, hold a field of the wrong type
    (:data:`META_SCHEMA`: the error names the field, its value and what it must be), name an
    unknown architecture, or a per-channel preprocessing of another channel count."""
    missing = [key for key in kind.required if key not in meta]
    if missing:
        raise CheckpointError(
            f"checkpoint metadata lack {', '.join(missing)}; pass them in meta (a network "
            f"from {kind.builder} records them itself)"
        )
    for key, (expected, valid) in META_SCHEMA.items():
        if key in meta and not valid(meta[key]):
            value = meta[key]
            raise CheckpointError(
                f"checkpoint metadata field {key!r} is {reprlib.repr(value)} (a JSON "
                f"{_json_type(value)}) but must be {expected}"
            )
    channels = _channels(meta.get("preprocessing"))
    shape = meta.get("input_shape")
    if shape is not None and channels - {1, shape[0]}:
        raise CheckpointError(
            f"checkpoint metadata field 'preprocessing' is {reprlib.repr(meta['preprocessing'])} "
            f"but must give one number or one per channel: input_shape {list(shape)} has "
            f"{shape[0]} channel(s)"
        )
    if meta["arch"] not in kind.architectures:
        raise CheckpointError(
            f"unknown architecture {meta['arch']!r}; brittle {kind.name} checkpoints hold: "
            f"{', '.join(kind.architectures)}"
        )


def _json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages."""
    names = [(bool, "boolean"), (str, "string"), (int | float, "number"), (dict, "object")]
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "list"
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def _channels(preprocessing: Any) -> set[int]:
    """The lengths of the per-channel lists of a (valid) ``preprocessing``, 1 for a number."""
    if preprocessing is None:
        return set()
    pair = (
        preprocessing
        if isinstance(preprocessing, dict)
        else dict(zip(("mean", "std"), preprocessing, strict=True))
    )
    return {len(v) if isinstance(v, list | tuple) else 1 for v in pair.values()}


def _rebuild(meta: Mapping[str, Any], kind: Kind) -> nn.Module:
    try:
        return kind.build(meta)
    except (BrittleError, TypeError, OverflowError, RuntimeError) as err:
        reason = str(err).splitlines()[0]  # torch appends a C++ stack trace to some errors
        raise CheckpointError(
            f"cannot rebuild architecture {meta['arch']!r} from the checkpoint's metadata: {reason}"
        ) from err


def _architecture_tensors(meta: Mapping[str, Any], kind: Kind) -> dict[str, Tensor]:
    """Every tensor of the network ``meta`` describe, by name, built on the meta device
    (shape and dtype only): no memory is allocated and no weight initialised, whatever sizes
    ``meta`` name."""
    with torch.device("meta"):
        return dict(_rebuild(meta, kind).state_dict())


def _architecture_shapes(meta: Mapping[str, Any], kind: Kind) -> dict[str, tuple[int, ...]]:
    """Name and shape of every tensor of the network ``meta`` describe (see
    :func:`_architecture_tensors`)."""
    return {k: tuple(v.shape) for k, v in _architecture_tensors(meta, kind).items()}


def _shape_differences(
    shapes: Mapping[str, tuple[int, ...]], wanted: Mapping[str, tuple[int, ...]]
) -> list[tuple[str, tuple[int, ...]]]:
    """The first (name, shape) pairs found in only one of ``shapes`` and ``wanted``."""
    return sorted(set(shapes.items()) ^ set(wanted.items()))[:4]


def _check_state_dict(state: Mapping[str, Tensor], meta: Mapping[str, Any], kind: Kind) -> None:
    """Refuse to save weights that :func:`load_module` could not load back."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    diff = _shape_differences(shapes, _architecture_shapes(meta, kind))
    if diff:
        raise CheckpointError(
            f"the model's weights do not match architecture {meta['arch']!r} with "
            f"arch_kwargs={meta['arch_kwargs']} (differences, name and shape: {diff}); save a "
            f"model built with {kind.builder}, with meta naming how it was built"
        )


def _check_file_weights(
    state: Mapping[Any, Any], meta: Mapping[str, Any], path: str | Path, kind: Kind
) -> None:
    """Refuse, before building the network, weights that do not fit the file's metadata.

    Checked in order of cost, so a forged file fails fast: every entry is a tensor; the
    tensors claim no more bytes than their storages hold (:func:`_storage_bytes`: an
    ``expand()``-ed tensor claims millions of elements from one); the metadata name at most
    one layer size per tensor held (each size in a list such as ``hidden`` or ``channels`` is
    a layer with weights; a list of a million sizes would take long to build even on the meta
    device); the network they describe, built on the meta device, has no more weights than
    the file holds; its tensors match the file's, name by name and shape by shape; and each
    holds numbers of the network's kind (floating point, integer or boolean: a floating-point
    weight of another precision is cast to the network's, an integer one is refused).
    """
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise CheckpointError(
            f"{path}: the checkpoint's state_dict holds entries that are not named tensors; "
            f"give the path of a file written by {kind.saver}"
        )
    claimed, stored = _storage_bytes(state.values())
    if claimed > stored:
        raise CheckpointError(
            f"{path}: the checkpoint's tensors claim {claimed:,} bytes but the file holds "
            f"{stored:,} bytes of data (tensors expanded from fewer values, or overlapping), so "
            f"it was refused before loading them (the file is damaged or forged). {_resave(kind)}"
        )
    sizes = sum(len(v) for v in meta["arch_kwargs"].values() if isinstance(v, list))
    if sizes > len(state):
        raise CheckpointError(
            f"{path}: {_misfit(meta, kind)}: the metadata name {sizes:,} layer sizes but the "
            f"file holds {len(state)} tensors (the file is damaged or forged). {_resave(kind)}"
        )
    try:
        network = _architecture_tensors(meta, kind)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from err
    wanted = {k: tuple(v.shape) for k, v in network.items()}
    needed = sum(math.prod(shape) for shape in wanted.values())
    held = sum(v.numel() for v in state.values())
    if needed > held:
        raise CheckpointError(
            f"{path}: {_misfit(meta, kind)}: the metadata describe a network of {needed:,} "
            f"weights but the file holds {held:,}, so it was refused before building the "
            f"network (the file is damaged or forged). {_resave(kind)}"
        )
    diff = _shape_differences({k: tuple(v.shape) for k, v in state.items()}, wanted)
    if diff:
        raise CheckpointError(
            f"{path}: {_misfit(meta, kind)} (differences, name and shape: {diff}). {_resave(kind)}"
        )
    mixed = [k for k, v in state.items() if _number_kind(v.dtype) != _number_kind(network[k].dtype)]
    if mixed:
        name = mixed[0]
        raise CheckpointError(
            f"{path}: tensor {name!r} holds {state[name].dtype} values but the network's are "
            f"{network[name].dtype} ({len(mixed)} tensor(s) of another kind of number); brittle "
            "never casts weights between integer and floating point, which would load another "
            f"model without a word (the file is damaged or forged). {_resave(kind)}"
        )


def _storage_bytes(tensors: Iterable[Tensor]) -> tuple[int, int]:
    """The bytes ``tensors`` claim (elements times element size, each distinct view once)
    and the bytes their storages hold (each storage once). A file written from a genuine
    state_dict claims at most what it holds; a tensor ``expand()``-ed or strided over fewer
    values (stride 0) claims more."""
    storages: dict[int, int] = {}
    views: set[tuple[Any, ...]] = set()
    claimed = 0
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        view = (storage.data_ptr(), tensor.storage_offset(), tensor.shape, tensor.stride())
        if (view, tensor.dtype) not in views:
            views.add((view, tensor.dtype))
            claimed += tensor.numel() * tensor.element_size()
    return claimed, sum(storages.values())


def _number_kind(dtype: torch.dtype) -> str:
    """Which kind of number a dtype holds: boolean, complex, floating or integer."""
    if dtype == torch.bool:
        return "boolean"
    if dtype.is_complex:
        return "complex"
    return "floating" if dtype.is_floating_point else "integer"


def _misfit(meta: Mapping[str, Any], kind: Kind) -> str:
    """The start of every message about weights that do not fit ``meta`` (sizes shortened:
    a forged list of sizes may be long)."""
    fields = "".join(f", {key}={reprlib.repr(meta[key])}" for key in kind.fields)
    return (
        f"the saved weights do not fit architecture {meta['arch']!r} with "
        f"arch_kwargs={reprlib.repr(meta['arch_kwargs'])}{fields}"
    )


def _resave(kind: Kind) -> str:
    """The end of every message about weights that do not fit their metadata."""
    return f"Re-save the model with {kind.saver}, which records the arguments it was built with"


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value, default=repr))
