"""Labelled data sets for the classification bandit: sklearn digits, and MNIST from IDX files.

Both loaders return a :class:`DatasetSplit` whose features are float32 scaled to [0, 1] (digits'
pixel counts divided by 16, MNIST's bytes by 255), not standardised: a fixed, data-independent
scale keeps the observation space a bounded ``Box(0, 1)`` that is identical for the train and test
splits, and leaves per-feature normalisation to the agent (as SB3's VecNormalize would do it).

The arrays are cached and read-only, so every env of a vectorised batch shares one copy.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jacrl.common.atomic import write_atomically
from jacrl.common.errors import DatasetError

__all__ = [
    "MNIST_FILES",
    "DatasetError",
    "DatasetSplit",
    "load_digits_split",
    "load_mnist",
    "read_idx",
    "split_arrays",
    "write_idx",
]


class DatasetSplit(NamedTuple):
    """Features ``(n, d)`` float32 in [0, 1] and integer labels ``(n,)`` for a train/test split."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@lru_cache(maxsize=4)
def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> DatasetSplit:
    """sklearn's 8×8 digits (1797 images, 10 classes, shipped with sklearn: no download).

    The split is stratified, so each class keeps its share in both halves; ``seed`` fixes it, so
    every agent is evaluated on the same held-out images.

    :param test_fraction: share of the images held out, in (0, 1).
    :param seed: seed of the shuffle that makes the split.
    """
    # sklearn is imported here, not at module level: it costs ~1 s and only these loaders need it.
    from sklearn.datasets import load_digits

    digits = load_digits()
    split = split_arrays(
        (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64), test_fraction, seed
    )
    _read_only(*split)
    return split


def split_arrays(X: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> DatasetSplit:
    """A stratified train/test split of ``X`` ``(n, d)`` and labels ``y`` ``(n,)``: each class
    keeps its share in both halves, and ``seed`` fixes the shuffle (sklearn's
    ``train_test_split``).

    :param test_fraction: share of the rows held out, in (0, 1).
    :raises DatasetError: for a fraction outside (0, 1), or data too small to split stratified
        (a class with a single example, or fewer held-out rows than classes).
    """
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    from sklearn.model_selection import train_test_split

    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_fraction, random_state=seed, stratify=y
        )
    except ValueError as exc:  # sklearn's words say which count is too small
        raise DatasetError(
            f"cannot hold out test_fraction={test_fraction} of {len(y)} examples stratified by "
            f"class: {exc}"
        ) from exc
    return DatasetSplit(X_train, y_train, X_test, y_test)


# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data is big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its suffix)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"IDX file not found: {path}") from None
    except OSError as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path} is a corrupt or truncated gzip file: {exc}") from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip), checking its header against its size.

    Header: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float,
    0x0E double), the number of dimensions, then one big-endian uint32 per dimension. The payload
    must hold exactly prod(dims) items: fewer means a truncated file, more a corrupt one.

    :return: an array of the file's shape in native byte order.
    :raises DatasetError: naming the file, if it is missing, truncated or malformed.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated IDX file ({len(data)} bytes, header needs 4)")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file (magic number 0x{data[:4].hex()} does not start with 0000)"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        accepted = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise DatasetError(f"{path}: unknown IDX type code 0x{type_code:02X}; accepted: {accepted}")
    if ndim == 0:
        raise DatasetError(f"{path}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(f"{path}: truncated IDX header ({ndim} dimensions need {header_size} B)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "corrupt (trailing bytes)"
        raise DatasetError(
            f"{path}: {problem} IDX file: shape {shape} of {dtype.name} needs {expected} data "
            f"bytes, found {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped if ``path`` ends in ``.gz``: the inverse of
    :func:`read_idx`, for packaging your own data in MNIST's format (and for tests).
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes or not 1 <= array.ndim <= 255:
        raise DatasetError(
            f"cannot write {array.dtype.name} array of {array.ndim} dimensions to {path}: IDX "
            "holds 1-255 dimensions of uint8, int8, int16, int32, float32 or float64"
        )
    header = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(native.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


# The four standard files and their md5 (the gzip files, as torchvision checks them).
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def _find_mnist_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(url: str, target: Path, md5: str) -> None:
    """Fetch ``url`` into ``target`` atomically, refusing a body whose md5 differs."""
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    digest = hashlib.md5(body).hexdigest()
    if digest != md5:
        raise DatasetError(f"download of {url} has md5 {digest}, expected {md5}")
    write_atomically(target, lambda file: file.write(body))


def _mnist_pair(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find_mnist_file(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_mnist_file(directory, f"{prefix}-labels-idx1-ubyte")
    assert images_path is not None and labels_path is not None  # load_mnist checked
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(
            f"{images_path}: expected uint8 images of shape (n, rows, cols), "
            f"got {images.dtype.name} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetError(
            f"{labels_path}: expected uint8 labels of shape (n,), "
            f"got {labels.dtype.name} {labels.shape}"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{labels_path}: label {labels.max()} outside 0..9")
    X = (images.reshape(len(images), -1) / np.float32(255.0)).astype(np.float32)
    return X, labels.astype(np.int64)


@lru_cache(maxsize=2)
def _load_mnist_dir(directory: Path) -> DatasetSplit:
    X_train, y_train = _mnist_pair(directory, "train")
    X_test, y_test = _mnist_pair(directory, "t10k")
    if X_train.shape[1] != X_test.shape[1]:
        raise DatasetError(
            f"{directory}: train images have {X_train.shape[1]} pixels, test {X_test.shape[1]}"
        )
    split = DatasetSplit(X_train, y_train, X_test, y_test)
    _read_only(*split)
    return split


def load_mnist(directory: str | os.PathLike[str], download: bool = False) -> DatasetSplit:
    """MNIST from the four standard IDX files in ``directory`` (each raw or ``.gz``).

    Images are flattened to 784 features. Nothing is fetched unless ``download=True``; then the
    missing ``.gz`` files come from :data:`MNIST_MIRROR` and are checked against their md5.

    :raises DatasetError: naming the missing or malformed file.
    """
    directory = Path(directory).expanduser().resolve()
    missing = [name for name in MNIST_FILES if _find_mnist_file(directory, name) is None]
    if missing and not download:
        raise DatasetError(
            f"MNIST file {missing[0]}[.gz] not found in {directory} "
            f"(missing: {', '.join(missing)}); place the four IDX files there or call "
            "load_mnist(directory, download=True)"
        )
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
        for name in missing:
            _download(f"{MNIST_MIRROR}{name}.gz", directory / f"{name}.gz", MNIST_FILES[name])
    return _load_mnist_dir(directory)
