"""The compiled parts of ``fit``: one train step, a chunk of steps in one
``lax.scan``, one evaluation step, and evaluation over a whole split.

``loss(outputs, targets)`` and each metric ``(outputs, targets) -> scalar`` are
means over a batch's examples; evaluation weighs each batch by its size, so
their mean over a split is exact whatever the batch size.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._fit_data import global_array
from .layer import apply_with_state


def train_step_fn(model, optimizer, loss, metrics):
    """``step(params, state, opt_state, x, y, key) -> (params, state, opt_state, loss,
    {metric: value})``: the forward in training mode, ``jax.value_and_grad`` through
    jcnn's backward passes, an optax update."""

    def loss_fn(params, state, x, y, key):
        out, state = apply_with_state(model, params, state, x, key=key, train=True)
        return loss(out, y), (out, state)

    def step(params, state, opt_state, x, y, key):
        (value, (out, state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, state, x, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, state, opt_state, value, {n: f(out, y) for n, f in metrics.items()}

    return step


def chunk_length(steps: int, target: int = 32) -> int:
    """Steps per jitted call: the largest divisor of ``steps`` up to ``target``, so
    every call of an epoch has one shape (one compilation)."""
    return max(d for d in range(1, min(steps, target) + 1) if steps % d == 0)


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(a.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def chunk_fn(step, batch_sharding, augment, skip_nonfinite: bool):
    """``run(params, state, opt_state, stopped, x_all, y_all, rows, key_data, first)``:
    ``len(rows)`` train steps in one jitted ``lax.scan``, each gathering its batch
    ``x_all[rows[i]]`` from the device-resident data (augmented by ``augment(key,
    x)``) with the key ``fold_in(key, first + i)``.  A step whose loss or new
    parameters are not finite changes nothing; without ``skip_nonfinite`` it sets
    ``stopped``, and no later step changes anything either, so the carry keeps the
    last finite parameters.  Returns the carry (with ``stopped``), the losses, the
    metrics and which steps were finite."""

    def run(params, state, opt_state, stopped, x_all, y_all, rows, key_data, first):
        key = jax.random.wrap_key_data(key_data)

        def body(carry, inputs):
            old, stopped = carry[:3], carry[3]
            batch_rows, i = inputs
            k = jax.random.fold_in(key, first + i)
            xb = x_all[batch_rows]
            if augment is not None:
                aug_key, k = jax.random.split(k)
                xb = augment(aug_key, xb)
            xb = jax.lax.with_sharding_constraint(xb, batch_sharding)
            yb = jax.lax.with_sharding_constraint(y_all[batch_rows], batch_sharding)
            *new, value, values = step(*old, xb, yb, k)
            finite = jnp.isfinite(value) & _all_finite(new[0])
            keep = finite if skip_nonfinite else finite & ~stopped
            new = jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), tuple(new), old)
            stopped = stopped if skip_nonfinite else stopped | ~finite
            return (*new, stopped), (value, values, finite)

        steps = jnp.arange(rows.shape[0], dtype=jnp.int32)
        carry, (losses, values, finite) = jax.lax.scan(
            body, (params, state, opt_state, stopped), (rows, steps))
        return (*carry, losses, values, finite)

    return jax.jit(run, donate_argnums=(0, 1, 2))


class EpochValues(NamedTuple):
    """The steps of an epoch: ``losses``, ``metrics`` (name -> values), ``finite``."""

    losses: np.ndarray
    metrics: dict
    finite: np.ndarray

    def means(self) -> dict:
        """``train_loss`` and ``train_<metric>``, means over the finite steps."""
        def mean(a):
            return float(a[self.finite].mean()) if self.finite.any() else float("nan")

        return {"train_loss": mean(self.losses),
                **{f"train_{k}": mean(v) for k, v in self.metrics.items()}}


def run_epoch(run, trees: tuple, rows, chunk: int, put, args, first: int,
              on_chunk=None) -> tuple[tuple, EpochValues]:
    """An epoch's chunks of ``run`` (``chunk_fn``) over ``rows``; steps are numbered
    from ``first``.  The values stay on the devices until the epoch ends, unless
    ``on_chunk(steps, finite losses)`` wants them after each chunk (a progress bar)."""
    x_all, y_all, key_data = args
    stopped, parts = put(np.bool_(False)), []
    for c in range(0, len(rows), chunk):
        *trees, stopped, losses, metrics, finite = run(
            *trees, stopped, x_all, y_all, put(rows[c:c + chunk]), key_data,
            put(np.int32(first + c)))
        parts.append((losses, metrics, finite))
        if on_chunk is not None:
            on_chunk(chunk, np.asarray(losses)[np.asarray(finite)])
    parts = jax.tree_util.tree_map(np.asarray, parts)
    metrics = {k: np.concatenate([m[k] for _, m, _ in parts]) for k in parts[0][1]}
    return tuple(trees), EpochValues(np.concatenate([v for v, _, _ in parts]), metrics,
                                     np.concatenate([f for _, _, f in parts]))


def eval_step_fn(model, loss, metrics):
    """``step(params, state, x, y) -> {"loss": ..., metric: ...}`` in evaluation mode."""

    def step(params, state, x, y):
        out, _ = apply_with_state(model, params, state, x, train=False)
        return {"loss": loss(out, y), **{n: f(out, y) for n, f in metrics.items()}}

    return step


def run_eval(step, params, state, x, y, batch_size: int, parallel=None) -> dict:
    """Means of ``step``'s values over ``(x, y)`` in batches of ``batch_size`` (a last,
    smaller batch has its own shape), each weighted by its size; sharded over
    ``parallel``'s devices when given (a last batch they do not divide is
    replicated).  The values stay on the device until the end."""
    n = len(x)
    if n == 0:
        raise ValueError("evaluate: no examples (x has length 0)")
    if parallel is not None:
        batch_size = math.ceil(batch_size / parallel.size) * parallel.size
    parts = []
    for start in range(0, n, batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        if parallel is not None:
            if len(xb) % parallel.size == 0:
                xb, yb = parallel.shard(xb, yb)
            else:
                xb, yb = (global_array(a, parallel.replicated) for a in (xb, yb))
        parts.append((len(x[start:start + batch_size]), step(params, state, xb, yb)))
    return {name: sum(float(np.asarray(v[name])) * m for m, v in parts) / n
            for name in parts[0][1]}
