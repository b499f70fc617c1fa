"""Models as users keep them: :func:`load_model` opens a brittle checkpoint, a checkpoint
with its factory, TorchScript, ``torch.export`` or ONNX file, one small module per format in
:mod:`brittle.loading.formats`."""

from .loaders import LoadedModel, load_model

__all__ = ["LoadedModel", "load_model"]
