"""Train, evaluate and run any :mod:`jcnn.nn` model: classifiers, regressors, autoencoders.

:func:`fit` checks the data (``jcnn._fit_data``), places it on the devices once,
runs chunks of jitted train steps in one ``lax.scan`` each (``jcnn._fit_steps``),
evaluates the test split after each epoch, checkpoints and reports
(``jcnn._fit_record``).  ``loss(outputs, targets)`` drives training and
evaluation; ``metrics`` are more ``(outputs, targets) -> scalar`` functions.
With several devices — or several processes under ``jax.distributed`` — each
batch is sharded over a ``jax.sharding.Mesh`` and the parameters replicated;
the same step runs unchanged, XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _fit_data as fd
from ._fit_data import DataParallel
from ._fit_record import Checkpoints, History, Progress
from ._fit_steps import chunk_fn, chunk_length, eval_step_fn, run_epoch, run_eval, train_step_fn
from .combinators import mixed_precision
from .layer import Layer, apply_with_state
from .losses import softmax_cross_entropy

__all__ = ["DataParallel", "FitResult", "History", "TrainingDiverged", "evaluate", "fit",
           "make_eval_step", "make_train_step", "predict"]


class FitResult(NamedTuple):
    """What :func:`fit` returns: ``params``, ``state`` (``{}`` for a model without
    state), the per-epoch ``history`` and ``stats`` (``train_seconds`` — the train
    step is compiled before the clock starts, that is ``compile_seconds`` —
    ``images_per_second``, ``epochs``, ``skipped_steps``)."""

    params: Any
    state: Any
    history: History
    stats: dict


class TrainingDiverged(FloatingPointError):
    """The loss (or a parameter) became NaN or infinite; ``result`` is the
    :class:`FitResult` with the parameters of the last finite step."""

    def __init__(self, message: str, result: FitResult):
        super().__init__(message)
        self.result = result


def make_train_step(model: Layer, optimizer: optax.GradientTransformation,
                    loss: Callable = softmax_cross_entropy, metrics: dict | None = None):
    """``step(params, opt_state, x, y, key) -> (params, opt_state, loss, metrics)``, jitted.

    ``loss(outputs, targets)`` is a scalar, ``metrics`` a dict of more such
    functions (their values come back as a dict).  ``params`` and ``opt_state``
    are donated: pass the returned ones to the next step.  For a model with
    state (batch norm): ``step(params, state, opt_state, x, y, key) -> (params,
    state, opt_state, loss, metrics)`` (``state`` donated too; the forward runs
    in training mode, so the returned state holds the updated running statistics).

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jcnn import nn
      >>> from jcnn.training import make_train_step
      >>> model = nn.serial(nn.Flatten, nn.Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> opt = optax.sgd(0.1)
      >>> step = make_train_step(model, opt, metrics={"accuracy": lambda z, y: jnp.mean(
      ...     jnp.argmax(z, -1) == y)})
      >>> x, y = jnp.ones((2, 4), jnp.float32), jnp.array([0, 1])
      >>> params, opt_state, loss, metrics = step(params, opt.init(params), x, y, jax.random.key(1))
      >>> loss.shape, float(metrics["accuracy"]) in (0.0, 0.5, 1.0)
      ((), True)
    """
    step = train_step_fn(model, optimizer, loss, dict(metrics or {}))
    if model.stateful:
        return jax.jit(step, donate_argnums=(0, 1, 2))

    @partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, x, y, key):
        params, _, opt_state, value, values = step(params, {}, opt_state, x, y, key)
        return params, opt_state, value, values

    return train_step


def make_eval_step(model: Layer, loss: Callable = softmax_cross_entropy,
                   metrics: dict | None = None):
    """``step(params, state, x, y) -> {"loss": ..., metric: ...}`` (batch means), jitted;
    evaluation mode (batch norm reads its running statistics); ``state`` is ``{}``
    for a model without state.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jcnn import nn
      >>> from jcnn.training import make_eval_step
      >>> model = nn.serial(nn.Flatten, nn.Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> values = make_eval_step(model)(params, {}, jnp.ones((2, 4), jnp.float32),
      ...                               jnp.array([0, 1]))
      >>> sorted(values), values["loss"].shape
      (['loss'], ())
    """
    return jax.jit(eval_step_fn(model, loss, dict(metrics or {})))


def _state_for(fn, model, state):
    if model.stateful and state is None:
        raise TypeError(f"{fn}: the model has state (e.g. batch norm's running statistics); "
                        f"pass state= (fit's result.state, or nn.init_with_state's)")
    return state if model.stateful else {}


_COMPILED: OrderedDict = OrderedDict()  # (id(model), purpose …) -> (model, jitted function)


def _compiled(model, kind, loss, metrics, compute_dtype):
    """One jitted function per model and purpose (jit then keeps one program per shape);
    the 32 most recent are kept.  Keyed by the model's identity: a layer's config
    may hold lists, and the entry keeps the model alive, so its id stays its own."""
    key = (id(model), kind, loss, metrics, compute_dtype)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key][1]
    wrapped = mixed_precision(model, compute_dtype) if compute_dtype is not None else model
    if kind == "eval":
        fn = jax.jit(eval_step_fn(wrapped, loss, dict(metrics)))
    else:
        outputs = {"logits": lambda z: z, "probs": lambda z: jax.nn.softmax(z, -1),
                   "classes": lambda z: jnp.argmax(z, -1)}[kind]
        fn = jax.jit(lambda p, s, x: outputs(apply_with_state(wrapped, p, s, x)[0]))
    _COMPILED[key] = (model, fn)
    if len(_COMPILED) > 32:
        _COMPILED.popitem(last=False)
    return fn


def evaluate(model: Layer, params, x, y, *, state=None, loss: Callable = softmax_cross_entropy,
             metrics: dict | None = None, batch_size: int = 500, compute_dtype=None) -> dict:
    """Mean ``loss`` and ``metrics`` of ``model`` over ``(x, y)`` in evaluation mode:
    ``{"loss": ..., name: ...}``, in batches weighted by their size; ``state`` for a
    model with state.  Compiled once per model, functions and batch shape.

    Examples:
      >>> import jax, numpy as np
      >>> from jcnn import nn
      >>> from jcnn.training import evaluate
      >>> model = nn.serial(nn.Flatten, nn.Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> x, y = np.ones((5, 4), np.float32), np.zeros(5, np.int32)
      >>> values = evaluate(model, params, x, y, batch_size=2,
      ...                   metrics={"accuracy": lambda z, y: (z.argmax(-1) == y).mean()})
      >>> values["accuracy"] in (0.0, 1.0)  # five equal inputs: all right or all wrong
      True
    """
    state = _state_for("evaluate", model, state)
    metrics = tuple(sorted((metrics or {}).items()))
    step = _compiled(model, "eval", loss, metrics, compute_dtype)
    return run_eval(step, params, state, np.asarray(x), np.asarray(y), batch_size)


def predict(model: Layer, params, x, *, state=None, output: str = "classes",
            batch_size: int = 1000, compute_dtype=None) -> np.ndarray:
    """``model``'s outputs for ``x`` in evaluation mode: ``output="logits"`` (the model's
    outputs as they are), ``"probs"`` (their softmax) or ``"classes"`` (their argmax);
    ``state`` for a model with state.  Fixed-size batches (a last partial batch is
    padded), compiled once per model, output and shape.

    Examples:
      >>> import jax, numpy as np
      >>> from jcnn import nn
      >>> from jcnn.training import predict
      >>> model = nn.serial(nn.Flatten, nn.Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> predict(model, params, np.ones((5, 4), np.float32), batch_size=2).shape
      (5,)
      >>> predict(model, params, np.ones((5, 4), np.float32), output="probs").sum(-1).round(4)
      array([1., 1., 1., 1., 1.], dtype=float32)
    """
    if output not in ("logits", "probs", "classes"):
        raise ValueError(f"predict: `output` must be 'logits', 'probs' or 'classes', got "
                         f"{output!r}")
    state = _state_for("predict", model, state)
    run = _compiled(model, output, None, (), compute_dtype)
    x = np.asarray(x)
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        pad = batch_size - len(xb) if len(x) > batch_size else 0
        if pad:  # one compiled shape
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
        out.append(np.asarray(run(params, state, xb))[:len(xb) - pad])
    if not out:
        raise ValueError("predict: no examples (x has length 0)")
    return np.concatenate(out)


def fit(
    model: Layer,
    data,
    *,
    input_shape,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    loss: Callable = softmax_cross_entropy,
    metrics: dict | None = None,
    params=None,
    state=None,
    optimizer: optax.GradientTransformation | None = None,
    augment: Callable | None = None,
    compute_dtype=None,
    on_nonfinite: str = "raise",
    out_dir: str | Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    parallel: DataParallel | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` on ``data = (x_train, y_train)`` or ``(x_train, y_train, x_test,
    y_test)``; returns a :class:`FitResult` ``(params, state, history, stats)``.

    ``loss(outputs, targets)`` (a batch mean) drives training and evaluation;
    ``metrics`` is a dict of more ``(outputs, targets) -> scalar`` functions,
    reported per epoch as ``history.train_<name>`` / ``history.test_<name>``.
    Integer class labels (``(N,)``, ``(N, 1)`` or one per output position) get
    ``accuracy`` by default.  ``params``/``state`` start from given weights
    (default: ``model.init(jax.random.key(seed), input_shape)``'s).  ``optimizer`` is any
    optax ``GradientTransformation``; by default adam with its rate cosine-decayed
    from ``lr`` to 0 over all ``epochs``.  ``augment(key, x)`` transforms each
    training batch inside the jitted step.  ``compute_dtype=jnp.bfloat16`` trains
    in mixed precision (``jcnn.nn.mixed_precision``: f32 parameters and optimizer).

    Before the first step, in eager code: the examples' shape against
    ``input_shape``, matching lengths, finite inputs and targets, class labels
    inside ``[0, classes)``, and the loss and metrics on the shapes.  A step
    whose loss or parameters are not finite stops training with
    :class:`TrainingDiverged` (the epoch and step in its message, the last finite
    parameters in its ``result``); ``on_nonfinite="skip"`` skips such steps instead.

    Each epoch: a fresh permutation, the last partial batch dropped (one shape
    for every step); the training split lives on the devices and each jitted
    call runs a chunk of steps in one ``lax.scan``.  ``out_dir`` gets a checkpoint
    ``checkpoint.npz`` after each epoch (``jcnn.checkpoint.load_params`` reads its
    weights); ``resume`` continues from it exactly; ``stop_after`` ends this call
    after that many epochs, as an interruption would.  ``progress``: a tqdm bar
    when tqdm is installed, else one line per epoch.  Under
    ``jax.distributed.initialize`` every process calls ``fit`` with the same
    data; the batches are split over all processes' devices, the parameters stay
    identical, process 0 writes the checkpoints.

    Examples:
      >>> import jcnn
      >>> from jcnn import nn
      >>> from jcnn.training import fit
      >>> model = nn.serial(nn.Conv(8, 3, padding="SAME"), nn.Relu, nn.MaxPool(2),
      ...                   nn.Flatten, nn.Dense(10))
      >>> result = fit(model, jcnn.data.load_digits(), input_shape=(-1, 8, 8, 1), epochs=2,
      ...              lr=1e-2, progress=False)
      >>> len(result.history.test_accuracy), result.history.test_accuracy[-1] > 0.5
      (2, True)
    """
    x_tr, y_tr, x_te, y_te = fd.split("fit", data)
    model = mixed_precision(model, compute_dtype) if compute_dtype is not None else model
    parallel = parallel or DataParallel()
    if on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"fit: `on_nonfinite` must be 'raise' or 'skip', got {on_nonfinite!r}")
    if augment is not None and not callable(augment):
        raise TypeError(f"fit: `augment` must be a function (key, x) -> x, got {augment!r}")
    if batch_size % parallel.size or batch_size > len(x_tr):
        raise ValueError(f"fit: batch_size {batch_size} must divide over the {parallel.size} "
                         f"device(s) and not exceed the {len(x_tr)} training examples")
    for x, name in ((x_tr, "x_train"), (x_te, "x_test")):
        if x is not None:
            fd.check_inputs("fit", x, name, input_shape)
    init_key = jax.random.key(seed)  # the initial params are model.init(init_key, input_shape)
    key = jax.random.fold_in(init_key, 0x5EED)  # data order, dropout: not a layer's init key
    params, state, out_shape = fd.start_weights(model, init_key, input_shape, params, state)
    y_tr, y_te, metrics = fd.targets(y_tr, y_te, out_shape, loss, metrics)
    steps = len(x_tr) // batch_size
    if optimizer is None:
        optimizer = optax.adam(optax.cosine_decay_schedule(lr, max(epochs * steps, 1)))
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"fit: `optimizer` must be an optax.GradientTransformation, got "
                        f"{type(optimizer).__name__}")
    # what training carries (and checkpoints): the params, the model's state, the optimizer's
    trees = (params, state, optimizer.init(params))
    history, start, ckpts = History(), 0, Checkpoints(out_dir)
    if resume:
        trees, history, start = ckpts.restore(trees)
    trees = parallel.replicate(trees)
    put = partial(fd.global_array, sharding=parallel.replicated)
    args = (*parallel.replicate((x_tr, y_tr)), put(jax.random.key_data(key)))
    run = chunk_fn(train_step_fn(model, optimizer, loss, metrics), parallel.batch, augment,
                   on_nonfinite == "skip")
    eval_step = jax.jit(eval_step_fn(model, loss, metrics))
    last = epochs if stop_after is None else min(epochs, start + stop_after)
    chunk = chunk_length(steps)

    t0 = time.perf_counter()  # compile once, before the clock starts
    rows = fd.epoch_rows(key, start, len(x_tr), steps, batch_size)
    run = run.lower(*trees, put(np.bool_(False)), *args[:2], put(rows[:chunk]), args[2],
                    put(np.int32(0))).compile()
    stats = {"train_seconds": 0.0, "images_per_second": 0.0, "epochs": len(history),
             "compile_seconds": time.perf_counter() - t0, "skipped_steps": 0}
    shown = Progress(progress, (last - start) * steps, epochs)

    def on_chunk(n, losses):  # for the bar only: it waits for each chunk's losses
        shown.steps(n, epoch, float(losses.mean()) if losses.size else float("nan"))

    for epoch in range(start, last):
        rows, t0 = fd.epoch_rows(key, epoch, len(x_tr), steps, batch_size), time.perf_counter()
        trees, values = run_epoch(run, trees, rows, chunk, put, args, epoch * steps + 1,
                                  on_chunk if shown.bar is not None else None)
        jax.block_until_ready(trees)
        if not values.finite.all() and on_nonfinite == "raise":
            shown.close()
            step = int(np.argmin(values.finite))
            raise TrainingDiverged(
                f"fit: the loss or the parameters became non-finite (loss "
                f"{values.losses[step]}) at epoch {epoch + 1}, step {step + 1} of {steps}; "
                f"training stopped with the parameters of the last finite step (this "
                f"exception's `result`). Lower lr, or pass on_nonfinite='skip' to skip such "
                f"steps", FitResult(*fd.local(trees[:2]), history, stats))
        seconds = time.perf_counter() - t0
        record = values.means()
        if x_te is not None:
            tested = run_eval(eval_step, *trees[:2], x_te, y_te, 500, parallel)
            record.update({f"test_{k}": v for k, v in tested.items()})
        history.append(**record, seconds=seconds)
        stats["skipped_steps"] += int((~values.finite).sum())
        stats["train_seconds"] += seconds
        stats["images_per_second"] = (epoch + 1 - start) * steps * batch_size / max(
            stats["train_seconds"], 1e-9)
        shown.epoch(epoch, history)
        ckpts.save(trees, epoch + 1, history, {"seed": seed, "lr": lr, "batch_size": batch_size})
    shown.close()
    stats["epochs"] = len(history)
    return FitResult(*fd.local(trees[:2]), history, stats)
