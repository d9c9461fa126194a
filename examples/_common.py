"""What the training examples share: their command-line flags and their run.

The examples import it as ``from _common import parse_args, run``: a script's own
folder is first on ``sys.path`` when Python runs it, and the tests put
``examples/`` on the path (pyproject's pytest ``pythonpath``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax

from jcnn import nn
from jcnn.training import DataParallel, fit, predict


def parse_args(argv=None, *, epochs=30, batch_size=64, lr=3e-3, description=None,
               data_dir=False, parser=None):
    """The examples' shared flags; ``data_dir``: False (none), True (required) or
    "optional"; ``parser`` an ``ArgumentParser`` with the example's own flags."""
    p = parser or argparse.ArgumentParser(description=description)
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
    p.add_argument("--bf16", action="store_true",
                   help="mixed precision: compute in bfloat16, parameters in float32")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def run(args, model, data, input_shape, name, class_names=None, augment=None):
    """Train ``model`` with ``fit`` as ``args`` say; returns ``(params, history, metrics)``."""
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
    params, state, history, stats = fit(
        model, data, input_shape=input_shape, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, out_dir=args.out, resume=args.resume,
        parallel=DataParallel(devices), progress=not args.no_progress, augment=augment,
        compute_dtype="bfloat16" if getattr(args, "bf16", False) else None,
    )
    metrics = {"test_accuracy": history.test_accuracy[-1] if len(history) else 0.0,
               "seconds_per_epoch": (sum(history.seconds) / len(history.seconds)
                                     if len(history) else None),
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
