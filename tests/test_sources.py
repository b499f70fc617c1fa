"""brittle.data sources: every format built small in tmp_path, fetched by arbitrary ids.

Each test writes a file the way its users write it, then checks that ``fetch`` returns
exactly the pixels and labels written, for ids in any order (repeats included), that class
names are real only where the format has them, and that the content hash follows the
content: equal for equal content, different when one value differs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from brittle.data import (
    DATA_FORMATS,
    DataFormat,
    Limits,
    Source,
    TorchDatasetSource,
    load_dataset,
    open_source,
    register_format,
)
from brittle.data import folder as folder_module
from brittle.data.formats import Request
from brittle.errors import DataError

IDS = [3, 0, 5, 3, 1]
"""Out of order, with a repeat."""


def as_unit(values: np.ndarray, depth: int = 255) -> torch.Tensor:
    return torch.from_numpy(np.divide(values, depth, dtype=np.float32))


def assert_fetch(source: Source, images: torch.Tensor, labels: np.ndarray, ids: list[int]) -> None:
    """``source.fetch(ids)`` is exactly ``images[ids]`` (float32 NCHW) and ``labels[ids]``."""
    x, y = source.fetch(ids)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, images[ids])
    assert y.tolist() == [int(labels[i]) for i in ids]


# ------------------------------------------------------------------ npz
@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_fetches_exact_pixels_for_any_ids(tmp_path: Path, save: object) -> None:
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    labels = np.array([2, 0, 1, 2, 0, 1, 1], dtype=np.uint8)
    path = tmp_path / "set.npz"
    save(path, x=nhwc, y=labels)  # type: ignore[operator]
    source = open_source("npz", "test", path)
    assert len(source) == 7 and source.input_shape == (3, 5, 4) and source.kind == "npz"
    assert source.classes == ["0", "1", "2"] and not source.named_classes
    assert source.location == str(path) and source.name == "set"
    assert isinstance(source.images, np.memmap) == (save is np.savez)  # type: ignore[attr-defined]
    assert_fetch(source, as_unit(nhwc).permute(0, 3, 1, 2), labels, IDS)
    assert_fetch(source, as_unit(nhwc).permute(0, 3, 1, 2), labels, [])


def test_npz_floats_big_endian_fortran_order_and_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    floats = np.asfortranarray(rng.random((6, 4, 5)).astype(">f4"))
    whole = np.round(rng.random((6, 1, 4, 5)) * 255)  # whole floats 0..255 are bytes
    path = tmp_path / "set.npz"
    np.savez(path, x_train=floats, y_train=np.arange(6) % 2, x_test=whole, y_test=np.arange(6))
    train = open_source("npz", "train", path)
    assert_fetch(train, torch.from_numpy(floats.astype(np.float32))[:, None], np.arange(6) % 2, IDS)
    test = open_source("npz", "test", path)
    assert_fetch(test, as_unit(whole), np.arange(6), IDS)
    assert train.sha256 == test.sha256  # one file; the identities differ by split
    assert train.identity() != test.identity()


def test_npz_fingerprint_follows_the_file(tmp_path: Path) -> None:
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.savez(tmp_path / "a.npz", x=x, y=[0, 1])
    np.savez(tmp_path / "b.npz", x=x, y=[0, 1])
    x[1, 2, 2] += 1
    np.savez(tmp_path / "c.npz", x=x, y=[0, 1])
    a, b, c = (open_source("npz", "test", tmp_path / f"{n}.npz").sha256 for n in "abc")
    assert a == b != c


# ------------------------------------------------------------------ folders
def save_image(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)


def test_folder_gray_16_bit_and_hidden_entries(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    eight = rng.integers(0, 256, (2, 6, 5), dtype=np.uint8)
    deep = rng.integers(0, 65536, (2, 6, 5), dtype=np.uint16)
    deep[0, 0, 0] = 65535  # a 16-bit image is scaled by 65535, never clipped at 255
    for i in range(2):
        save_image(tmp_path / "cat" / f"{i}.png", eight[i])
        save_image(tmp_path / "dog" / f"{i}.png", deep[i])
    save_image(tmp_path / ".thumbs" / "0.png", eight[0])  # a hidden folder: not a class
    save_image(tmp_path / "cat" / ".hidden.png", eight[0])  # hidden files: skipped
    save_image(tmp_path / "dog" / "._0.png", eight[0])
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    source = open_source("folder", "train", tmp_path)
    assert source.classes == ["cat", "dog"] and source.named_classes and len(source) == 4
    assert source.input_shape == (1, 6, 5) and source.kind == "folder"
    images = torch.cat([as_unit(eight), as_unit(deep, 65535)])[:, None]
    assert_fetch(source, images, np.array([0, 0, 1, 1]), [3, 0, 2, 3])
    assert int((source.fetch([2, 3])[0] == 1.0).sum()) == 1  # only 65535 is 1: none saturated


def test_folder_mixed_modes_become_rgb_with_16_bit_gray_replicated(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (2, 4, 7, 3), dtype=np.uint8)
    deep = rng.integers(0, 65536, (4, 7), dtype=np.uint16)
    for i in range(2):
        save_image(tmp_path / "test" / "a" / f"{i}.bmp", rgb[i])
    save_image(tmp_path / "test" / "b" / "0.png", deep)
    save_image(tmp_path / "train" / "a" / "0.png", rgb[0])
    source = open_source("folder", "test", tmp_path)
    assert source.input_shape == (3, 4, 7) and source.split == "test"
    images = torch.cat([as_unit(rgb).permute(0, 3, 1, 2), as_unit(deep, 65535).expand(1, 3, 4, 7)])
    assert_fetch(source, images, np.array([0, 0, 1]), [2, 0, 1, 2])


def test_folder_reads_headers_when_opened_and_decodes_only_what_is_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(6):
        save_image(tmp_path / str(i % 2) / f"{i}.png", np.full((3, 3), i, np.uint8))
    decoded: list[Path] = []
    real = folder_module._decode
    monkeypatch.setattr(
        folder_module, "_decode", lambda path, *a: decoded.append(path) or real(path, *a)
    )
    source = open_source("folder", "train", tmp_path)
    assert decoded == [] and source.sha256  # hashing does not decode either
    x, _ = source.fetch([4, 1])
    assert len(decoded) == 2 and x.flatten(1)[:, 0].tolist() == [
        np.float32(3 / 255),
        np.float32(2 / 255),
    ]


def test_folder_fingerprint_covers_paths_labels_and_bytes(tmp_path: Path) -> None:
    def build(root: Path, value: int = 7, first: str = "a") -> str:
        save_image(root / first / "0.png", np.full((2, 2), value, np.uint8))
        save_image(root / "b" / "1.png", np.zeros((2, 2), np.uint8))
        return open_source("folder", "train", root).sha256

    same = build(tmp_path / "one"), build(tmp_path / "two")
    assert same[0] == same[1]
    assert build(tmp_path / "three", value=8) != same[0]
    assert build(tmp_path / "four", first="c") != same[0]  # a class renamed: labels move


# ------------------------------------------------------------------ CIFAR-10 binary
def write_cifar(
    folder: Path, counts: dict[str, int], seed: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Batches of random records; returns the images (N, 3, 32, 32) and labels in order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = [], []
    for name, n in counts.items():
        records = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        records[:, 0] %= 10
        (folder / name).write_bytes(records.tobytes())
        images.append(records[:, 1:].reshape(n, 3, 32, 32))
        labels.append(records[:, 0])
    return np.concatenate(images), np.concatenate(labels)


TRAIN_BATCHES = {f"data_batch_{k}.bin": k for k in range(1, 6)}  # 1 to 5 records


def test_cifar10_binary_batches_across_files_with_meta_names(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    images, labels = write_cifar(folder, TRAIN_BATCHES)
    test_images, test_labels = write_cifar(folder, {"test_batch.bin": 4}, seed=5)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    (folder / "batches.meta.txt").write_text("\n".join([*names, "truck"]) + "\n\n")
    train = open_source("cifar10", "train", tmp_path)  # finds the release's sub-folder
    assert len(train) == 15 and train.input_shape == (3, 32, 32) and train.kind == "cifar10"
    assert train.classes == [*names, "truck"] and train.named_classes
    assert_fetch(train, as_unit(images), labels, [14, 0, 6, 1, 14, 9, 3])
    test = open_source("cifar10", "test", folder)
    assert_fetch(test, as_unit(test_images), test_labels, [3, 1, 1])
    assert train.sha256 != test.sha256
    assert torch.equal(load_dataset("cifar10", "test", folder).x, as_unit(test_images))


def test_cifar10_without_meta_has_unnamed_digits_and_refuses_damaged_batches(
    tmp_path: Path,
) -> None:
    write_cifar(tmp_path, {"test_batch.bin": 3})
    source = open_source("cifar10", "test", tmp_path)
    assert source.classes == [str(k) for k in range(10)] and not source.named_classes
    with pytest.raises(DataError, match=r"data_batch_1\.bin is missing"):
        open_source("cifar10", "train", tmp_path)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"test_batch\.bin is not a CIFAR-10 binary batch"):
        open_source("cifar10", "test", tmp_path)
    record = bytes([10]) + bytes(3072)  # label 10: CIFAR-10 has ten classes
    path.write_bytes(record)
    with pytest.raises(DataError, match=r"test_batch\.bin holds label 10 .* 10 classes"):
        open_source("cifar10", "test", tmp_path)


# ------------------------------------------------------------------ SVHN
def test_svhn_mat_file_with_label_10_for_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    hwcn = rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [9], [10], [3]], dtype=np.uint8)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": hwcn, "y": y})
    source = open_source("svhn", "test", tmp_path)
    assert source.input_shape == (3, 32, 32) and source.kind == "svhn"
    assert source.classes == [str(d) for d in range(10)] and source.named_classes
    images = as_unit(hwcn).permute(3, 2, 0, 1)
    assert_fetch(source, images, np.array([0, 1, 9, 0, 3]), [4, 0, 2, 0, 1])
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": hwcn, "y": y * 0})
    with pytest.raises(DataError, match=r"\['y'\] holds label 0 at index 0.*1\.\.10"):
        open_source("svhn", "test", tmp_path)


# ------------------------------------------------------------------ PyTorch datasets
FACTORY = """
import torch
from torch.utils.data import Dataset


