"""``fit``'s data: the checks made before the first step, and where the arrays live.

Checks run eagerly, on the host, before anything is compiled: matching lengths,
the examples' shape against ``input_shape``, finite inputs and targets, and —
for integer labels of a classifier — each label inside ``[0, classes)``.  Each
error names the argument (``x_train``, ``y_test`` …) and the first offending
position.

Placement: :class:`DataParallel` holds a ``jax.sharding.Mesh`` over the
devices of every process (one axis, ``"data"``).  Arrays are built with
``jax.make_array_from_callback`` from host arrays that every process holds
whole, so each process hands its own devices exactly their rows — the same code
runs in one process and under ``jax.distributed.initialize``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .layer import init_with_state

__all__ = ["DataParallel"]


def global_array(a, sharding) -> jax.Array:
    """``a`` placed by ``sharding``, from a private host copy (so a later donation of
    the device buffer never touches the caller's array)."""
    a = np.array(a)
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


class DataParallel:
    """Shard batches over ``devices`` along a ``"data"`` mesh axis, replicate the rest.

    ``devices`` defaults to every device of every process (``jax.devices()``); under
    ``jax.distributed.initialize`` that spans all hosts, and each process feeds the
    rows of every batch that its own devices hold.
    """

    def __init__(self, devices=None):
        self.devices = list(devices) if devices is not None else jax.devices()
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.batch = NamedSharding(self.mesh, P("data"))
        self.replicated = NamedSharding(self.mesh, P())

    @property
    def size(self) -> int:
        return len(self.devices)

    def shard(self, *arrays):
        """Host arrays (the whole batch, on every process) split by rows over the devices."""
        return tuple(global_array(a, self.batch) for a in arrays)

    def replicate(self, tree):
        """Copies of ``tree`` on every device: never the caller's own buffers, which the
        train step's donation would otherwise invalidate."""
        return jax.tree_util.tree_map(
            lambda a: global_array(jax.device_get(a), self.replicated), tree)


def local(tree):
    """``tree``'s (replicated) arrays as arrays of this process's default device: what
    ``fit`` returns when several processes share the run."""
    if jax.process_count() == 1:
        return tree
    return jax.tree_util.tree_map(lambda a: jax.numpy.asarray(np.asarray(a)), tree)


def split(fn: str, data):
    """``data`` as ``(x_train, y_train, x_test, y_test)`` numpy arrays; the test pair is
    ``None`` when ``data`` is ``(x, y)`` or ``(x, y, None, None)``."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
        raise TypeError(f"{fn}: `data` must be (x_train, y_train) or (x_train, y_train, "
                        f"x_test, y_test), got {type(data).__name__}"
                        + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""))
    x_tr, y_tr, x_te, y_te = (*data, None, None)[:4]
    if (x_te is None) != (y_te is None):
        raise TypeError(f"{fn}: give both x_test and y_test, or neither (got "
                        f"{'x_test' if y_te is None else 'y_test'} alone)")
    out = [np.asarray(a) if a is not None else None for a in (x_tr, y_tr, x_te, y_te)]
    _same_length(fn, "train", out[0], out[1])
    if out[2] is not None:
        _same_length(fn, "test", out[2], out[3])
        if len(out[2]) == 0:
            raise ValueError(f"{fn}: the test split is empty (x_test has 0 examples); pass "
                             f"(x_train, y_train) to train without one")
    return tuple(out)


def _same_length(fn, split, x, y):
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(f"{fn}: x_{split} and y_{split} must hold the same number of "
                         f"examples, got x_{split}.shape={x.shape} and y_{split}.shape={y.shape}")


def check_inputs(fn: str, x, name: str, input_shape) -> None:
    """Examples of ``input_shape[1:]``, every value finite."""
    if tuple(x.shape[1:]) != tuple(input_shape[1:]):
        raise ValueError(f"{fn}: {name} holds examples of shape {tuple(x.shape[1:])} but "
                         f"input_shape is {tuple(input_shape)}")
    check_finite(fn, x, name)


def check_finite(fn: str, a, name: str) -> None:
    """ValueError naming the first NaN or infinity of a floating ``a``."""
    if not np.issubdtype(a.dtype, np.floating) and a.dtype.name not in ("bfloat16",):
        return
    bad = ~np.isfinite(a.astype(np.float32) if a.dtype.name == "bfloat16" else a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{fn}: {name} holds {int(bad.sum())} non-finite value(s), the first "
                         f"{a[first]} at {name}[{', '.join(map(str, first))}]; every step "
                         f"would turn the parameters into NaN")


def accuracy(outputs, labels, ignore=None):
    """The share of positions whose largest output is the label (``ignore`` left out)."""
    hit = jnp.argmax(outputs, -1) == labels
    if ignore is None:
        return jnp.mean(hit)
    keep = labels != ignore
    return jnp.sum(hit & keep) / jnp.maximum(jnp.sum(keep), 1)


def labels_for(fn: str, y, name: str, out_shape):
    """Class labels against outputs of ``out_shape = (N, *positions, K)``: integer ``y``
    of shape ``(N, *positions)`` (``(N, 1)`` read as ``(N,)``); ``None`` when ``y``
    is not of that kind (a regression target, one-hot rows)."""
    if not np.issubdtype(y.dtype, np.integer) or len(out_shape) < 2 or out_shape[-1] < 2:
        return None
    if y.ndim == 2 and y.shape[1] == 1 and len(out_shape) == 2:
        y = y[:, 0]
    return y if tuple(y.shape[1:]) == tuple(out_shape[1:-1]) else None


def check_labels(fn: str, y, name: str, classes: int, ignore=None) -> None:
    """Every label in ``[0, classes)`` (``ignore``, the loss's ignored label, aside)."""
    bad = (y < 0) | (y >= classes)
    if ignore is not None:
        bad &= y != ignore
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{fn}: {name} holds {int(bad.sum())} label(s) outside [0, {classes}) "
                         f"for a model with {classes} outputs, the first {int(y[first])} at "
                         f"{name}[{', '.join(map(str, first))}]")


def epoch_rows(key, epoch: int, n: int, steps: int, batch_size: int) -> np.ndarray:
    """The rows of each step of ``epoch``, ``(steps, batch_size)``: a fresh permutation per
    epoch (the same whether the run was resumed or not), the last partial batch
    dropped so every step has one shape."""
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
    return perm[:steps * batch_size].reshape(steps, batch_size).astype(np.int32)


def start_weights(model, key, input_shape, params, state):
    """``(params, state, output shape)``: the model's initial ones, or the given ones
    checked against them."""
    out_shape, init_params, init_state = init_with_state(model, key, input_shape)
    if params is None:
        return init_params, init_state, out_shape
    state = state if model.stateful and state is not None else init_state
    for name, given, want in (("params", params, init_params), ("state", state, init_state)):
        g, w = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (given, want))
        shapes = [(jax.tree_util.keystr(p), np.shape(a)) for p, a in g]
        if shapes != [(jax.tree_util.keystr(p), np.shape(a)) for p, a in w]:
            raise ValueError(f"fit: the given `{name}` do not fit the model on input_shape "
                             f"{tuple(input_shape)}: got {shapes[:3]}…, the model has "
                             f"{[(jax.tree_util.keystr(p), np.shape(a)) for p, a in w][:3]}…")
    return params, state, out_shape


