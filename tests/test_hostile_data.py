"""Hostile data files (issue 23): each is built here, small, and must be refused with one
clear DataError before anything large is allocated or decoded.

The bombs are real: a deflate stream of zeros is built from one compressed MiB repeated
(after a full flush the compressor starts afresh, so every MiB compresses to the same
bytes), which makes a file of a few MB that inflates to gigabytes without the test ever
holding them. ``tracemalloc`` (numpy reports its buffers to it) bounds what opening the file
allocated, and a counter on zlib (zip members and gzip files are both inflated by
``zlib.decompressobj``) bounds what it inflated: a bomb must be refused from its headers, or
cut off where they say the data end, never inflated and thrown away.
"""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from brittle.data import Limits, TorchDatasetSource, load_dataset, open_source
from brittle.data.idx import read_idx
from brittle.errors import DataError

MIB = 1 << 20
GB3 = 3_000_000_000
SMALL_ALLOCATION = 64 * MIB
"""More than any refusal below may allocate, or inflate (the bombs would take gigabytes)."""


class Inflation:
    """Stands for ``zlib.decompressobj`` and counts the bytes its decompressors put out."""

    def __init__(self) -> None:
        self.real = zlib.decompressobj
        self.bytes = 0

    def __call__(self, *args: Any, **kwargs: Any) -> _CountingDecompressor:
        return _CountingDecompressor(self, self.real(*args, **kwargs))


class _CountingDecompressor:
    """A zlib decompressor whose output is counted by its :class:`Inflation`."""

    def __init__(self, counter: Inflation, inner: Any) -> None:
        self.counter, self.inner = counter, inner

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out: bytes = self.inner.decompress(data, max_length)
        self.counter.bytes += len(out)
        return out

    def flush(self, *args: int) -> bytes:
        out: bytes = self.inner.flush(*args)
        self.counter.bytes += len(out)
        return out

    def __getattr__(self, name: str) -> Any:  # eof, unused_data, unconsumed_tail, copy
        return getattr(self.inner, name)


INFLATION = Inflation()
"""The counter every test of this module inflates through (:func:`count_inflation`)."""


@pytest.fixture(autouse=True)
def count_inflation(monkeypatch: pytest.MonkeyPatch) -> None:
    """zipfile and gzip look ``zlib.decompressobj`` up when they open a member: count it,
    from 0 in each test."""
    INFLATION.bytes = 0
    monkeypatch.setattr(zlib, "decompressobj", INFLATION)


def deflate_zeros(prefix: bytes, zeros: int) -> bytes:
    """A raw deflate stream of ``prefix`` followed by ``zeros`` zero bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == again  # after a full flush, every MiB of zeros is written the same way
    blocks, rest = divmod(zeros, MIB)
    tail = compressor.compress(bytes(rest)) + compressor.flush()
    return head + block * blocks + tail


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    """The header of a ``.npy`` file claiming ``shape`` (no values)."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def write_zip(path: Path, members: list[tuple[str, bool, bytes, int, int]]) -> Path:
    """A zip file of ``(name, deflated, data, claimed_size, crc)`` members, written by hand
    so that a member may claim any decompressed size."""
    out, central = bytearray(), bytearray()
    for name, deflated, data, size, crc in members:
        encoded, method = name.encode(), 8 if deflated else 0
        offset = len(out)
        out += struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            0,
            method,
            0,
            0,
            crc,
            len(data),
            size,
            len(encoded),
            0,
        )
        out += encoded + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            *(b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, len(data), size, len(encoded)),
            *(0, 0, 0, 0, 0, offset),
        )
        central += encoded
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0
    )
    path.write_bytes(bytes(out + central + end))
    return path


def with_labels(path: Path, x_data: bytes, deflated: bool, claim: int, crc: int) -> Path:
    """An npz of a hostile ``x`` member and two honest labels."""
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(2, np.uint8))
    labels = buffer.getvalue()
    members = [("x.npy", deflated, x_data, claim, crc)]
    members.append(("y.npy", False, labels, len(labels), zlib.crc32(labels)))
    return write_zip(path, members)


