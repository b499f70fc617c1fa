"""One small colour CNN saved every way PyTorch users save models, for the loader and CLI tests.

:func:`save_all_formats` writes a user's ``mynet.py`` (a ``MyNet`` class and a
``load_trained`` factory: a normalisation layer inside, convolution, batchnorm with non-trivial
running statistics, dropout) into a folder, builds the network from that file and saves it as
TorchScript (scripted and traced), ``torch.export`` programs (dynamic and fixed batch), a
``state_dict`` (``.pt`` and ``.safetensors``), ONNX (dynamic and fixed batch), a whole
pickled model, and random bytes. The network returned is the one saved, in eval mode: every
loaded form must compute what it computes.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

INPUT_SHAPE = (3, 8, 8)
CLASSES = ["cat", "dog", "ship", "frog"]
EXAMPLE_BATCH = 2
"""The batch size of the fixed-batch exports."""

MYNET_SOURCE = '''\
"""A user's CNN for 3x8x8 colour images, normalising its own inputs."""

from pathlib import Path

import torch
from torch import nn


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class MyNet(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.normalize = Normalize([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6 * 4 * 4, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(self.normalize(x))))
        x = nn.functional.max_pool2d(x, 2)
        return self.fc(self.drop(x.flatten(1)))


def load_trained():
    net = MyNet()
    state = torch.load(Path(__file__).with_name("mynet_state.pt"), weights_only=True)
    net.load_state_dict(state)
    return net
'''


@dataclass(frozen=True)
class ModelFiles:
    """The saved network (``module``, eval mode) and its files by form; ``skipped`` says why a
    form could not be written here (a package that is not installed)."""

    module: nn.Module
    folder: Path
    paths: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def source(self) -> Path:
        """The user's ``mynet.py``."""
        return self.paths["python"]


def import_file(path: Path, name: str) -> object:
    """Import ``path`` as the module ``name`` (registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def colour_images(n: int, seed: int = 0) -> Tensor:
    """``n`` random 3x8x8 images in [0, 1]."""
    return torch.rand(n, *INPUT_SHAPE, generator=torch.Generator().manual_seed(seed))


def build_network(folder: Path, seed: int = 0) -> nn.Module:
    """Write ``mynet.py`` into ``folder`` and build its ``MyNet`` with seeded weights and
    batchnorm statistics that differ from the defaults (so eval and training modes differ)."""
    source = folder / "mynet.py"
    source.write_text(MYNET_SOURCE)
    module = import_file(source, "model_files_mynet")
    torch.manual_seed(seed)
    net: nn.Module = module.MyNet()  # type: ignore[attr-defined]
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
    return net.eval()


def save_all_formats(folder: Path, seed: int = 0) -> ModelFiles:
    """Save one network every way into ``folder`` (see the module docstring)."""
    net = build_network(folder, seed)
    files = ModelFiles(module=net, folder=folder)
    paths = files.paths
    example = colour_images(EXAMPLE_BATCH, seed)
    paths["python"] = folder / "mynet.py"
    paths["state_dict"] = folder / "mynet_state.pt"
    torch.save(net.state_dict(), paths["state_dict"])
    try:
        import safetensors.torch

        paths["safetensors"] = folder / "mynet.safetensors"
        safetensors.torch.save_file(net.state_dict(), paths["safetensors"])
    except ImportError as err:
        files.skipped["safetensors"] = f"safetensors is not installed ({err})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing and export warn about their own limits
        paths["scripted"] = folder / "scripted.pt"
        torch.jit.save(torch.jit.script(net), paths["scripted"])
        paths["traced"] = folder / "traced.pt"
        torch.jit.save(torch.jit.trace(net, example), paths["traced"])
        batch = torch.export.Dim("batch", min=1)
        paths["exported"] = folder / "exported.pt2"
        dynamic = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(dynamic, paths["exported"])
        paths["exported_fixed_batch"] = folder / "exported_fixed.pt2"
        torch.export.save(torch.export.export(net, (example,)), paths["exported_fixed_batch"])
        _save_onnx(files, example)
    paths["whole_pickle"] = folder / "whole.pt"
    torch.save(net, paths["whole_pickle"])
    paths["random"] = folder / "random.bin"
    paths["random"].write_bytes(np.random.default_rng(seed).bytes(4096))
    paths["classes"] = folder / "classes.txt"
    paths["classes"].write_text("\n".join(CLASSES) + "\n")
    return files


def _save_onnx(files: ModelFiles, example: Tensor) -> None:
    """ONNX with a dynamic batch and with the example's fixed batch (torch's TorchScript-based
    exporter, ``dynamo=False``: the newer one needs onnxscript, which brittle does not use)."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as err:
        files.skipped["onnx"] = f"exporting ONNX needs the onnx package ({err})"
        return
    for name, axes in (("onnx", {"x": {0: "batch"}}), ("onnx_fixed_batch", None)):
        path = files.folder / f"{name}.onnx"
        torch.onnx.export(
            files.module,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes=axes,
            dynamo=False,
        )
        files.paths[name] = path
