"""Networks built by your own Python code: ``path/to/file.py:factory`` or
``package.module:factory``, with their weights in a ``state_dict`` file.

**Loading one runs that code**: the file (or module) is imported with :mod:`importlib` and the
factory, a function returning an ``nn.Module`` or an ``nn.Module`` class, is called without
arguments. Give only code you trust, and keep a script's own work (training, argument parsing)
under ``if __name__ == "__main__":``. A file's folder comes first on ``sys.path`` while it
runs, so it can import its neighbours; a module is looked for in the current folder first,
then in the installed packages (as ``python -m`` does).

The weights are a ``state_dict``: a ``.safetensors`` file (``safetensors.torch.load_file``) or
a ``torch.save`` file read with ``torch.load(weights_only=True)``, which never unpickles code.
Names and shapes must match the network's exactly; a mismatch is one error listing a few.
Without weights the network is used as the factory returns it (``meta["weights"]`` is
``None``).

The model's identity (``sha256``) covers the factory's name, the bytes of its source file
(when it is a ``.py`` file) and of the weights file; files the source imports are not in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import Tensor, nn

from brittle.errors import CheckpointError, InputError
from brittle.loading.formats.base import (
    LoadedModel,
    ModelFile,
    ModelFormat,
    ModelRequest,
    check_input_shape,
    digest,
    finish,
    is_state_dict,
    load_tensors,
    looks_like_safetensors,
    probe_classifier,
)
from brittle.zoo.checkpoint import FORMAT

_SPEC = re.compile(r"(?P<source>.+):(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_SHOWN = 4
"""How many names an error lists."""


def recognise(request: ModelRequest, file: ModelFile | None) -> bool:
    """``file.py:factory`` or ``package.module:factory`` naming no existing file, or a ``.py``
    file (refused by :func:`load`: the factory must be named)."""
    spec = request.spec
    if spec.endswith(".py"):
        return True
    found = _SPEC.fullmatch(spec)
    return (
        file is None
        and found is not None
        and (found["source"].endswith(".py") or _MODULE.fullmatch(found["source"]) is not None)
    )


def load(request: ModelRequest, file: ModelFile | None) -> LoadedModel:
    """Run the factory, load the weights into its network, and wrap it as a Classifier."""
    spec = request.spec
    if spec.endswith(".py"):
        raise InputError(
            f"{spec} is Python code: name the function or class in it that builds the "
            f"network, as {spec}:factory (it is called without arguments)"
        )
    source, _, name = spec.rpartition(":")
    label = f"{spec} (your Python factory)"
    if source.endswith(".py"):
        module = _import_file(Path(source))
        identity = name.encode()
    else:
        module = _import_module(source, name)
        identity = spec.encode()
    network = _call(_attribute(module, source, name), spec)
    code = _source_bytes(module)
    weights = b""
    if request.weights is not None:
        _load_weights(network, request.weights, label)
        with request.weights.open("rb") as f:
            weights = hashlib.file_digest(f, "sha256").digest()
    shape = check_input_shape(request, label)
    classifier = probe_classifier(network, request, shape, label)
    meta = {
        "format": "python",
        "path": spec,
        "sha256": digest(b"brittle python factory", identity, code, weights),
        "weights": None if request.weights is None else str(request.weights),
        "network": type(network).__name__,
    }
    return finish(classifier, request, meta, label)


@contextlib.contextmanager
def _first_on_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` inside (removed after, unless it was there before)."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _failure(err: BaseException) -> str:
    """An exception raised by the user's code, in one line."""
    first = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _import_file(path: Path) -> ModuleType:
    """Run the file at ``path`` as a module (named after it, under a private prefix so that it
    cannot replace an installed module)."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise InputError(f"{path} {what}; give the Python file that defines the network")
    name = "_brittle_model_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look their module up there
    try:
        with _first_on_path(path.parent.resolve()):
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:  # the user's code may raise anything, or exit
        sys.modules.pop(name, None)
        raise CheckpointError(
            f"running {path} failed ({_failure(err)}); it must define the network without "
            'doing other work at import (keep scripts under if __name__ == "__main__":)'
        ) from err
    return module


def _import_module(source: str, name: str) -> ModuleType:
    """Import the module ``source``, looking in the current folder first."""
    try:
        with _first_on_path(Path.cwd()):
            return importlib.import_module(source)
    except ModuleNotFoundError as err:
        if err.name is None or not (source + ".").startswith(err.name + "."):
            raise CheckpointError(f"importing {source} failed ({_failure(err)})") from err
        last = source.rpartition(".")[2]
        raise InputError(
            f"no module named {source!r} (looked in the current folder and the installed "
            f"packages); give the file instead: path/to/{last}.py:{name}"
        ) from err
    except (Exception, SystemExit) as err:  # the user's code may raise anything, or exit
        raise CheckpointError(f"importing {source} failed ({_failure(err)})") from err


def _attribute(module: ModuleType, source: str, name: str) -> Any:
    """The factory ``name`` (dotted for a class attribute) defined in ``module``."""
    found: Any = module
    for part in name.split("."):
        if not hasattr(found, part):
            defined = [
                key
                for key, value in vars(module).items()
                if callable(value)
                and not key.startswith("_")
                and getattr(value, "__module__", None) == module.__name__
            ]
            raise InputError(
                f"{source} has no {name!r}; it defines "
                f"{', '.join(defined) or 'no functions or classes'}"
            )
        found = getattr(found, part)
    if not callable(found):
        raise InputError(
            f"{source}:{name} is a {type(found).__name__}; give a function that returns the "
            "network, or its nn.Module class"
        )
    return found


def _call(factory: Any, spec: str) -> nn.Module:
    """The network the factory returns, called without arguments."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some callables (builtins) have no signature
        signature = None
    if signature is not None:
        try:
            signature.bind()
        except TypeError:
            raise InputError(
                f"{spec} needs arguments {signature}; brittle calls it without any: write a "
                "function that builds the network with them, and give that"
            ) from None
    try:
        network = factory()
    except (Exception, SystemExit) as err:  # the user's code may raise anything, or exit
        raise CheckpointError(f"{spec}() raised {_failure(err)}") from err
    if not isinstance(network, nn.Module):
        raise InputError(
            f"{spec}() returned a {type(network).__name__}, not a torch.nn.Module; give a "
            "factory that returns the network"
        )
    return network


