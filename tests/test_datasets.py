"""The data loaders: digits split, the IDX reader on files written here, MNIST folder checks."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from jacrl.common.errors import JacrlError
from jacrl.envs.datasets import (
    MNIST_FILES,
    DatasetError,
    load_digits_split,
    load_mnist,
    read_idx,
    write_idx,
)


def idx_bytes(type_code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file assembled by hand from the format description, independent of write_idx."""
    header = bytes([0, 0, type_code, len(shape)])
    header += b"".join(int(d).to_bytes(4, "big") for d in shape)
    return header + payload


def write_fake_mnist(folder: Path, n_train: int = 40, n_test: int = 20, gz: bool = True) -> Path:
    """Small MNIST-shaped IDX files (random pixels, labels cycling 0..9)."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n, dtype=np.uint8) % 10)
    return folder


def test_digits_split_is_stratified_scaled_and_fixed() -> None:
    split = load_digits_split()
    assert split.X_train.shape == (1437, 64) and split.X_test.shape == (360, 64)
    assert split.X_train.dtype == np.float32 and split.y_train.dtype == np.int64
    assert split.X_train.min() == 0.0 and split.X_train.max() == 1.0
    assert np.bincount(split.y_test).min() >= 35  # stratified: every class ~36 times
    assert not split.X_train.flags.writeable  # shared between envs, so read-only
    other = load_digits_split(0.2, seed=1)
    assert not np.array_equal(other.y_test, split.y_test)
    with pytest.raises(DatasetError, match="test_fraction"):
        load_digits_split(1.5)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    ("type_code", "dtype"),
    [(0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")],
)
def test_read_idx_decodes_hand_made_files(
    tmp_path: Path, suffix: str, type_code: int, dtype: str
) -> None:
    expected = (np.arange(24) - 7).reshape(2, 3, 4).astype(dtype)
    if type_code == 0x08:
        expected = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    data = idx_bytes(type_code, (2, 3, 4), expected.tobytes())
    path = tmp_path / f"x.idx{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    got = read_idx(path)
    assert got.shape == (2, 3, 4) and got.dtype.isnative
    np.testing.assert_array_equal(got, expected)


def test_write_idx_round_trips_and_matches_the_format(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.int16).reshape(3, 2)
    raw = write_idx(tmp_path / "a.idx", array)
    assert raw.read_bytes() == idx_bytes(0x0B, (3, 2), array.astype(">i2").tobytes())
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.idx.gz", array)), array)
    with pytest.raises(DatasetError, match="int64"):
        write_idx(tmp_path / "b.idx", np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00", "truncated IDX file"),
        (b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01\x05", "not an IDX file"),
        (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01\x05", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (idx_bytes(0x08, (2, 3), bytes(5)), r"truncated IDX file: shape \(2, 3\)"),
        (idx_bytes(0x0C, (2,), bytes(9)), "corrupt"),
        (b"\x1f\x8b" + b"garbage that is not deflate", "corrupt or truncated gzip"),
        (gzip.compress(idx_bytes(0x08, (4,), bytes(4)))[:-6], "corrupt or truncated gzip"),
    ],
    ids=["short", "magic", "type", "ndim0", "header", "payload", "trailing", "gzip", "gzip-cut"],
)
def test_read_idx_names_the_file_and_problem(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, JacrlError)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"not found: .*nowhere\.idx"):
        read_idx(tmp_path / "nowhere.idx")


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_reads_the_four_files(tmp_path: Path, gz: bool) -> None:
    split = load_mnist(write_fake_mnist(tmp_path, gz=gz))
    assert split.X_train.shape == (40, 784) and split.X_test.shape == (20, 784)
    assert split.X_train.dtype == np.float32 and 0.0 <= split.X_train.min() <= 1.0
    np.testing.assert_array_equal(split.y_test, np.arange(20) % 10)
    raw = read_idx(tmp_path / f"train-images-idx3-ubyte{'.gz' if gz else ''}")
    np.testing.assert_allclose(split.X_train[3], raw[3].ravel() / 255.0, rtol=1e-6)


def test_load_mnist_missing_file_says_which_and_how(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\[\.gz\] not found.*download"):
        load_mnist(tmp_path)
    assert set(MNIST_FILES) >= {"t10k-labels-idx1-ubyte"}


def test_load_mnist_rejects_inconsistent_files(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(39, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"40 images but .*39 labels"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((40, 2), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"train-labels.*expected uint8 labels of shape \(n,\)"):
        load_mnist(tmp_path)
