"""Train a LeNet-5 or a small ResNet on Fashion-MNIST with jcnn.

The data are Zalando's 70,000 28×28 clothing images, read from the four IDX
files that Debian's ``dataset-fashion-mnist`` installs under
/usr/share/datasets/fashion-mnist/ (``apt-get install dataset-fashion-mnist``),
or from ``--data-dir``.  Nothing is downloaded.

    python examples/train_fashion.py --model lenet --out runs/lenet
    python examples/train_fashion.py --model resnet --out runs/resnet
    python examples/train_fashion.py --model resnet --out runs/resnet --resume

With ``--out``: ``checkpoint.npz`` after every epoch, ``curves.png`` (loss and
accuracy per epoch) and ``confusion.png`` (the test set's confusion matrix).
``--metrics-json`` writes the final accuracy, seconds per epoch and images/s.
"""

from __future__ import annotations

import argparse
import os
import sys

from _common import parse_args, run

from jcnn import nn
from jcnn.augment import flip_and_shift
from jcnn.data import FASHION_MNIST_CLASSES, load_fashion_mnist

INPUT_SHAPE = (-1, 28, 28, 1)


def lenet():
    """LeNet-5's layout — conv 5×5 → pool → conv 5×5 → pool → three dense layers —
    with 16/32 filters and batch norm after each convolution."""
    return nn.serial(
        nn.Conv(16, (5, 5), padding="SAME", use_bias=False), nn.BatchNorm(), nn.Relu,
        nn.MaxPool((2, 2)),                                    # 28×28×16 → 14×14×16
        nn.Conv(32, (5, 5), use_bias=False), nn.BatchNorm(), nn.Relu,
        nn.MaxPool((2, 2)),                                    # 10×10×32 → 5×5×32
        nn.Flatten,
        nn.Dense(120), nn.Relu,
        nn.Dense(84), nn.Relu,
        nn.Dense(10),
    )


def basic_block(channels: int, stride: int = 1, project: bool = False):
    """ResNet's basic block: two 3×3 conv + batch norm, the input added back (through
    a 1×1 strided projection when the shape changes), then relu."""
    body = nn.serial(
        nn.Conv(channels, (3, 3), stride=stride, padding=1, use_bias=False), nn.BatchNorm(),
        nn.Relu,
        nn.Conv(channels, (3, 3), padding=1, use_bias=False), nn.BatchNorm(),
    )
    shortcut = (nn.serial(nn.Conv(channels, (1, 1), stride=stride, use_bias=False),
                          nn.BatchNorm()) if project else None)
    return nn.serial(nn.residual(body, shortcut), nn.Relu)


def resnet(widths=(16, 48, 96)):
    """A small ResNet for 28×28 images: a 3×3 stem, one basic block per stage (the
    later stages halve the resolution: 28² → 14² → 7²), global average pooling and
    a dense classifier."""
    layers = [nn.Conv(widths[0], (3, 3), padding=1, use_bias=False), nn.BatchNorm(), nn.Relu]
    for i, c in enumerate(widths):
        layers.append(basic_block(c, stride=1 if i == 0 else 2, project=i > 0))
    layers += [nn.GlobalAvgPool, nn.Dense(10)]
    return nn.serial(*layers)


MODELS = {
    # name: (constructor, epochs, batch size, peak learning rate, augmentation)
    "lenet": (lenet, 15, 128, 3e-3, "none"),
    "resnet": (resnet, 40, 128, 3e-3, "flip-shift"),
}
AUGMENT = {"none": None, "flip-shift": flip_and_shift}


def main(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", choices=sorted(MODELS), default="lenet")
    known, _ = pre.parse_known_args(argv)
    make, epochs, batch_size, lr, augment = MODELS[known.model]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[pre])
    parser.add_argument("--augment", choices=sorted(AUGMENT), default=augment,
                        help="training-batch augmentation: random mirror + shift by up to 2 "
                             "pixels, or none (default for this model: %(default)s)")
    args = parse_args(argv, epochs=epochs, batch_size=batch_size, lr=lr, data_dir="optional",
                      parser=parser)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        data = load_fashion_mnist(args.data_dir)
    except FileNotFoundError as e:
        sys.exit(str(e))
    return run(args, make(), data, INPUT_SHAPE, f"Fashion-MNIST, {args.model}",
               class_names=FASHION_MNIST_CLASSES, augment=AUGMENT[args.augment])


if __name__ == "__main__":
    main()
