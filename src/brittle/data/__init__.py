"""Data sets as tensors in [0, 1]: MNIST, Fashion-MNIST, bundled fallbacks, .npz and folders."""

from brittle.data.dataset import Dataset
from brittle.data.load import DATASET_NAMES, SPLITS, load_dataset, resolve_dataset_name

__all__ = ["DATASET_NAMES", "SPLITS", "Dataset", "load_dataset", "resolve_dataset_name"]
