"""Train a small CNN on scikit-learn's bundled 8×8 digits with jcnn.

Every convolution, pool, activation, dense layer and the loss run through
jcnn's windowed sums and hand-written backward passes; optax (adam) updates
the params in one jitted ``train_step``.  Nothing is downloaded: the 1,797
scanned digits ship inside scikit-learn.

    python examples/train_digits.py                     # ~98-99 % in well under a minute
    python examples/train_digits.py --out runs/digits   # + checkpoint and curves PNG
    python examples/train_digits.py --out runs/digits --resume   # after an interruption
    python examples/train_digits.py --bf16              # mixed precision (bf16 compute)
"""

from __future__ import annotations

import os

from _common import parse_args, run

from jcnn import nn
from jcnn.data import load_digits


def digits_model():
    """Conv(32)-Conv(32)-pool-Conv(64)-pool-Dense(128)-Dense(10) on 8×8×1 inputs."""
    return nn.serial(
        nn.Conv(32, 3, padding="SAME"), nn.Relu,
        nn.Conv(32, 3, padding="SAME"), nn.Relu,
        nn.MaxPool(2),
        nn.Conv(64, 3, padding="SAME"), nn.Relu,
        nn.MaxPool(2),
        nn.Flatten,
        nn.Dense(128), nn.Relu,
        nn.Dropout(0.25),
        nn.Dense(10),
    )


INPUT_SHAPE = (-1, 8, 8, 1)


def main(argv=None):
    args = parse_args(argv, description=__doc__.splitlines()[0])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return run(args, digits_model(), load_digits(seed=0), INPUT_SHAPE, "sklearn digits")


if __name__ == "__main__":
    main()