class Shapes(Dataset):
    classes = ["circle", "square", "star"]

    def __init__(self, split):
        generator = torch.Generator().manual_seed(0 if split == "train" else 1)
        self.x = torch.rand(6, 2, 3, 3, generator=generator)
        self.y = torch.arange(6) % 3

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def make(split):
    return Shapes(split)
"""


def test_python_factory_from_a_file_or_a_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shapes_data.py").write_text(FACTORY)
    source = open_source(f"python:{tmp_path / 'shapes_data.py'}:make", "test", None)
    assert source.kind == "python" and source.name == "make"
    assert source.classes == ["circle", "square", "star"] and source.named_classes
    expected = torch.rand(6, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    assert_fetch(source, expected, np.arange(6) % 3, IDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = open_source("python:shapes_data:make", "test", None)
    assert by_module.sha256 == source.sha256
    assert open_source("python:shapes_data:make", "train", None).sha256 != source.sha256
    with pytest.raises(DataError, match="has no callable 'nothing'"):
        open_source("python:shapes_data:nothing", "test", None)
    with pytest.raises(DataError, match="needs an argument"):
        open_source("python", "test", None)


def test_tensor_dataset_and_dataloader(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (9, 1, 4, 4), dtype=np.uint8)
    labels = torch.tensor([0, 3, 1, 1, 0, 2, 3, 3, 0])
    dataset = TensorDataset(torch.from_numpy(pixels), labels)
    source = TorchDatasetSource(dataset, name="mine")
    assert source.classes == ["0", "1", "2", "3"] and not source.named_classes
    assert source.input_shape == (1, 4, 4) and len(source) == 9
    assert_fetch(source, as_unit(pixels), labels.numpy(), [8, 2, 0, 2])
    loader = DataLoader(dataset, batch_size=4, shuffle=True)
    named = TorchDatasetSource(loader, classes=["a", "b", "c", "d"], name="mine")
    assert named.sha256 == source.sha256 and named.named_classes
    changed = pixels.copy()
    changed[5, 0, 1, 1] ^= 1
    other = TorchDatasetSource(TensorDataset(torch.from_numpy(changed), labels))
    assert other.sha256 != source.sha256


def test_torch_dataset_refusals() -> None:
    class Stream(IterableDataset):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield torch.zeros(2), 0

    with pytest.raises(DataError, match="IterableDataset, which cannot be read by sample id"):
        TorchDatasetSource(DataLoader(Stream()))

    class Normalised(Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return torch.full((3,), -0.5), i

    with pytest.raises(DataError, match=r"dataset\[0\]'s input holds values outside \[0, 1\]"):
        TorchDatasetSource(Normalised())
    x = torch.zeros(3, 2)
    with pytest.raises(DataError, match=r"label 2 .* names 2 classes"):
        TorchDatasetSource(TensorDataset(x, torch.tensor([0, 1, 2])), classes=["a", "b"])
    with pytest.raises(DataError, match=r"dataset\[0\]'s label is a float32"):
        TorchDatasetSource(TensorDataset(x, torch.tensor([0.0, 1.5, 1.0])))


# ------------------------------------------------------------------ the registry
def test_bundled_sets_are_sources_with_real_digit_names() -> None:
    source = open_source("digits", "test", None)
    assert len(source) == 360 and source.named_classes and source.classes[9] == "9"
    assert source.kind == "digits" and len(source.sha256) == 64


def test_a_registered_format_is_opened_by_name(tmp_path: Path) -> None:
    def open_flat(request: Request) -> Source:
        assert request.data_dir is not None
        values = np.load(request.data_dir)
        return TorchDatasetSource(TensorDataset(torch.from_numpy(values), torch.zeros(2).long()))

    np.save(tmp_path / "flat.npy", np.full((2, 5), 0.25, np.float32))
    register_format(DataFormat("flat-npy", open_flat, "the .npy file", needs_data_dir=True))
    try:
        source = open_source("Flat-NPY", "test", tmp_path / "flat.npy")
        assert source.input_shape == (5,) and float(source.fetch([1])[0].sum()) == 1.25
        with pytest.raises(DataError, match="needs data_dir"):
            open_source("flat-npy", "test", None)
        with pytest.raises(ValueError, match="already registered"):
            register_format(DataFormat("flat-npy", open_flat, "the .npy file"))
    finally:
        del DATA_FORMATS["flat-npy"]


def test_open_source_refusals(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'imagenet'.*cifar10.*svhn.*python:"):
        open_source("imagenet", "test", None)
    with pytest.raises(DataError, match="unknown split 'val'"):
        open_source("digits", "val", None)
    with pytest.raises(DataError, match="takes no ':' argument"):
        open_source("npz:x", "test", tmp_path)
    with pytest.raises(DataError, match=r"ids \[9\] are outside the 2 samples"):
        np.savez(tmp_path / "s.npz", x=np.zeros((2, 3, 3), np.uint8), y=[0, 1])
        open_source("npz", "test", tmp_path / "s.npz").fetch([0, 9])
    assert Limits().max_classes == 100_000
