"""Activations ``A = g(Z)`` with their explicit derivatives (article §7, §9).

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§7, §9).

Each is a ``jax.custom_jvp`` whose tangent rule is the explicit derivative
``g′(Z)``; JAX transposes it into the backward the article writes as

    dZ = dA ⊙ g′(Z)

so reverse mode, forward mode and reverse-over-reverse all use the formula
below, never autodiff through the forward's internals.

=============  ================================  ==============================
activation     g(Z)                              g′(Z)
=============  ================================  ==============================
relu           max(Z, 0)                         1[Z > 0]   (relu′(0) = 0)
leaky_relu     Z if Z > 0 else αZ                1 if Z > 0 else α
sigmoid        1 / (1 + e^−Z)                    A (1 − A)    (from the output)
tanh           tanh Z                            1 − A²       (from the output)
softmax        e^Z / Σ e^Z                       dZ = A ⊙ (dA − Σ A ⊙ dA)
log_softmax    Z − log Σ e^Z                     dZ = dA − softmax(Z) Σ dA
=============  ================================  ==============================

NaN inputs give NaN outputs; ``relu``/``leaky_relu`` send zero (resp. ``α``)
gradient through a NaN, since ``NaN > 0`` is false.  ReLU's smooth successors
(``gelu``, ``silu``, ``elu``, ``softplus``, ``hard_swish``) are in
`jcnn.smooth_activations`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import acc_dtype, as_float_array

__all__ = ["leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]


@jax.custom_jvp
def _relu(z):
    return jnp.where(z > 0, z, jnp.where(jnp.isnan(z), z, jnp.zeros_like(z)))


@_relu.defjvp
def _relu_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    return _relu(z), jnp.where(z > 0, t, jnp.zeros_like(t))


def relu(x: jax.typing.ArrayLike) -> jax.Array:
    """``max(x, 0)``; derivative ``1[x > 0]`` (so ``relu′(0) = 0``).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.relu(jnp.array([-1.0, 0.0, 2.0])).tolist()
      [0.0, 0.0, 2.0]
    """
    return _relu(as_float_array(x, "x", "relu"))


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _leaky_relu(z, slope):
    return jnp.where(z > 0, z, slope * z)


@_leaky_relu.defjvp
def _leaky_relu_jvp(slope, primals, tangents):
    (z,), (t,) = primals, tangents
    return _leaky_relu(z, slope), jnp.where(z > 0, t, slope * t)


def leaky_relu(x: jax.typing.ArrayLike, negative_slope: float = 0.01) -> jax.Array:
    """``x`` where ``x > 0``, else ``negative_slope · x``; derivative 1 or the slope.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.leaky_relu(jnp.array([-2.0, 3.0]), 0.5).tolist()
      [-1.0, 3.0]
    """
    fn = "leaky_relu"
    if isinstance(negative_slope, (bool, np.bool_)) or not isinstance(
        negative_slope, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{fn}: `negative_slope` must be a Python number, got {negative_slope!r}")
    return _leaky_relu(as_float_array(x, "x", fn), float(negative_slope))


@jax.custom_jvp
def _sigmoid(z):
    return jax.lax.logistic(z)  # 1 / (1 + e^-z), computed without overflow


@_sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    a = _sigmoid(z)
    return a, t * a * (1 - a)


def sigmoid(x: jax.typing.ArrayLike) -> jax.Array:
    """``1 / (1 + e^−x)``; derivative ``A (1 − A)`` from the output ``A``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.sigmoid(jnp.array([0.0])).tolist()
      [0.5]
    """
    return _sigmoid(as_float_array(x, "x", "sigmoid"))


@jax.custom_jvp
def _tanh(z):
    return jnp.tanh(z)


@_tanh.defjvp
def _tanh_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    a = _tanh(z)
    return a, t * (1 - a * a)


def tanh(x: jax.typing.ArrayLike) -> jax.Array:
    """``tanh x``; derivative ``1 − A²`` from the output ``A``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.tanh(jnp.array([0.0])).tolist()
      [0.0]
    """
    return _tanh(as_float_array(x, "x", "tanh"))


def _check_axis(fn, x, axis):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: `axis` must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim or x.ndim == 0:
        raise ValueError(f"{fn}: axis {axis} is out of range for x.shape={x.shape}")
    return int(axis) % x.ndim


def _shifted(z, axis):
    """``z − max(z)`` along ``axis`` in the accumulation dtype (for stability)."""
    z = z.astype(acc_dtype(z.dtype))
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return z - jnp.where(jnp.isfinite(m), m, 0)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _softmax(z, axis):
    e = jnp.exp(_shifted(z, axis))
    return (e / jnp.sum(e, axis=axis, keepdims=True)).astype(z.dtype)


@_softmax.defjvp
def _softmax_jvp(axis, primals, tangents):
    (z,), (t,) = primals, tangents
    a = _softmax(z, axis)
    # Jacobian-vector form: J t = A ⊙ (t − Σ A ⊙ t); J is symmetric, so the
    # transposed rule is the same formula with dA in place of t.
    return a, a * (t - jnp.sum(a * t, axis=axis, keepdims=True))


def softmax(x: jax.typing.ArrayLike, axis: int = -1) -> jax.Array:
    """``e^x / Σ e^x`` along ``axis`` (max-shifted, stable).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.softmax(jnp.array([[1.0, 1.0]])).tolist()
      [[0.5, 0.5]]
    """
    x = as_float_array(x, "x", "softmax")
    return _softmax(x, _check_axis("softmax", x, axis))


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _log_softmax(z, axis):
    s = _shifted(z, axis)
    return (s - jnp.log(jnp.sum(jnp.exp(s), axis=axis, keepdims=True))).astype(z.dtype)


@_log_softmax.defjvp
def _log_softmax_jvp(axis, primals, tangents):
    (z,), (t,) = primals, tangents
    out = _log_softmax(z, axis)
    return out, t - jnp.sum(_softmax(z, axis) * t, axis=axis, keepdims=True)


def log_softmax(x: jax.typing.ArrayLike, axis: int = -1) -> jax.Array:
    """``x − log Σ e^x`` along ``axis`` (log-sum-exp, stable).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> round(float(jcnn.log_softmax(jnp.array([[0.0, 0.0]]))[0, 0]), 4)
      -0.6931
    """
    x = as_float_array(x, "x", "log_softmax")
    return _log_softmax(x, _check_axis("log_softmax", x, axis))
