"""Adaptive pooling: pool to a target spatial size (PyTorch's windows).

Output ``i`` of a dim of size ``n`` pooled to ``o`` covers the input range
``[⌊i·n/o⌋, ⌈(i+1)·n/o⌉)``; windows may differ in size and overlap.  Each
spatial dim is pooled on its own, last dim first (so the max's gradient goes
to the row-major first maximum, as :func:`jcnn.max_pool`).  Channels-last.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import acc_dtype, as_float_array
from ._pool_windows import spatial_dims
from .padding import ntuple

__all__ = ["adaptive_avg_pool", "adaptive_max_pool"]


def _adaptive_bounds(n: int, o: int):
    return [(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]


def _avg_matrix(n: int, o: int) -> np.ndarray:
    """``(o, n)``: row ``i`` averages input window ``i``."""
    a = np.zeros((o, n))
    for i, (s, e) in enumerate(_adaptive_bounds(n, o)):
        a[i, s:e] = 1.0 / (e - s)
    return a


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _adaptive_avg_last(x, n, o):
    acc = acc_dtype(x.dtype)
    a = jnp.asarray(_avg_matrix(n, o), acc)
    return jnp.einsum("...n,on->...o", x.astype(acc), a).astype(x.dtype)


def _adaptive_avg_last_fwd(x, n, o):
    return _adaptive_avg_last(x, n, o), None


def _adaptive_avg_last_bwd(n, o, _, g):
    acc = acc_dtype(g.dtype)  # dX = Aᵀ dY: each cotangent spread evenly over its window
    a = jnp.asarray(_avg_matrix(n, o), acc)
    return (jnp.einsum("...o,on->...n", g.astype(acc), a).astype(g.dtype),)


_adaptive_avg_last.defvjp(_adaptive_avg_last_fwd, _adaptive_avg_last_bwd)


def _adaptive_max_forward(x, n, o):
    parts = [jnp.max(x[..., s:e], axis=-1, keepdims=True) for s, e in _adaptive_bounds(n, o)]
    return jnp.concatenate(parts, axis=-1)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _adaptive_max_last(x, n, o):
    return _adaptive_max_forward(x, n, o)


def _adaptive_max_last_fwd(x, n, o):
    return _adaptive_max_forward(x, n, o), x


def _adaptive_max_last_bwd(n, o, x, g):
    # each window's cotangent to its first maximum (argmax picks the first; a NaN wins)
    xs = jax.lax.stop_gradient(x)
    dx = jnp.zeros(x.shape, g.dtype)
    for i, (s, e) in enumerate(_adaptive_bounds(n, o)):
        arg = s + jnp.argmax(xs[..., s:e], axis=-1)
        dx = dx + jnp.where(jnp.arange(n) == arg[..., None], g[..., i:i + 1], 0)
    return (dx,)


_adaptive_max_last.defvjp(_adaptive_max_last_fwd, _adaptive_max_last_bwd)


def _adaptive(fn, x, output_size, last_op):
    x = as_float_array(x, "x", fn)
    nd = spatial_dims(fn, x, output_size, "output_size")
    out = ntuple(output_size, nd, "output_size", fn)
    for i in reversed(range(nd)):  # last dim first: row-major first maximum
        axis = i + 1
        n = x.shape[axis]
        if n == 0:
            raise ValueError(f"{fn}: spatial dim {i} of x.shape={x.shape} is empty")
        if out[i] == n:
            continue
        xt = jnp.moveaxis(x, axis, -1)
        x = jnp.moveaxis(last_op(xt, n, out[i]), -1, axis)
    return x


def adaptive_avg_pool(x: jax.typing.ArrayLike, output_size) -> jax.Array:
    """Average pooling to a target spatial size (PyTorch's ``adaptive_avg_pool``).

    Output ``i`` averages input ``[⌊i·n/o⌋, ⌈(i+1)·n/o⌉)`` in each spatial dim;
    windows may differ in size and overlap.  ``output_size`` has one entry
    per spatial dim.  Backward: ``dX = Aᵀ dY``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.adaptive_avg_pool(jnp.arange(5.0).reshape(1, 5, 1), (2,))[0, :, 0].tolist()
      [1.0, 3.0]
    """
    return _adaptive("adaptive_avg_pool", x, output_size, _adaptive_avg_last)


def adaptive_max_pool(x: jax.typing.ArrayLike, output_size) -> jax.Array:
    """Max pooling to a target spatial size (PyTorch's windows); gradients go to
    each window's first maximum in row-major order, as :func:`jcnn.max_pool`.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.adaptive_max_pool(jnp.arange(5.0).reshape(1, 5, 1), (2,))[0, :, 0].tolist()
      [2.0, 4.0]
    """
    return _adaptive("adaptive_max_pool", x, output_size, _adaptive_max_last)
