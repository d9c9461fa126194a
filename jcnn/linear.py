"""The dense head: ``Z = X W + b`` (article §1, §7) and ``flatten``.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§1, §7).

Backward, written by hand::

    dX = dZ Wᵀ        dW = Xᵀ dZ        db = Σ_n dZ[n]
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ._checks import acc_dtype, as_float_array, canonical_precision, same_dtype

__all__ = ["dense", "flatten"]


def _forward(x, w, b, precision):
    z = jnp.matmul(x, w, precision=precision, preferred_element_type=acc_dtype(x.dtype))
    if b is not None:
        z = z + b.astype(z.dtype)
    return z.astype(x.dtype)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _dense(x, w, b, precision):
    return _forward(x, w, b, precision)


def _dense_fwd(x, w, b, precision):
    return _forward(x, w, b, precision), (x, w, b)


def _dense_bwd(precision, res, g):
    x, w, b = res
    acc = acc_dtype(g.dtype)
    dx = jnp.matmul(g, w.T, precision=precision, preferred_element_type=acc).astype(x.dtype)
    dw = jnp.matmul(x.T, g, precision=precision, preferred_element_type=acc).astype(w.dtype)
    db = None if b is None else jnp.sum(g, axis=0, dtype=acc).astype(b.dtype)
    return dx, dw, db


_dense.defvjp(_dense_fwd, _dense_bwd)


def dense(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    precision: str | jax.lax.Precision | None = None,
) -> jax.Array:
    """Fully connected layer ``X W + b``.

    Args:
      x: ``(N, D_in)``.
      w: ``(D_in, D_out)``.
      b: optional ``(D_out,)``.
      precision: of both products, forward and backward, as ``lax.dot``'s
        (``None``, ``"default"``, ``"high"``, ``"highest"`` or a
        ``jax.lax.Precision``; see :func:`jcnn.conv`).

    Returns:
      ``(N, D_out)`` in ``x``'s dtype (bf16/f16 accumulate in f32).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.dense(jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.zeros(4)).tolist()[0]
      [3.0, 3.0, 3.0, 3.0]
    """
    fn = "dense"
    x, w = as_float_array(x, "x", fn), as_float_array(w, "w", fn)
    b = None if b is None else as_float_array(b, "b", fn)
    if x.ndim != 2 or w.ndim != 2:
        raise ValueError(
            f"{fn}: x must be (N, D_in) and w (D_in, D_out), got x.shape={x.shape}, "
            f"w.shape={w.shape} (flatten conv features first: jcnn.flatten)"
        )
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"{fn}: x has {x.shape[1]} features but w expects {w.shape[0]} "
            f"(x.shape={x.shape}, w.shape={w.shape})"
        )
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(
            f"{fn}: b must have shape ({w.shape[1]},), got b.shape={b.shape} "
            f"(w.shape={w.shape})"
        )
    same_dtype(fn, x=x, w=w, b=b)
    return _dense(x, w, b, canonical_precision(precision, fn))


def flatten(x: jax.typing.ArrayLike) -> jax.Array:
    """``(N, ...) → (N, -1)``: channels-last features in row-major order.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.flatten(jnp.ones((2, 4, 4, 3))).shape
      (2, 48)
    """
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"flatten: x must have a batch dim, got x.shape={x.shape}")
    return x.reshape(x.shape[0], -1)
