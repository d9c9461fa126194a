"""Segment overlapping shapes with a small U-Net, every layer jcnn's own.

    python examples/segment_shapes.py --out docs/pictures/segment_shapes.png

The images are generated here (nothing is downloaded): circles, rectangles and
triangles of random sizes, places, rotations and colours, painted over each
other on a noisy background, with the class of the topmost shape at every
pixel as the mask.  Colour says nothing about the class, so the network has to
recognise the shapes.

The model is a U-Net: on the way down convolutions, group norm and max
pooling; on the way up transposed convolutions (``jcnn.conv_transpose``, the
conv's input gradient run forward) whose output is concatenated with the
features of the same resolution from the way down (the skip connections), and
a 1×1 convolution to one logit per class and pixel.  Training minimises the
per-pixel softmax cross-entropy with optax's adam in one jitted ``train_step``;
the score is the mean intersection-over-union of the classes on a held-out
generated set.  Writes a picture of input / truth / prediction panels to
``--out`` and, with ``--metrics-json``, ``mean_iou`` and ``train_seconds``
(the training loop's seconds, compilation excluded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jcnn
from jcnn import nn
from jcnn.layer import Layer, output_shape

CLASSES = ("background", "circle", "rectangle", "triangle")


# ------------------------------------------------------------------ the data
def shape_mask(kind, params, size):
    """Boolean ``(size, size)`` mask of one shape; pixel ``(i, j)`` has its centre at
    ``(x, y) = (j + ½, i + ½)``.

    ``params`` is ``(cx, cy, r, a, b, angle)``: a circle of radius ``r``; a
    rectangle with half-sides ``a``, ``b`` turned by ``angle``; an equilateral
    triangle with corners at distance ``r`` from the centre, turned by ``angle``.
    """
    cx, cy, r, a, b, angle = params
    y, x = np.mgrid[0:size, 0:size] + 0.5
    dx, dy = x - cx, y - cy
    if kind == 1:
        return dx ** 2 + dy ** 2 <= r ** 2
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # coordinates in the shape's own frame
    if kind == 2:
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    # triangle: inside all three edges, each at distance r/2 from the centre (inradius)
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        t = 2 * np.pi * k / 3
        inside &= np.cos(t) * u + np.sin(t) * v <= r / 2
    return inside


def make_shapes(n, size=32, *, seed=0, max_shapes=3, noise=0.05, return_shapes=False):
    """``n`` images ``(n, size, size, 3)`` in ``[0, 1]`` and masks ``(n, size, size)``
    (``CLASSES`` indices); with ``return_shapes`` also, per image, the list of
    ``(kind, params, colour)`` in painting order.

    One to ``max_shapes`` shapes per image, painted in order: a later shape covers
    the earlier ones, but never more than a third of what is still visible of
    one (the place is drawn again), and its colour differs from theirs.
    """
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.zeros((n, size, size), np.int32)
    shapes = []
    for i in range(n):
        image = np.broadcast_to(rng.uniform(0.0, 0.3, 3), (size, size, 3)).copy()
        owner = np.full((size, size), -1)  # which drawn shape shows at each pixel
        drawn = []
        for _ in range(rng.integers(1, max_shapes + 1)):
            for _attempt in range(20):
                kind = int(rng.integers(1, len(CLASSES)))
                r = rng.uniform(0.18, 0.3) * size
                cx, cy = rng.uniform(0.2 * size, 0.8 * size, 2)
                a, b = r * rng.uniform(0.55, 0.9, 2)
                params = (cx, cy, r, a, b, rng.uniform(0, 2 * np.pi))
                inside = shape_mask(kind, params, size)
                visible = [np.sum(owner == k) for k in range(len(drawn))]
                covered = [np.sum(inside & (owner == k)) for k in range(len(drawn))]
                if all(3 * c <= v for c, v in zip(covered, visible)):
                    break
            else:
                continue  # no room left for another shape
            colour = rng.uniform(0.35, 1.0, 3)
            while any(np.abs(colour - c).max() < 0.25 for _, _, c in drawn):
                colour = rng.uniform(0.35, 1.0, 3)
            image[inside] = colour
            masks[i][inside] = kind
            owner[inside] = len(drawn)
            drawn.append((kind, params, colour))
        images[i] = np.clip(image + rng.normal(0, noise, image.shape), 0, 1)
        shapes.append(drawn)
    return (images, masks, shapes) if return_shapes else (images, masks)


# ------------------------------------------------------------------ the model
def skip_concat(inner: Layer) -> Layer:
    """``y = concat([x, inner(x)], channels)``: a U-Net's skip connection (``inner``
    must keep the spatial size: down, deeper levels, back up)."""

    def init(key, input_shape):
        out, params = inner.init(key, input_shape)
        if tuple(out[:-1]) != tuple(input_shape[:-1]):
            raise ValueError(f"skip_concat: the inner layers map {tuple(input_shape)} to "
                             f"{tuple(out)}; the spatial size must come back")
        return (*input_shape[:-1], input_shape[-1] + out[-1]), params

    def apply(params, x, *, key=None, train=False):
        return jnp.concatenate([x, inner.apply(params, x, key=key, train=train)], axis=-1)

    return Layer(init, apply, "skip_concat", (inner,))


def conv_block(channels, groups, depth=2):
    """``depth`` × (3×3 conv, group norm, ReLU)."""
    return nn.serial(*(layer for _ in range(depth) for layer in (
        nn.Conv(channels, (3, 3), padding="SAME"), nn.GroupNorm(groups), nn.Relu)))


def unet(widths=(12, 24, 48), classes=len(CLASSES), groups=4):
    """A U-Net with one level per width: at each level a conv block, then (but at the
    bottom) a skip connection around pool → the next level → 2×2 transposed conv up,
    and a conv block on the concatenation; a 1×1 conv to ``classes`` logits.  The
    full-resolution level has one conv per block (the costliest level, and it only
    has to place the edges: the shapes are recognised further down), the others two."""

    def level(i):
        depth = 1 if i == 0 else 2
        if i == len(widths) - 1:
            return conv_block(widths[i], groups, depth)
        down_and_up = nn.serial(nn.MaxPool((2, 2)), level(i + 1),
                                nn.ConvTranspose(widths[i], (2, 2), stride=2))
        return nn.serial(conv_block(widths[i], groups, depth), skip_concat(down_and_up),
                         conv_block(widths[i], groups, depth))

    return nn.serial(level(0), nn.Conv(classes, (1, 1)))


# ------------------------------------------------------------------ the score
def confusion(pred, truth, k=len(CLASSES)):
    """``k × k`` counts: row the true class, column the predicted one."""
    return np.bincount(truth.ravel() * k + pred.ravel(), minlength=k * k).reshape(k, k)


def iou_per_class(conf):
    """``IoU_c = TP / (TP + FP + FN)`` from a confusion matrix."""
    tp = np.diag(conf).astype(float)
    return tp / np.maximum(conf.sum(0) + conf.sum(1) - tp, 1)


# ------------------------------------------------------------------ training
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500, help="training steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="default %(default)s")
    p.add_argument("--lr", type=float, default=3e-3,
                   help="adam's peak learning rate, warmed up then cosine-decayed "
                        "(default %(default)s)")
    p.add_argument("--size", type=int, default=32,
                   help="image side in pixels (default %(default)s)")
    p.add_argument("--widths", type=str, default="12,24,48",
                   help="channels per U-Net level, comma-separated (default %(default)s)")
    p.add_argument("--groups", type=int, default=4,
                   help="group norm's groups (default %(default)s)")
    p.add_argument("--train-size", type=int, default=None,
                   help="generated training images (default: steps × batch size, so every "
                        "step sees new ones; fewer are cycled through, reshuffled)")
    p.add_argument("--test-size", type=int, default=500,
                   help="held-out images (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="data, init and batch-order seed")
    p.add_argument("--out", type=Path, default=Path("runs/segment_shapes.png"),
                   help="the input / truth / prediction picture (default %(default)s)")
    p.add_argument("--metrics-json", type=Path, default=None, help="write the metrics here")
    return p.parse_args(argv)


def train(args):
    """Train on generated shapes; returns ``(model, params, metrics, history, (x_test,
    y_test, predictions))``."""
    widths = tuple(int(w) for w in args.widths.split(","))
    if args.size % 2 ** (len(widths) - 1):
        raise SystemExit(f"--size {args.size} must be divisible by 2^{len(widths) - 1} "
                         f"for {len(widths)} levels")
    steps = args.steps
    train_size = args.train_size or steps * args.batch_size
    x_tr, y_tr = make_shapes(train_size, args.size, seed=args.seed)
    model = unet(widths, groups=args.groups)
    shape = (-1, args.size, args.size, 3)
    assert output_shape(model, shape) == (-1, args.size, args.size, len(CLASSES))
    _, params = model.init(jax.random.key(args.seed), shape)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, max(1, steps // 20), steps)
    opt = optax.adam(schedule)
    opt_state = opt.init(params)

    def loss_fn(params, x, y):
        return jcnn.softmax_cross_entropy(model.apply(params, x, train=True), y)

    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(args.seed)
    passes = -(-steps * args.batch_size // train_size)
    order = np.concatenate([rng.permutation(train_size) for _ in range(passes)])
    t0 = time.perf_counter()
    step = jax.jit(train_step, donate_argnums=(0, 1)).lower(
        params, opt_state, x_tr[:args.batch_size], y_tr[:args.batch_size]).compile()
    compile_seconds = time.perf_counter() - t0
    history = []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        idx = order[i * args.batch_size:(i + 1) * args.batch_size]
        params, opt_state, loss = step(params, opt_state, x_tr[idx], y_tr[idx])
        if i % 10 == 0 or i == steps - 1:
            history.append((i, float(loss)))  # float() waits: the clock sees finished steps
    jax.block_until_ready(params)
    train_seconds = time.perf_counter() - t0
    train_cpu_seconds = time.process_time() - cpu0  # all threads: on a shared machine the
    # wall-clock seconds grow with the other load, the CPU seconds much less

    x_te, y_te = make_shapes(args.test_size, args.size, seed=10_000 + args.seed)
    predict = jax.jit(lambda p, x: jnp.argmax(model.apply(p, x), axis=-1))
    pred = np.concatenate([np.asarray(predict(params, x_te[i:i + 100]))
                           for i in range(0, len(x_te), 100)])
    ious = iou_per_class(confusion(pred, y_te))
    metrics = {"mean_iou": float(ious.mean()),
               "iou": {c: float(v) for c, v in zip(CLASSES, ious)},
               "pixel_accuracy": float(np.mean(pred == y_te)),
               "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds,
               "compile_seconds": compile_seconds,
               "steps": steps, "batch_size": args.batch_size, "seed": args.seed,
               "params": nn.param_count(params),
               "loss_first": history[0][1], "loss_last": history[-1][1]}
    return model, params, metrics, history, (x_te, y_te, pred)


def draw(path, x, truth, pred, metrics, n=6):
    """Input / truth / prediction panels for the first ``n`` held-out images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#202020", "#e6550d", "#3182bd", "#31a354"])
    fig, axes = plt.subplots(3, n, figsize=(1.9 * n, 6.2))
    for j in range(n):
        axes[0, j].imshow(x[j])
        axes[1, j].imshow(truth[j], cmap=cmap, vmin=0, vmax=len(CLASSES) - 1)
        axes[2, j].imshow(pred[j], cmap=cmap, vmin=0, vmax=len(CLASSES) - 1)
        for i in range(3):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    for i, label in enumerate(("input", "truth", "prediction")):
        axes[i, 0].set_ylabel(label)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(k)) for k in range(len(CLASSES))]
    fig.legend(handles, CLASSES, loc="lower center", ncol=len(CLASSES), frameon=False)
    fig.suptitle(f"U-Net on generated shapes: held-out mean IoU {metrics['mean_iou']:.3f} "
                 f"({metrics['steps']} steps, {metrics['train_seconds']:.0f} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    model, params, metrics, history, (x_te, y_te, pred) = train(args)
    print(nn.summary(model, (-1, args.size, args.size, 3)))
    per_class = ", ".join(f"{c} {v:.3f}" for c, v in metrics["iou"].items())
    print(f"held-out mean IoU {metrics['mean_iou']:.4f} ({per_class}); pixel accuracy "
          f"{metrics['pixel_accuracy']:.4f}; {metrics['steps']} steps in "
          f"{metrics['train_seconds']:.1f} s (+{metrics['compile_seconds']:.1f} s compile)")
    draw(args.out, x_te, y_te, pred, metrics)
    print(f"wrote {args.out}")
    metrics["history"] = history
    if args.metrics_json is not None:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
