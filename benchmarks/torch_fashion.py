"""PyTorch CPU twin of ``examples/train_fashion.py --model lenet``: the same
layers, initial-weight scheme aside (PyTorch's defaults), the same data, batch
size, optimizer (adam, peak rate cosine-decayed to 0 over all steps), epochs and
thread count — for BENCHMARKS.md's training-results table.

    python -m benchmarks.torch_fashion [--epochs 15] [--threads 2] [--seed 0] [--json PATH]

PyTorch is an optional benchmark contender (``pip install torch``), never a
dependency of jcnn.  Seconds per epoch count the training loop only (no
evaluation), as ``fit`` does.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from jcnn.data import load_fashion_mnist


def lenet(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2, bias=False), nn.BatchNorm2d(16, momentum=0.1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, bias=False), nn.BatchNorm2d(32, momentum=0.1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(800, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", default=None, help="write the metrics here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_tr, y_tr, x_te, y_te = load_fashion_mnist(args.data_dir)
    # NCHW for PyTorch's CPU kernels
    x_tr = torch.from_numpy(np.ascontiguousarray(x_tr.transpose(0, 3, 1, 2)))
    x_te = torch.from_numpy(np.ascontiguousarray(x_te.transpose(0, 3, 1, 2)))
    y_tr, y_te = torch.from_numpy(y_tr.astype(np.int64)), torch.from_numpy(y_te.astype(np.int64))
    model = lenet(torch)
    steps = len(x_tr) // args.batch_size
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps * args.epochs)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    seconds, accuracies = [], []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        t0 = time.perf_counter()
        for i in range(steps):
            idx = perm[i * args.batch_size:(i + 1) * args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
            sched.step()
        seconds.append(time.perf_counter() - t0)
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x_te[i:i + 1000]).argmax(1) == y_te[i:i + 1000]).sum())
                          for i in range(0, len(x_te), 1000))
        accuracies.append(correct / len(x_te))
        print(f"epoch {epoch + 1}/{args.epochs}: test accuracy {accuracies[-1]:.4f} "
              f"({seconds[-1]:.1f} s)", flush=True)
    metrics = {"test_accuracy": accuracies[-1], "seconds_per_epoch": float(np.mean(seconds)),
               "train_seconds": float(np.sum(seconds)),
               "images_per_second": steps * args.batch_size / float(np.mean(seconds)),
               "epochs": args.epochs, "seed": args.seed, "threads": args.threads,
               "torch": torch.__version__}
    print(json.dumps(metrics))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == "__main__":
    main()
