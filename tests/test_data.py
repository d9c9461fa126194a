"""Data loading (jcnn/data.py): IDX files and the MNIST loader."""

import gzip

import numpy as np
import pytest
from cases import write_toy_mnist

from jcnn.data import load_mnist, read_idx, write_idx


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_and_mnist_loader(tmp_path, compress):
    labels = write_toy_mnist(tmp_path, compress=compress)
    x_tr, y_tr, x_te, y_te = load_mnist(tmp_path)
    assert x_tr.shape == (64, 28, 28, 1) and x_te.shape == (32, 28, 28, 1)
    assert x_tr.dtype == np.float32 and 0 <= x_tr.min() and x_tr.max() == 1.0
    np.testing.assert_array_equal(y_tr, labels["train"])
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_idx(tmp_path / "a.idx", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)


def test_idx_hand_written_bytes(tmp_path):
    raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    (tmp_path / "m").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "m"), [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "m.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "m.gz"), [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="holds 5 data bytes, its header \\(2, 3\\) needs 6"):
        read_idx(tmp_path / "short")


def test_mnist_missing_files_are_named(tmp_path):
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    missing_part = msg.split("(")[0]
    assert "missing in" in missing_part and "train-labels" not in missing_part
    assert missing_part.count("ubyte") == 3



def test_fashion_mnist_from_the_debian_package():
    """Read where Debian's dataset-fashion-mnist installs it (.ci/run installs it)."""
    from jcnn.data import FASHION_MNIST_DIR, load_fashion_mnist

    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip(f"{FASHION_MNIST_DIR} absent: apt-get install dataset-fashion-mnist")
    x_tr, y_tr, x_te, y_te = load_fashion_mnist()
    assert x_tr.shape == (60000, 28, 28, 1) and x_te.shape == (10000, 28, 28, 1)
    assert x_tr.dtype == np.float32 and 0.0 == x_tr.min() and x_tr.max() == 1.0
    # the published split is balanced: 6,000 training and 1,000 test images per class
    assert np.bincount(y_tr).tolist() == [6000] * 10
    assert np.bincount(y_te).tolist() == [1000] * 10


def test_fashion_mnist_missing_names_the_package_and_the_flag(tmp_path, monkeypatch):
    from jcnn import data

    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"load_fashion_mnist: missing in .*nowhere.*"
                                                r"apt-get install dataset-fashion-mnist.*"
                                                r"--data-dir"):
        data.load_fashion_mnist()
    write_toy_mnist(tmp_path, compress=True)  # an explicit folder wins over the default
    x_tr, y_tr, x_te, y_te = data.load_fashion_mnist(tmp_path)
    assert x_tr.shape == (64, 28, 28, 1) and y_te.shape == (32,)
