"""Data sets as tensors in [0, 1]: MNIST, Fashion-MNIST, bundled fallbacks, .npz, folders,
CIFAR-10, SVHN and PyTorch datasets, streamed as sources or loaded whole."""

from brittle.data.dataset import SPLITS, Dataset
from brittle.data.formats import DATA_FORMATS, DataFormat, open_source, register_format
from brittle.data.limits import Limits
from brittle.data.load import DATASET_NAMES, load_dataset, resolve_dataset_name
from brittle.data.source import Source, TensorSource
from brittle.data.torch_source import TorchDatasetSource

__all__ = [
    "DATASET_NAMES",
    "DATA_FORMATS",
    "SPLITS",
    "DataFormat",
    "Dataset",
    "Limits",
    "Source",
    "TensorSource",
    "TorchDatasetSource",
    "load_dataset",
    "open_source",
    "register_format",
    "resolve_dataset_name",
]
