"""Elementwise losses ``ℓ(prediction, target)``, one value at a time, with explicit
derivatives: binary cross-entropy on logits, squared error, Huber.

As in `jcnn.activations`, each is a ``jax.custom_jvp`` whose tangent rule is the
derivative written out, which JAX transposes into the backward pass
``dPred = dL ⊙ ∂ℓ/∂pred``:

===========================  ====================================  =====================
loss                         ℓ                                     ∂ℓ/∂pred
===========================  ====================================  =====================
binary cross-entropy         max(z, 0) − z·y + log(1 + e^−|z|)      σ(z) − y
squared error (r = ŷ − y)    r²                                    2r
Huber (r = ŷ − y)            ½r² if |r| ≤ δ, else δ(|r| − ½δ)       clip(r, −δ, δ)
===========================  ====================================  =====================

(binary cross-entropy is ``−y log σ(z) − (1 − y) log(1 − σ(z))`` written so that
no exponential overflows; its target derivative is ``−z``, the residual losses'
``−∂ℓ/∂pred``.)  ``reduction`` is ``"mean"`` over every element (default),
``"sum"`` or ``"none"``, as PyTorch's.  Low-precision inputs (bf16, f16) are
computed in f32: the loss is f32, the gradients keep the inputs' dtypes.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import acc_dtype, as_float_array
from .activations import sigmoid
from .losses import _check_reduction, _reduce

__all__ = ["binary_cross_entropy_with_logits", "huber_loss", "mean_squared_error"]


def _pair(fn, a, b, names):
    """Two float arrays of one shape, cast to their common accumulation dtype."""
    a, b = as_float_array(a, names[0], fn), as_float_array(b, names[1], fn)
    if a.shape != b.shape:
        raise ValueError(f"{fn}: `{names[1]}` must have the shape of `{names[0]}`, got "
                         f"{names[0]}.shape={a.shape}, {names[1]}.shape={b.shape}")
    ct = acc_dtype(jnp.result_type(a, b))
    return a.astype(ct), b.astype(ct)


@jax.custom_jvp
def _bce(z, y):
    return jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))


@_bce.defjvp
def _bce_jvp(primals, tangents):
    (z, y), (tz, ty) = primals, tangents
    return _bce(z, y), (sigmoid(z) - y) * tz - z * ty  # ∂ℓ/∂z = σ(z) − y, ∂ℓ/∂y = −z


def binary_cross_entropy_with_logits(logits: jax.typing.ArrayLike,
                                     targets: jax.typing.ArrayLike, *,
                                     reduction: str = "mean") -> jax.Array:
    """Binary cross-entropy of independent logits against target probabilities
    (PyTorch's ``F.binary_cross_entropy_with_logits``).

    ``ℓ = max(z, 0) − z·y + log(1 + e^−|z|)`` per element (``= −y log σ(z) −
    (1 − y) log(1 − σ(z))``, without overflow); derivative ``σ(z) − y``, and
    ``−z`` for the targets.

    Args:
      logits: floats, any shape (multi-label ``(N, K)``, masks ``(N, *spatial)`` …).
      targets: floats in ``[0, 1]``, the shape of ``logits``.
      reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
      The loss, float32 for bf16/f16 inputs.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> z, y = jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0])
      >>> round(float(jcnn.binary_cross_entropy_with_logits(z, y)), 4)  # log 2
      0.6931
    """
    fn = "binary_cross_entropy_with_logits"
    reduction = _check_reduction(fn, reduction)
    logits, targets = _pair(fn, logits, targets, ("logits", "targets"))
    return _reduce(_bce(logits, targets), reduction)


@jax.custom_jvp
def _squared(r):
    return r * r


@_squared.defjvp
def _squared_jvp(primals, tangents):
    (r,), (t,) = primals, tangents
    return _squared(r), 2 * r * t  # ℓ′(r) = 2r


def mean_squared_error(pred: jax.typing.ArrayLike, target: jax.typing.ArrayLike, *,
                       reduction: str = "mean") -> jax.Array:
    """Squared error ``(ŷ − y)²`` per element, averaged (PyTorch's ``F.mse_loss``).

    Derivative ``2(ŷ − y)`` for the prediction, ``−2(ŷ − y)`` for the target.

    Args:
      pred: the prediction ``ŷ``, floats.
      target: the target ``y``, floats of ``pred``'s shape.
      reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
      The loss, float32 for bf16/f16 inputs.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> pred, target = jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])
      >>> float(jcnn.mean_squared_error(pred, target))  # (1 + 4) / 2
      2.5
      >>> jax.grad(jcnn.mean_squared_error)(pred, target).tolist()  # 2r / 2
      [1.0, -2.0]
    """
    fn = "mean_squared_error"
    reduction = _check_reduction(fn, reduction)
    pred, target = _pair(fn, pred, target, ("pred", "target"))
    return _reduce(_squared(pred - target), reduction)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _huber(r, delta):
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


@_huber.defjvp
def _huber_jvp(delta, primals, tangents):
    (r,), (t,) = primals, tangents
    return _huber(r, delta), jnp.clip(r, -delta, delta) * t  # ℓ′(r) = clip(r, −δ, δ)


def huber_loss(pred: jax.typing.ArrayLike, target: jax.typing.ArrayLike, *,
               delta: float = 1.0, reduction: str = "mean") -> jax.Array:
    """Huber loss (PyTorch's ``F.huber_loss``): quadratic for small errors, linear
    beyond ``δ``.

    With ``r = ŷ − y``: ``ℓ = ½r²`` if ``|r| ≤ δ``, else ``δ(|r| − ½δ)``;
    derivative ``clip(r, −δ, δ)`` — the squared error's gradient with its size
    capped at ``δ``, so outliers pull no harder than ``δ``.

    Args:
      pred: the prediction ``ŷ``, floats.
      target: the target ``y``, floats of ``pred``'s shape.
      delta: the threshold ``δ > 0``.
      reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
      The loss, float32 for bf16/f16 inputs.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> pred, target = jnp.array([0.5, 3.0]), jnp.zeros(2)
      >>> jcnn.huber_loss(pred, target, reduction="none").tolist()  # ½·0.25, 1·(3 − ½)
      [0.125, 2.5]
      >>> jax.grad(jcnn.huber_loss)(pred, target).tolist()  # clip(r, −1, 1) / 2
      [0.25, 0.5]
    """
    fn = "huber_loss"
    reduction = _check_reduction(fn, reduction)
    if isinstance(delta, (bool, np.bool_)) or not isinstance(
            delta, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: `delta` must be a Python number, got {delta!r}")
    if not delta > 0:
        raise ValueError(f"{fn}: `delta` must be positive, got {delta!r}")
    pred, target = _pair(fn, pred, target, ("pred", "target"))
    return _reduce(_huber(pred - target, float(delta)), reduction)