def stored(path: Path, data: bytes) -> Path:
    return with_labels(path, data, False, len(data), zlib.crc32(data))


def bomb(path: Path, shape: tuple[int, ...], claim: int) -> Path:
    """An npz whose ``x`` inflates to 3 GB: a ``.npy`` header claiming ``shape``, then zeros;
    its zip entry claims ``claim`` bytes, with the checksum of that many (a careful forger's
    bomb: the claim is consistent)."""
    header = npy_header(shape)
    stream = deflate_zeros(header, GB3)
    assert len(stream) < 4 * MIB  # a small file...
    crc = zlib.crc32(header + bytes(claim - len(header))) if claim < MIB else 0
    return with_labels(path, stream, True, claim, crc)


@pytest.fixture
def allocation() -> Iterator[Callable[[], int]]:
    """The peak of what was allocated (tracked by tracemalloc) since the test began."""
    tracemalloc.start()
    yield lambda: tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()


def refused(action: Callable[[], Any], *words: str, absent: tuple[str, ...] = ()) -> str:
    """Run ``action``; it must raise one DataError holding every word and none of ``absent``,
    having inflated less than :data:`SMALL_ALLOCATION` (refused from headers)."""
    before = INFLATION.bytes
    with pytest.raises(DataError) as info:
        action()
    message = str(info.value)
    assert all(word in message for word in words), message
    assert not any(word in message for word in absent), message
    assert INFLATION.bytes - before < SMALL_ALLOCATION, "inflated before refusing"
    return message


def names_the_limit(message: str, field: str) -> None:
    option = "--" + field.replace("_", "-")
    assert f"{field}=" in message and option in message and f"Limits({field}=...)" in message


# ------------------------------------------------------------------ npz
@pytest.mark.parametrize(
    ("zip_claim", "npy_shape", "field"),
    [
        (GB3 + 128, (GB3,), "max_bytes"),  # honest headers: 3 GB of zeros
        (1000, (GB3,), "max_bytes"),  # the zip entry lies, the array header does not
        (GB3 + 128, (100,), "max_bytes"),  # the array header lies, the zip entry does not
    ],
)
def test_npz_zip_bomb_is_refused_from_its_claims(
    tmp_path: Path, allocation: Callable[[], int], zip_claim: int, npy_shape: tuple[int], field: str
) -> None:
    path = bomb(tmp_path / "bomb.npz", npy_shape, zip_claim)
    message = refused(lambda: open_source("npz", "train", path), "bomb.npz['x']", "bytes")
    names_the_limit(message, field)
    assert allocation() < SMALL_ALLOCATION


def test_npz_bomb_under_small_claims_is_cut_off_where_the_claims_end(
    tmp_path: Path, allocation: Callable[[], int]
) -> None:
    size = len(npy_header((2, 4, 4))) + 32
    exact = bomb(tmp_path / "exact.npz", (2, 4, 4), size)  # 32 values claimed, 3 GB inside
    source = open_source("npz", "train", exact)  # what the claims hold is read; no more
    assert torch.equal(source.fetch([0, 1])[0], torch.zeros(2, 1, 4, 4))
    assert size <= INFLATION.bytes < SMALL_ALLOCATION  # the counter sees a zip member inflate
    longer = bomb(tmp_path / "longer.npz", (2, 4, 4), size + 40)
    refused(lambda: open_source("npz", "train", longer), "more data than its header declares")
    lying = with_labels(
        tmp_path / "lying.npz", deflate_zeros(npy_header((2, 4, 4)), GB3), True, 1000, 0
    )
    refused(lambda: open_source("npz", "train", lying), "damaged")  # checksum of 1000 bytes
    assert allocation() < SMALL_ALLOCATION


