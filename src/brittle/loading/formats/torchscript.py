"""TorchScript (``torch.jit.save`` of a scripted or traced model).

``torch.jit.load`` rebuilds the network from its TorchScript code and tensors, without
unpickling Python objects. TorchScript records no input shape: the caller gives it (the
command line takes it from the data), and one forward pass on zeros gives the number of
classes.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import torch

from brittle.loading.formats.base import (
    LoadedModel,
    ModelFile,
    ModelFormat,
    ModelRequest,
    check_input_shape,
    finish,
    no_weights,
    probe_classifier,
    unreadable,
)


def recognise(request: ModelRequest, file: ModelFile | None) -> bool:
    """An archive with TorchScript code (``code/``) and its constants (``constants.pkl``)."""
    return file is not None and file.has("constants.pkl") and file.has("code/")


def load(request: ModelRequest, file: ModelFile | None) -> LoadedModel:
    """The TorchScript module at ``file`` as a :class:`~brittle.Classifier`, in eval mode."""
    assert file is not None
    label = f"{file.path} (TorchScript)"
    no_weights(request, label)
    file.check_stored("TorchScript", code=True)
    data = file.content()
    try:
        with warnings.catch_warnings():
            # torch 2.10+ deprecates TorchScript; users' files still are, and load the same
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module = torch.jit.load(io.BytesIO(data), map_location=request.device)
    except Exception as err:  # the TorchScript reader raises RuntimeError and its own types
        raise unreadable(
            label,
            "torch.jit.load",
            err,
            "it may be truncated or saved by a newer torch: save it again with torch.jit.save",
        ) from err
    shape = check_input_shape(request, label)
    classifier = probe_classifier(module, request, shape, label)
    meta = {
        "format": "torchscript",
        "path": str(file.path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "network": module.original_name,
    }
    return finish(classifier, request, meta, label)


TORCHSCRIPT = ModelFormat(
    name="torchscript",
    accepts="TorchScript (torch.jit.save of a scripted or traced model)",
    recognise=recognise,
    load=load,
)
