"""Softmax cross-entropy with integer labels, and its hand-written backward.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(the classifier head).

    L = (1/N) Σ_n [ log Σ_k e^{Z[n,k]} − Z[n, y_n] ]          (log-sum-exp)
    dZ = (softmax(Z) − onehot(y)) / N
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import acc_dtype, as_float_array
from .activations import log_softmax, softmax

__all__ = ["softmax_cross_entropy"]


def _picked(z, labels):
    """``z[n, labels[n]]``; NaN where a label is out of range (under jit)."""
    return jnp.take_along_axis(z, labels[:, None], axis=1, mode="fill",
                               fill_value=jnp.nan)[:, 0]


@jax.custom_vjp
def _sce(logits, labels):
    lp = log_softmax(logits.astype(acc_dtype(logits.dtype)))
    return -jnp.mean(_picked(lp, labels))


def _sce_fwd(logits, labels):
    return _sce(logits, labels), (logits, labels)


def _sce_bwd(res, g):
    logits, labels = res
    z = logits.astype(acc_dtype(logits.dtype))
    onehot = jax.nn.one_hot(labels, z.shape[1], dtype=z.dtype)
    dz = (softmax(z) - onehot) * (g / z.shape[0])
    return dz.astype(logits.dtype), None


_sce.defvjp(_sce_fwd, _sce_bwd)


def softmax_cross_entropy(logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """Mean softmax cross-entropy of ``(N, K)`` logits against integer labels ``(N,)``.

    ``L = mean_n [log Σ_k exp(Z[n, k]) − Z[n, y_n]]``, computed stably
    (log-sum-exp).  Gradient ``(softmax(Z) − onehot(y)) / N``.
    The result is a float32 scalar for bf16/f16 logits.

    **Out-of-range labels**: labels outside ``[0, K)`` raise ``ValueError``
    when they are concrete (eager calls), but under ``jax.jit`` their values
    are unknown while tracing, so there the loss comes out **NaN** instead of
    an error — check ``jnp.isfinite(loss)`` in a jitted training loop, or
    validate labels once before training.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> logits = jnp.array([[0.0, 0.0], [0.0, 0.0]])
      >>> round(float(jcnn.softmax_cross_entropy(logits, jnp.array([0, 1]))), 4)
      0.6931
      >>> import jax
      >>> bool(jnp.isnan(jax.jit(jcnn.softmax_cross_entropy)(logits, jnp.array([0, 5]))))
      True
    """
    fn = "softmax_cross_entropy"
    logits = as_float_array(logits, "logits", fn)
    labels = jnp.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"{fn}: logits must be (N, K), got logits.shape={logits.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"{fn}: labels must be integer class indices, got dtype {labels.dtype} "
            f"(labels.shape={labels.shape})"
        )
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"{fn}: labels must have shape ({logits.shape[0]},) to match "
            f"logits.shape={logits.shape}, got labels.shape={labels.shape}"
        )
    if not isinstance(labels, jax.core.Tracer) and labels.size:
        lab = np.asarray(labels)
        if lab.min() < 0 or lab.max() >= logits.shape[1]:
            raise ValueError(
                f"{fn}: labels must lie in [0, {logits.shape[1]}), got values from "
                f"{lab.min()} to {lab.max()}"
            )
    return _sce(logits, labels)