def test_npz_header_claiming_1e12_x_8_x_8_values(
    tmp_path: Path, allocation: Callable[[], int]
) -> None:
    path = stored(tmp_path / "huge.npz", npy_header((10**12, 8, 8)) + bytes(64))
    message = refused(lambda: open_source("npz", "train", path), "(1000000000000, 8, 8)")
    names_the_limit(message, "max_elements")
    assert allocation() < SMALL_ALLOCATION


def test_npz_header_claiming_10_gb_over_1_kb(tmp_path: Path) -> None:
    path = stored(tmp_path / "claims.npz", npy_header((1_250_000_000,), "<f8") + bytes(1000))
    assert path.stat().st_size < 2000
    refused(
        lambda: open_source("npz", "train", path),
        "10,000,000,000 bytes",
        "holds only 1,000 bytes",
        "truncated or forged",
    )


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_npz_truncated_file_is_one_clear_error(tmp_path: Path, save: Any, keep: float) -> None:
    path = tmp_path / "cut.npz"
    save(path, x=np.arange(4000, dtype=np.uint8).reshape(10, 20, 20), y=np.arange(10))
    whole = path.read_bytes()
    path.write_bytes(whole[: int(len(whole) * keep)])
    refused(
        lambda: open_source("npz", "train", path), "cut.npz", "truncated", absent=("Traceback",)
    )


def test_text_file_named_npz_never_suggests_pickle(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_text("x,y\n0.1,0\n0.2,1\n")
    refused(
        lambda: open_source("npz", "train", path),
        "not a readable .npz archive",
        "numpy.savez",
        absent=("allow_pickle", "pickle"),
    )
    np.save(tmp_path / "one.npy", np.zeros((2, 3, 3)))
    (tmp_path / "one.npy").rename(path)
    refused(lambda: open_source("npz", "train", path), "single array", absent=("pickle",))


@pytest.mark.parametrize("which", ["x", "y"])
def test_npz_complex_arrays_are_refused(tmp_path: Path, which: str) -> None:
    arrays = {"x": np.zeros((2, 3, 3)), "y": np.array([0, 1])}
    arrays[which] = arrays[which] + 0j
    np.savez(tmp_path / "c.npz", **arrays)
    refused(lambda: open_source("npz", "train", tmp_path / "c.npz"), f"['{which}']", "complex")


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0, 10**12]),
        np.array([0.0, 1e12]),
        np.array([0, 2**64 - 1], dtype=np.uint64),  # would wrap to -1 as int64
        np.array([1, 2**63], dtype=np.uint64),  # would wrap to -2**63
    ],
)
def test_npz_labels_beyond_the_class_ceiling(
    tmp_path: Path, allocation: Callable[[], int], labels: np.ndarray
) -> None:
    np.savez(tmp_path / "l.npz", x=np.zeros((2, 3, 3), np.uint8), y=labels)
    message = refused(
        lambda: load_dataset("npz", "train", tmp_path / "l.npz"), f"holds label {int(labels[1])}"
    )
    names_the_limit(message, "max_classes")
    assert allocation() < SMALL_ALLOCATION


def test_dataset_labels_beyond_the_class_ceiling() -> None:
    dataset = TensorDataset(torch.zeros(2, 3), torch.tensor([0, 10**12]))
    names_the_limit(
        refused(lambda: TorchDatasetSource(dataset), "1,000,000,000,001"), "max_classes"
    )


def test_raising_a_limit_reads_what_it_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 3, 3), np.uint8), y=[0, 12])
    strict = Limits(max_classes=10, max_elements=17)
    message = refused(lambda: open_source("npz", "train", tmp_path / "s.npz", limits=strict), "18")
    names_the_limit(message, "max_elements")
    names_the_limit(
        refused(
            lambda: open_source("npz", "train", tmp_path / "s.npz", limits=Limits(max_classes=10)),
            "holds label 12",
        ),
        "max_classes",
    )
    assert len(open_source("npz", "train", tmp_path / "s.npz").classes) == 13
    with pytest.raises(DataError, match="max_bytes must be a positive integer"):
        Limits(max_bytes=0)


