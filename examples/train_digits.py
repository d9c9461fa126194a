"""Train a small CNN on scikit-learn's bundled 8×8 digits with jcnn.

Every convolution, pool, activation, dense layer and the loss run through
jcnn's windowed sums and hand-written backward passes; optax (adam) updates
the params in one jitted ``train_step``.  Nothing is downloaded: the 1,797
scanned digits ship inside scikit-learn.

    python examples/train_digits.py                     # ~98-99 % in well under a minute
    python examples/train_digits.py --out runs/digits   # + checkpoint and curves PNG
    python examples/train_digits.py --out runs/digits --resume   # after an interruption
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import jax

from jcnn import nn
from jcnn.data import load_digits
from jcnn.training import DataParallel, fit, predict


def digits_model():
    """Conv(32)-Conv(32)-pool-Conv(64)-pool-Dense(128)-Dense(10) on 8×8×1 inputs."""
    return nn.serial(
        nn.Conv(32, (3, 3), padding="SAME"), nn.Relu,
        nn.Conv(32, (3, 3), padding="SAME"), nn.Relu,
        nn.MaxPool((2, 2)),
        nn.Conv(64, (3, 3), padding="SAME"), nn.Relu,
        nn.MaxPool((2, 2)),
        nn.Flatten,
        nn.Dense(128), nn.Relu,
        nn.Dropout(0.25),
        nn.Dense(10),
    )


INPUT_SHAPE = (-1, 8, 8, 1)


def parse_args(argv=None, *, epochs=30, batch_size=64, lr=3e-3, description=None,
               data_dir=False, parser=None):
    """The examples' shared flags; ``data_dir``: False (none), True (required) or
    "optional"; ``parser`` an ``ArgumentParser`` with the example's own flags."""
    p = parser or argparse.ArgumentParser(description=description or __doc__.splitlines()[0])
    if data_dir:
        p.add_argument("--data-dir", type=Path, required=data_dir is True,
                       default=None, help="directory holding the four IDX files (.gz or not)")
    p.add_argument("--epochs", type=int, default=epochs, help="total epochs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="default %(default)s")
    p.add_argument("--lr", type=float, default=lr,
                   help="adam's peak learning rate, cosine-decayed to 0 (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="init, shuffling and dropout seed")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for checkpoint.npz and curves.png")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--metrics-json", type=Path, default=None, help="write final metrics here")
    p.add_argument("--devices", type=int, default=None,
                   help="shard each batch over this many devices (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def run(args, model, data, input_shape, name, class_names=None, augment=None):
    devices = jax.devices()[: args.devices] if args.devices else jax.devices()
    if args.devices and len(devices) < args.devices:
        sys.exit(f"--devices {args.devices}: only {len(devices)} available")
    if args.batch_size % len(devices):
        sys.exit(f"--batch-size {args.batch_size} must be divisible by {len(devices)} devices")
    if args.resume and args.out is None:
        sys.exit("--resume needs --out DIR (where the checkpoint lives)")
    print(nn.summary(model, input_shape))
    print(f"{name}: {len(data[0])} train / {len(data[2])} test images, "
          f"{len(devices)} device(s): {devices[0].platform}")
    result = fit(
        model, data, input_shape=input_shape, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, out_dir=args.out, resume=args.resume,
        parallel=DataParallel(devices), progress=not args.no_progress, augment=augment,
    )
    if model.stateful:  # batch norm: fit also returns the running statistics
        params, state, history, stats = result
    else:
        (params, history, stats), state = result, {}
    metrics = {"test_accuracy": history.test_accuracy[-1] if history.test_accuracy else 0.0,
               "seconds_per_epoch": (sum(history.seconds) / len(history.seconds)
                                     if history.seconds else None),
               "seed": args.seed, "epochs_total": args.epochs, "batch_size": args.batch_size,
               "lr": args.lr, **stats}
    if args.out is not None:
        from jcnn.viz import confusion_matrix, plot_confusion_matrix, plot_training_curves

        plot_training_curves(history, args.out / "curves.png")
        if class_names is not None:
            predicted = predict(model, params, data[2], state=state)
            cm = confusion_matrix(data[3], predicted, len(class_names))
            plot_confusion_matrix(cm, args.out / "confusion.png", class_names)
    if args.metrics_json is not None:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps(metrics, indent=2))
    print(f"test accuracy: {metrics['test_accuracy']:.4f} "
          f"({stats['images_per_second']:.0f} images/s, {stats['train_seconds']:.1f} s "
          f"training, {stats['epochs']} epochs)")
    return params, history, metrics


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return run(args, digits_model(), load_digits(seed=0), INPUT_SHAPE, "sklearn digits")


if __name__ == "__main__":
    main()
