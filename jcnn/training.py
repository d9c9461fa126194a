"""A jitted training loop for classifiers built with :mod:`jcnn.nn`.

``train_step`` is one ``jax.jit``-compiled function: forward through the
model, ``jax.value_and_grad`` through jcnn's hand-written backward passes,
an optax update.  With several devices the batch is sharded over a
``jax.sharding.Mesh`` (axis ``"data"``) and the params replicated; the same
``train_step`` runs unchanged — XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import checkpoint
from .layer import Layer, apply_with_state, init_with_state
from .losses import softmax_cross_entropy

__all__ = ["DataParallel", "History", "evaluate", "fit", "make_eval_step", "make_train_step",
           "predict"]


def _step_fn(model: Layer, optimizer, loss):
    """The train step of every model, stateful or not:
    ``(params, state, opt_state, x, y, key) -> (params, state, opt_state, loss, accuracy)``."""

    def loss_fn(params, state, x, y, key):
        logits, state = apply_with_state(model, params, state, x, key=key, train=True)
        return loss(logits, y), (logits, state)

    def step(params, state, opt_state, x, y, key):
        (value, (logits, state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, state, x, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
        return params, state, opt_state, value, accuracy

    return step


def make_train_step(model: Layer, optimizer: optax.GradientTransformation,
                    loss: Callable = softmax_cross_entropy) -> Callable:
    """``step(params, opt_state, x, y, key) -> (params, opt_state, loss, accuracy)``, jitted.

    ``loss(logits, labels)`` is a scalar.  ``params`` and ``opt_state`` are
    donated: their buffers are reused for the updated ones, so pass the
    returned values to the next step (the old ones are invalidated).

    For a model with state (batch norm) the step threads it too:
    ``step(params, state, opt_state, x, y, key) -> (params, state, opt_state,
    loss, accuracy)`` (``state`` donated as well); the forward pass runs in
    training mode, so the state that comes back holds the updated running
    statistics.

    Examples:
      >>> import jax, jax.numpy as jnp, numpy as np, optax
      >>> from jcnn import nn
      >>> from jcnn.training import evaluate, make_eval_step, make_train_step
      >>> model = nn.serial(nn.Flatten, nn.Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> opt = optax.sgd(0.1)
      >>> step = make_train_step(model, opt)
      >>> x, y = jnp.ones((2, 4), jnp.float32), jnp.array([0, 1])
      >>> params, state, loss, acc = step(params, opt.init(params), x, y, jax.random.key(1))
      >>> loss.shape, acc.shape
      ((), ())
    """
    step = _step_fn(model, optimizer, loss)
    if model.stateful:
        return jax.jit(step, donate_argnums=(0, 1, 2))

    @partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, x, y, key):
        params, _, opt_state, value, accuracy = step(params, {}, opt_state, x, y, key)
        return params, opt_state, value, accuracy

    return train_step


def _eval_fn(model: Layer):
    def eval_step(params, state, x, y, mask):
        logits, _ = apply_with_state(model, params, state, x, train=False)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32))
        nll = -jnp.take_along_axis(logp, y[:, None], 1)[:, 0]
        correct = (jnp.argmax(logits, -1) == y) & mask
        return jnp.sum(jnp.where(mask, nll, 0.0)), jnp.sum(correct)

    return eval_step


def make_eval_step(model: Layer) -> Callable:
    """``step(params, x, y, mask) -> (summed loss, number correct)`` over masked rows, jitted.

    For a model with state: ``step(params, state, x, y, mask)`` (evaluation mode:
    batch norm normalises with the running statistics).

    Examples:
      >>> import jax, jax.numpy as jnp, numpy as np, optax
      >>> from jcnn import nn
      >>> from jcnn.training import evaluate, make_eval_step, make_train_step
      >>> model = nn.serial(nn.Flatten, nn.Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> eval_step = make_eval_step(model)
      >>> loss_sum, correct = eval_step(params, jnp.ones((2, 4), jnp.float32), jnp.array([0, 1]),
      ...                               jnp.array([True, False]))
      >>> int(correct) <= 1
      True
    """
    step = _eval_fn(model)
    if model.stateful:
        return jax.jit(step)
    return jax.jit(lambda params, x, y, mask: step(params, {}, x, y, mask))


class DataParallel:
    """Shard batches over ``devices`` along a ``"data"`` mesh axis, replicate the rest."""

    def __init__(self, devices=None):
        self.devices = list(devices) if devices is not None else jax.devices()
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.batch = NamedSharding(self.mesh, P("data"))
        self.replicated = NamedSharding(self.mesh, P())

    @property
    def size(self) -> int:
        return len(self.devices)

    def shard(self, *arrays):
        return tuple(jax.device_put(a, self.batch) for a in arrays)

    def replicate(self, tree):
        """Copies of ``tree`` on every device: never the caller's own buffers, which the
        train step's donation would otherwise invalidate."""
        return jax.device_put(tree, self.replicated, may_alias=False)


def evaluate(eval_step, params, x, y, batch_size=500, parallel: DataParallel | None = None,
             *, state=None):
    """Mean loss and accuracy over ``(x, y)``, in fixed-size (padded, masked) batches.

    ``state`` is the model's state for a stateful model's ``eval_step``
    (:func:`make_eval_step`).  The batches' sums stay on the device until the end.

    Examples:
      >>> import jax, jax.numpy as jnp, numpy as np, optax
      >>> from jcnn import nn
      >>> from jcnn.training import evaluate, make_eval_step, make_train_step
      >>> model = nn.serial(nn.Flatten, nn.Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> loss, accuracy = evaluate(make_eval_step(model), params, np.ones((5, 4), np.float32),
      ...                           np.zeros(5, np.int32), batch_size=2)
      >>> accuracy in (0.0, 1.0)  # five equal inputs: all right or all wrong
      True
    """
    n = len(x)
    if parallel is not None:
        batch_size = math.ceil(batch_size / parallel.size) * parallel.size
    sums = []
    for start in range(0, n, batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        mask = np.ones(batch_size, bool)
        if len(xb) < batch_size:  # pad: one compiled shape for every batch
            pad = batch_size - len(xb)
            mask[len(xb):] = False
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
        if parallel is not None:
            xb, yb, mask = parallel.shard(xb, yb, mask)
        args = (params, xb, yb, mask) if state is None else (params, state, xb, yb, mask)
        sums.append(eval_step(*args))
    total_loss = sum(float(loss) for loss, _ in sums)
    correct = sum(int(c) for _, c in sums)
    return total_loss / max(n, 1), correct / max(n, 1)


def predict(model: Layer, params, x, *, state=None, batch_size: int = 1000) -> np.ndarray:
    """Predicted classes (argmax of the logits) of ``x`` in evaluation mode, in
    jitted fixed-size batches; ``state`` for a stateful model.

    Examples:
      >>> import jax, numpy as np
      >>> from jcnn import nn
      >>> from jcnn.training import predict
      >>> model = nn.serial(nn.Flatten, nn.Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> predict(model, params, np.ones((5, 4), np.float32), batch_size=2).shape
      (5,)
    """
    if model.stateful and state is None:
        raise TypeError("predict: the model has state (batch norm); pass state=")
    state = state if model.stateful else {}
    classes = jax.jit(lambda p, s, xb: jnp.argmax(
        apply_with_state(model, p, s, xb, train=False)[0], -1))
    out = []
    for start in range(0, len(x), batch_size):
        xb = np.asarray(x[start:start + batch_size])
        pad = batch_size - len(xb) if len(x) > batch_size else 0
        if pad:  # one compiled shape
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
        out.append(np.asarray(classes(params, state, xb))[:len(xb) - pad])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


@dataclass
class History:
    """Per-epoch metrics of a :func:`fit` run."""

    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def as_dict(self):
        return {k: list(v) for k, v in self.__dict__.items()}


def _chunk_length(steps: int, target: int = 32) -> int:
    """Steps per jitted call: the largest divisor of ``steps`` up to ``target``, so
    every call of an epoch has one shape (one compilation)."""
    return max(d for d in range(1, min(steps, target) + 1) if steps % d == 0)


def _make_run_steps(model, optimizer, loss, parallel, augment=None):
    """``run(params, state, opt_state, x_all, y_all, idx, keys)``: ``len(idx)`` train
    steps in one jitted ``lax.scan``, each gathering its batch ``x_all[idx[i]]``
    from the device-resident data (and augmenting it with ``augment(key, x)``)
    — no host work between the steps."""
    step = _step_fn(model, optimizer, loss)

    def run(params, state, opt_state, x_all, y_all, idx, keys):
        def body(carry, inputs):
            rows, key = inputs
            xb = x_all[rows]
            if augment is not None:
                aug_key, key = jax.random.split(key)
                xb = augment(aug_key, xb)
            xb = jax.lax.with_sharding_constraint(xb, parallel.batch)
            yb = jax.lax.with_sharding_constraint(y_all[rows], parallel.batch)
            params, state, opt_state, value, accuracy = step(*carry, xb, yb, key)
            return (params, state, opt_state), (value, accuracy)

        carry, (values, accuracies) = jax.lax.scan(body, (params, state, opt_state),
                                                   (idx, keys))
        return (*carry, values, accuracies)

    return jax.jit(run, donate_argnums=(0, 1, 2))


def fit(
    model: Layer,
    data,
    *,
    input_shape,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    parallel: DataParallel | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    optimizer: optax.GradientTransformation | None = None,
    loss: Callable = softmax_cross_entropy,
    augment: Callable | None = None,
):
    """Train ``model`` on ``data = (x_train, y_train, x_test, y_test)``.

    ``optimizer`` is any optax ``GradientTransformation``; by default adam
    whose learning rate follows a cosine decay from ``lr`` to 0 over all
    ``epochs`` (so a resumed run with the same ``epochs`` continues exactly).
    ``loss(logits, labels)`` is the training loss (softmax cross-entropy by
    default; evaluation reports cross-entropy and accuracy).  ``augment(key, x)``
    (e.g. :func:`jcnn.augment.flip_and_shift`) transforms each training batch
    inside the jitted step; evaluation sees the images as they are.
    ``stop_after`` ends this call after that many epochs, as an interruption
    would; ``resume`` picks up from the checkpoint.  ``progress`` shows a
    tqdm bar when tqdm is installed, else one line per epoch.

    Shuffled mini-batches (a fresh permutation each epoch, the last partial
    batch dropped so every step has one shape), evaluation on the held-out
    split after each epoch, a checkpoint ``out_dir/checkpoint.npz`` after each
    epoch when ``out_dir`` is given, and with ``resume`` a restart from it.
    The training split is copied to the device once; each jitted call runs a
    chunk of steps (``lax.scan``) that gathers its batches there, so the host
    only hands over the epoch's permutation.

    Returns ``(params, history, stats)`` — for a model with state (batch norm)
    ``(params, state, history, stats)``, the state being what evaluation uses
    (checkpoints hold it too).  ``stats`` holds the training seconds of this
    call (the train step is compiled before the clock starts, so compilation
    is excluded: it is ``stats["compile_seconds"]``), images per second and
    epochs run.

    Examples:
      >>> import jcnn
      >>> from jcnn import nn
      >>> from jcnn.training import fit
      >>> model = nn.serial(nn.Conv(8, (3, 3), padding="SAME"), nn.Relu, nn.MaxPool((2, 2)),
      ...                   nn.Flatten, nn.Dense(10))
      >>> params, history, stats = fit(model, jcnn.data.load_digits(), input_shape=(-1, 8, 8, 1),
      ...                              epochs=2, lr=1e-2, progress=False)
      >>> len(history.test_accuracy), history.test_accuracy[-1] > 0.5
      (2, True)
    """
    x_tr, y_tr, x_te, y_te = data
    parallel = parallel or DataParallel(jax.devices()[:1])
    if batch_size % parallel.size:
        raise ValueError(f"fit: batch_size {batch_size} is not divisible by the "
                         f"{parallel.size} devices")
    if batch_size > len(x_tr):
        raise ValueError(f"fit: batch_size {batch_size} exceeds the {len(x_tr)} training images")
    steps = len(x_tr) // batch_size
    steps_total = max(epochs * steps, 1)
    if optimizer is None:
        optimizer = optax.adam(optax.cosine_decay_schedule(lr, steps_total))
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"fit: `optimizer` must be an optax.GradientTransformation, got "
                        f"{type(optimizer).__name__}")
    key = jax.random.key(seed)
    init_key, key = jax.random.split(key)
    _, params, state = init_with_state(model, init_key, input_shape)
    opt_state = optimizer.init(params)
    history, start_epoch = History(), 0
    ckpt = Path(out_dir) / "checkpoint.npz" if out_dir is not None else None
    trees = (params, opt_state, state) if model.stateful else (params, opt_state)
    if resume:
        if ckpt is None or not ckpt.is_file():
            raise FileNotFoundError(f"fit: --resume needs a checkpoint, none at {ckpt}")
        trees, meta = checkpoint.restore(ckpt, trees)
        start_epoch = int(meta["epoch"])
        history = History(**meta["history"])
    params, opt_state, *rest = parallel.replicate(trees)
    state = rest[0] if model.stateful else {}
    eval_step = jax.jit(_eval_fn(model))
    if augment is not None and not callable(augment):
        raise TypeError(f"fit: `augment` must be a function (key, x) -> x, got {augment!r}")
    run_steps = _make_run_steps(model, optimizer, loss, parallel, augment)
    x_all, y_all = parallel.replicate((np.asarray(x_tr), np.asarray(y_tr)))
    chunk = _chunk_length(steps)
    last_epoch = epochs if stop_after is None else min(epochs, start_epoch + stop_after)

    def epoch_plan(epoch):  # the same permutation and step keys whether resumed or not
        epoch_key = jax.random.fold_in(key, epoch)
        perm = np.asarray(jax.random.permutation(epoch_key, len(x_tr)))
        idx = perm[:steps * batch_size].reshape(steps, batch_size)
        keys = jax.vmap(partial(jax.random.fold_in, epoch_key))(jnp.arange(1, steps + 1))
        return idx, keys

    t0 = time.perf_counter()  # compile once, before the clock starts
    idx, keys = epoch_plan(start_epoch)
    run_steps = run_steps.lower(params, state, opt_state, x_all, y_all, idx[:chunk],
                                keys[:chunk]).compile()
    compile_seconds = time.perf_counter() - t0
    bar = _progress_bar((last_epoch - start_epoch) * steps) if progress else None
    train_seconds, images = 0.0, 0
    for epoch in range(start_epoch, last_epoch):
        idx, keys = epoch_plan(epoch)
        losses, accs = [], []
        t0 = time.perf_counter()
        for c in range(0, steps, chunk):
            params, state, opt_state, values, accuracies = run_steps(
                params, state, opt_state, x_all, y_all, idx[c:c + chunk], keys[c:c + chunk])
            losses.append(values)
            accs.append(accuracies)
            if bar is not None:
                bar.update(chunk)
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(values[-1]):.4f}",
                                acc=f"{float(accuracies[-1]):.3f}")
        jax.block_until_ready(params)
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        images += steps * batch_size
        test_loss, test_acc = evaluate(eval_step, params, x_te, y_te, parallel=parallel,
                                       state=state)
        history.train_loss.append(float(np.mean(np.concatenate(losses))))
        history.train_accuracy.append(float(np.mean(np.concatenate(accs))))
        history.test_loss.append(test_loss)
        history.test_accuracy.append(test_acc)
        history.seconds.append(seconds)
        if bar is not None:
            bar.set_postfix(epoch=epoch + 1, loss=f"{history.train_loss[-1]:.4f}",
                            test_acc=f"{test_acc:.4f}")
        elif progress:
            print(f"epoch {epoch + 1}/{epochs}: loss {history.train_loss[-1]:.4f}, "
                  f"test accuracy {test_acc:.4f} ({seconds:.1f} s)", flush=True)
        if ckpt is not None:
            trees = (params, opt_state, state) if model.stateful else (params, opt_state)
            checkpoint.save(ckpt, trees,
                            metadata={"epoch": epoch + 1, "history": history.as_dict(),
                                      "seed": seed, "lr": lr, "batch_size": batch_size})
    if bar is not None:
        bar.close()
    ran = last_epoch - start_epoch
    stats = {"train_seconds": float(sum(history.seconds[-ran:])) if ran > 0 else 0.0,
             "images_per_second": images / train_seconds if train_seconds else 0.0,
             "compile_seconds": compile_seconds,
             "epochs": len(history.test_accuracy)}
    if model.stateful:
        return params, state, history, stats
    return params, history, stats


def _progress_bar(total):
    """A tqdm bar when tqdm is installed (an optional extra), else None (``fit``
    then prints one line per epoch)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        print("fit: tqdm is not installed; printing one line per epoch instead of a bar",
              file=sys.stderr)
        return None
    return tqdm(total=total, unit="step", leave=True)
