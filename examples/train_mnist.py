"""Train a LeNet-5-style CNN on MNIST read from its four IDX files.

    python examples/train_mnist.py --data-dir ~/data/mnist

``--data-dir`` must hold train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may be gzipped, with
``.gz``).  Nothing is downloaded.  Same loop and flags as train_digits.py.
"""

from __future__ import annotations

import sys

from _common import parse_args, run

from jcnn import nn
from jcnn.data import load_mnist


def lenet5():
    """LeNet-5 layout (conv 5×5 → pool → conv 5×5 → pool → 3 dense), 32/64 filters."""
    return nn.serial(
        nn.Conv(32, (5, 5), padding="SAME"), nn.Relu,  # 28×28×1 → 28×28×32
        nn.MaxPool((2, 2)),                                  # → 14×14×32
        nn.Conv(64, (5, 5)), nn.Relu,                   # → 10×10×64
        nn.MaxPool((2, 2)),                                  # → 5×5×64
        nn.Flatten,
        nn.Dense(256), nn.Relu,
        nn.Dropout(0.3),
        nn.Dense(84), nn.Relu,
        nn.Dense(10),
    )


INPUT_SHAPE = (-1, 28, 28, 1)


def main(argv=None):
    args = parse_args(argv, epochs=12, batch_size=128, lr=1e-3, data_dir=True,
                      description=__doc__.splitlines()[0])
    try:
        data = load_mnist(args.data_dir)
    except FileNotFoundError as e:
        sys.exit(str(e))
    return run(args, lenet5(), data, INPUT_SHAPE, "MNIST")


if __name__ == "__main__":
    main()