def _source_bytes(module: ModuleType) -> bytes:
    """The bytes of the module's source file, when it is a ``.py`` file."""
    path = getattr(module, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return b""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read {path} to identify the model: {err}") from err


def _load_weights(network: nn.Module, path: Path, label: str) -> None:
    """Fill ``network`` with the ``state_dict`` at ``path``, whose names and shapes must be
    the network's."""
    state = _read_state(path)
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the network"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    retyped = [
        f"{k} {state[k].dtype} in the file, {own[k].dtype} in the network"
        for k in own
        if k in state and state[k].is_floating_point() != own[k].is_floating_point()
    ]
    problems = [
        f"{len(names)} {what} ({', '.join(names[:_SHOWN])}{', ...' if len(names) > _SHOWN else ''})"
        for names, what in (
            (missing, "missing from the file"),
            (unexpected, "unexpected"),
            (reshaped, "of another shape"),
            (retyped, "of another kind of number (loading would convert them)"),
        )
        if names
    ]
    if problems:
        wrapped = unexpected and all(k.startswith("module.") for k in unexpected)
        hint = (
            " The file's names start with 'module.' (saved from DataParallel): save "
            "model.module.state_dict() instead."
            if wrapped
            else ""
        )
        raise CheckpointError(
            f"the weights in {path} do not fit the network {label} builds: "
            f"{'; '.join(problems)}.{hint} Give the state_dict saved from this network"
        )
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"the weights in {path} do not fit the network {label} builds: "
            f"{str(err).splitlines()[0]}"
        ) from err


def _read_state(path: Path) -> dict[str, Tensor]:
    """The ``state_dict`` in a ``.safetensors`` or ``torch.save`` file."""
    file = ModelFile.read(path)
    if looks_like_safetensors(file):
        import safetensors.torch

        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({_failure(err)})"
            ) from err
    if file.records is None and not file.head.startswith(b"\x80"):
        raise InputError(
            f"weights {path} are neither a state_dict saved with torch.save nor a .safetensors "
            "file; brittle reads weights in those two formats"
        )
    payload = load_tensors(path, "a state_dict")
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        raise InputError(
            f"{path} is a brittle checkpoint, which records its network: give it as --model "
            f"{path}, without --weights"
        )
    if not is_state_dict(payload):
        kind = (
            f"a dict with keys {', '.join(map(repr, list(payload)[:_SHOWN]))}"
            if isinstance(payload, dict)
            else f"a {type(payload).__name__}"
        )
        raise InputError(
            f"weights {path} hold {kind}, not a state_dict (names to tensors); save "
            "model.state_dict() alone"
        )
    return dict(payload)


PYTHON_FACTORY = ModelFormat(
    name="python",
    accepts=(
        "file.py:factory or package.module:factory (runs your code to build the network), "
        "with --weights a state_dict .pt or .safetensors"
    ),
    recognise=recognise,
    load=load,
)
