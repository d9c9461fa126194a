"""Data for the examples: scikit-learn's bundled digits and MNIST's IDX files.

Images come out channels-last, ``(N, H, W, 1)`` float32 in ``[0, 1]``, labels
int32.  Nothing is downloaded: the digits ship inside scikit-learn and MNIST is
read from files the user provides.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "MNIST_FILES", "load_digits",
           "load_fashion_mnist", "load_mnist", "read_idx", "write_idx"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


def load_digits(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's 1,797 8×8 scanned digits, split stratified into train/test.

    Returns ``(x_train, y_train, x_test, y_test)``; images ``(N, 8, 8, 1)`` in [0, 1].

    Examples:
      >>> from jcnn.data import load_digits
      >>> x_tr, y_tr, x_te, y_te = load_digits()
      >>> x_tr.shape, x_te.shape, int(y_tr.max())
      ((1437, 8, 8, 1), (360, 8, 8, 1), 9)
    """
    try:
        from sklearn.datasets import load_digits as _load
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("load_digits needs scikit-learn: pip install 'jcnn[examples]'") from e
    digits = _load()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    return x_tr, y_tr, x_te, y_te


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not, into a numpy array.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn.data import read_idx, write_idx
      >>> path = pathlib.Path(tempfile.mkdtemp()) / 'x-idx3-ubyte.gz'
      >>> write_idx(path, np.arange(6, dtype=np.uint8).reshape(1, 2, 3), compress=True)
      >>> read_idx(path).tolist()
      [[[0, 1, 2], [3, 4, 5]]]
    """
    path = Path(path)
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"read_idx: cannot read {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: {path} is truncated (header)")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"read_idx: {path} holds {len(data) - header} data bytes, its header "
            f"{shape} needs {expected}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool = False) -> None:
    """Write ``array`` (uint8, int8, int16, int32, float32, float64) as an IDX file.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn.data import write_idx
      >>> path = pathlib.Path(tempfile.mkdtemp()) / 'labels-idx1-ubyte'
      >>> write_idx(path, np.array([3, 1], np.uint8))
      >>> path.read_bytes()  # magic 0x0801 (uint8, 1 dim), size 2, the values
      b'\\x00\\x00\\x08\\x01\\x00\\x00\\x00\\x02\\x03\\x01'
    """
    array = np.asarray(array)
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
    if array.dtype not in codes:
        raise TypeError(f"write_idx: unsupported dtype {array.dtype}")
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + body)


def load_mnist(data_dir: str | os.PathLike):
    """MNIST from the four standard IDX files in ``data_dir`` (``.gz`` or not).

    Returns ``(x_train, y_train, x_test, y_test)``; images ``(N, 28, 28, 1)`` in [0, 1].

    Examples:
      >>> from jcnn.data import load_mnist
      >>> load_mnist('/nonexistent')  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      FileNotFoundError: load_mnist: ...
    """
    return _load_idx_dataset("load_mnist", data_dir, "")


def _load_idx_dataset(fn, data_dir, hint):
    """The four MNIST-layout IDX files in ``data_dir`` as ``(x_tr, y_tr, x_te, y_te)``."""
    data_dir = Path(data_dir)
    found, missing = {}, []
    for key, name in MNIST_FILES.items():
        for candidate in (data_dir / name, data_dir / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(name)
    if missing:
        raise FileNotFoundError(
            f"{fn}: missing in {data_dir}: {', '.join(missing)} "
            f"(read from the four IDX files {', '.join(MNIST_FILES.values())}, "
            f"each optionally gzipped with .gz; jcnn downloads nothing){hint}"
        )
    arrays = {k: read_idx(p) for k, p in found.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{fn}: {split} images {images.shape} and labels {labels.shape} "
                "do not match (need (N, H, W) and (N,))"
            )
    def images(a):
        return (a.astype(np.float32) / 255.0)[..., None]
    return (images(arrays["train_images"]), arrays["train_labels"].astype(np.int32),
            images(arrays["test_images"]), arrays["test_labels"].astype(np.int32))


def load_fashion_mnist(data_dir: str | os.PathLike | None = None):
    """Fashion-MNIST (Zalando's 70,000 28×28 clothing images, 10 classes) from its
    four IDX files — by default where Debian's package ``dataset-fashion-mnist``
    installs them (:data:`FASHION_MNIST_DIR`, gzipped), else from ``data_dir``.

    Returns ``(x_train, y_train, x_test, y_test)``: 60,000 and 10,000 images
    ``(N, 28, 28, 1)`` in [0, 1], labels 0–9.

    Examples:
      >>> from jcnn.data import load_fashion_mnist
      >>> try:
      ...     load_fashion_mnist("/nonexistent")
      ... except FileNotFoundError as e:
      ...     print("apt-get install dataset-fashion-mnist" in str(e))
      True
    """
    hint = (f"; install them with `apt-get install dataset-fashion-mnist` (Debian, into "
            f"{FASHION_MNIST_DIR}) or pass their folder as data_dir (--data-dir in the "
            "examples)")
    return _load_idx_dataset("load_fashion_mnist",
                             FASHION_MNIST_DIR if data_dir is None else data_dir, hint)