def targets(y_tr, y_te, out_shape, loss, metrics):
    """Labels checked (and ``(N, 1)`` read as ``(N,)``) for a classifier, finite targets
    otherwise; the metrics (accuracy by default for class labels); the loss and
    each metric traced once on the shapes, so a mismatch fails here."""
    labels = labels_for("fit", y_tr, "y_train", out_shape)
    if labels is not None:
        ignore = getattr(loss, "keywords", {}).get("ignore_label")
        y_tr = labels
        check_labels("fit", y_tr, "y_train", out_shape[-1], ignore)
        if y_te is not None:
            test_labels = labels_for("fit", y_te, "y_test", out_shape)
            if test_labels is None:
                raise ValueError(f"fit: y_test ({y_te.dtype}{list(y_te.shape)}) are not class "
                                 f"labels like y_train's ({y_tr.dtype}{list(y_tr.shape)})")
            y_te = test_labels
            check_labels("fit", y_te, "y_test", out_shape[-1], ignore)
        if metrics is None:
            metrics = {"accuracy": partial(accuracy, ignore=ignore)}
    for name, y in (("y_train", y_tr), ("y_test", y_te)):
        if y is not None:
            check_finite("fit", y, name)
    metrics = dict(metrics or {})
    if "loss" in metrics:
        raise ValueError("fit: `metrics` may not name one 'loss' (the loss is reported as such)")
    outputs = jax.ShapeDtypeStruct((2, *out_shape[1:]), jnp.float32)
    targets = jax.ShapeDtypeStruct((2, *y_tr.shape[1:]), y_tr.dtype)
    for name, f in (("loss", loss), *((f"metrics[{k!r}]", f) for k, f in metrics.items())):
        try:
            shape = jax.eval_shape(f, outputs, targets).shape
        except Exception as e:
            kind = type(e) if isinstance(e, (TypeError, ValueError)) else ValueError
            raise kind(f"fit: {name}(outputs, targets) fails on outputs {outputs.shape} and "
                          f"targets {targets.shape} {targets.dtype}: {e}") from e
        if shape != ():
            raise ValueError(f"fit: {name}(outputs, targets) must return a scalar (a mean "
                             f"over the batch), got shape {shape}")
    return y_tr, y_te, metrics