# ------------------------------------------------------------------ IDX
def idx_header(shape: tuple[int, ...], code: int = 0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, ">u4").tobytes()


@pytest.mark.parametrize("shape", [(2**31, 2**31, 4), (2**32 - 1,) * 3, (2**16, 2**16, 2**16)])
def test_idx_dimensions_whose_product_overflows(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = tmp_path / "forged-idx3-ubyte"
    path.write_bytes(idx_header(shape))  # (2**31, 2**31, 4) wraps to 0 in int64
    names_the_limit(refused(lambda: read_idx(path), str(path), str(shape)), "max_elements")


def gzip_of(stream: bytes) -> bytes:
    """A gzip file around a raw deflate stream (trailer left zero: never reached)."""
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + stream + bytes(8)


def test_idx_gzip_bomb_claiming_gigabytes(tmp_path: Path, allocation: Callable[[], int]) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of(deflate_zeros(idx_header((3000, 1000, 1000)), GB3)))
    message = refused(lambda: read_idx(path), str(path), "gzip-compressed", "(3000, 1000, 1000)")
    names_the_limit(message, "max_bytes")
    assert allocation() < SMALL_ALLOCATION


def test_idx_gzip_bomb_behind_a_small_header_is_cut_off(
    tmp_path: Path, allocation: Callable[[], int]
) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of(deflate_zeros(idx_header((10, 28, 28)), GB3)))
    refused(lambda: read_idx(path), str(path), "longer than its header says")
    assert allocation() < SMALL_ALLOCATION
    assert INFLATION.bytes >= 10 * 28 * 28  # the counter sees a gzip file inflate


def test_idx_label_beyond_the_classes_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix in ("train", "t10k"):
        images = idx_header((3, 2, 2)) + bytes(12)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        labels = idx_header((3,)) + bytes([1, 200, 3])
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    labels_path = folder / "t10k-labels-idx1-ubyte.gz"
    refused(
        lambda: open_source("mnist", "test", folder),
        f"{labels_path} holds label 200 (at index 1)",
        "10 classes",
    )


# ------------------------------------------------------------------ SVHN
def test_svhn_arrays_are_checked_from_the_mat_headers_before_loading(tmp_path: Path) -> None:
    x = np.zeros((32, 32, 3, 4), np.uint8)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.ones((4, 1), np.uint8)})
    tight = Limits(max_elements=1000)
    message = refused(
        lambda: open_source("svhn", "train", tmp_path, limits=tight), "['X'] declares shape"
    )
    names_the_limit(message, "max_elements")
    assert len(open_source("svhn", "train", tmp_path)) == 4
    (tmp_path / "test_32x32.mat").write_text("not a MATLAB file")
    refused(lambda: open_source("svhn", "test", tmp_path), "cannot be read as a MATLAB v5 file")


# ------------------------------------------------------------------ image folders
def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of zeros, built without holding its pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = (width + 1) * height  # a filter byte and the pixels, per row: all zero
    adler = ((raw % 65521) << 16) | 1  # Adler-32 of `raw` zero bytes
    pixels = b"\x78\xda" + deflate_zeros(b"", raw) + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height"), [(20000, 20000), (10000, 9500)])
def test_huge_png_is_refused_from_its_header_before_decoding(
    tmp_path: Path, allocation: Callable[[], int], width: int, height: int
) -> None:
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "0.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "huge.png").write_bytes(png_of_zeros(width, height))
    message = refused(
        lambda: open_source("folder", "train", tmp_path),
        str(tmp_path / "b" / "huge.png"),
        absent=("DecompressionBombError",),
    )
    names_the_limit(message, "max_pixels")
    assert allocation() < SMALL_ALLOCATION


def test_the_bomb_png_is_a_real_image(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(png_of_zeros(300, 200))
    with Image.open(path) as image:
        assert image.size == (300, 200) and not np.asarray(image).any()
