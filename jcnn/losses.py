"""Softmax losses with hand-written backward passes: cross-entropy and focal loss.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(the classifier head).  For logits ``Z`` over ``K`` classes at one position,
``p = softmax(Z)`` and target probabilities ``q`` (a one-hot label, or given)::

    ℓ = −Σ_k q_k log p_k = log Σ_k e^{Z_k} − Σ_k q_k Z_k      (log-sum-exp, Σq = 1)
    dZ = p − q                                                   (p·Σq − q in general)

Label smoothing mixes ``q`` with the uniform distribution,
``q ← (1 − ε)·q + ε/K``; the gradient keeps its form.  Focal loss
``ℓ = −(1 − p_t)^γ log p_t`` (``t`` the label) down-weights the examples
already classified well; its gradient is cross-entropy's times one scalar per
position::

    dZ = c·(p − onehot(t)),   c = (1 − p_t)^γ − γ·p_t·(1 − p_t)^(γ−1)·log p_t

Logits may have any leading axes — ``(N, K)`` or per pixel ``(N, *spatial, K)``
— and each loss returns the per-position losses (``reduction="none"``), their
``"sum"``, or their ``"mean"`` (the default), as PyTorch's ``reduction=``.
Low-precision logits (bf16, f16) are reduced in f32: the loss is f32, the
gradient has the logits' dtype.  The elementwise losses (binary cross-entropy,
squared error, Huber) are in `jcnn.elementwise_losses`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import acc_dtype, as_float_array
from .activations import log_softmax, softmax

__all__ = ["focal_loss", "softmax_cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(fn, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: `reduction` must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _reduce(losses, reduction, keep=None):
    """The per-position ``losses`` reduced; ``"mean"`` counts only the ``keep`` positions."""
    if reduction == "none":
        return losses
    total = jnp.sum(losses)
    if reduction == "sum":
        return total
    count = losses.size if keep is None else jnp.sum(keep)
    return total / count  # no position kept: 0/0 = NaN, as PyTorch


def _picked(z, labels):
    """``z[..., labels[...]]``; NaN where a label is out of range (under jit)."""
    return jnp.take_along_axis(z, labels[..., None], axis=-1, mode="fill",
                               fill_value=jnp.nan)[..., 0]


def _class_logits(fn, logits):
    logits = as_float_array(logits, "logits", fn)
    if logits.ndim < 2:
        raise ValueError(f"{fn}: logits must be (N, K) or (N, *spatial, K), got "
                         f"logits.shape={logits.shape}")
    return logits


def _class_labels(fn, logits, labels, ignore_label=None):
    """Integer labels of shape ``logits.shape[:-1]``, in ``[0, K)`` where concrete."""
    k = logits.shape[-1]
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"{fn}: labels must have shape {logits.shape[:-1]} to match "
                         f"logits.shape={logits.shape}, got labels.shape={labels.shape}")
    if not isinstance(labels, jax.core.Tracer) and labels.size:
        lab = np.asarray(labels)
        if ignore_label is not None:
            lab = lab[lab != ignore_label]
        if lab.size and (lab.min() < 0 or lab.max() >= k):
            raise ValueError(f"{fn}: labels must lie in [0, {k}), got values from {lab.min()} "
                             f"to {lab.max()}"
                             + ("" if ignore_label is None else
                                f" (besides ignore_label={ignore_label})"))
    return labels


# ----------------------------------------------------------------- cross-entropy
@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _sce_int(logits, labels, smoothing, ignore):
    """Per-position ``−Σ q log p`` for integer labels; 0 where ``labels == ignore``."""
    lp = log_softmax(logits.astype(acc_dtype(logits.dtype)))
    keep = None if ignore is None else labels != ignore
    safe = labels if keep is None else jnp.where(keep, labels, 0)
    loss = -_picked(lp, safe)
    if smoothing:  # only then: a −inf logit would make 0·(−inf) = NaN
        loss = (1 - smoothing) * loss - smoothing * jnp.mean(lp, axis=-1)
    return loss if keep is None else jnp.where(keep, loss, 0)


def _sce_int_fwd(logits, labels, smoothing, ignore):
    return _sce_int(logits, labels, smoothing, ignore), (logits, labels)


def _sce_int_bwd(smoothing, ignore, res, g):
    logits, labels = res
    z = logits.astype(acc_dtype(logits.dtype))
    k = z.shape[-1]
    q = (1 - smoothing) * jax.nn.one_hot(labels, k, dtype=z.dtype) + smoothing / k
    dz = (softmax(z) - q) * g[..., None]  # dZ = p − q
    if ignore is not None:
        dz = jnp.where((labels != ignore)[..., None], dz, 0)
    return dz.astype(logits.dtype), None


_sce_int.defvjp(_sce_int_fwd, _sce_int_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _sce_probs(logits, labels, smoothing):
    """Per-position ``−Σ q log p`` for target probabilities ``labels``."""
    lp = log_softmax(logits.astype(acc_dtype(logits.dtype)))
    q = (1 - smoothing) * labels.astype(lp.dtype) + smoothing / lp.shape[-1]
    return -jnp.sum(jnp.where(q == 0, 0, q * lp), axis=-1)  # 0·log 0 = 0


def _sce_probs_fwd(logits, labels, smoothing):
    return _sce_probs(logits, labels, smoothing), (logits, labels)


def _sce_probs_bwd(smoothing, res, g):
    logits, labels = res
    z = logits.astype(acc_dtype(logits.dtype))
    q = (1 - smoothing) * labels.astype(z.dtype) + smoothing / z.shape[-1]
    g = g[..., None]
    dz = (softmax(z) * jnp.sum(q, axis=-1, keepdims=True) - q) * g  # p − q when Σq = 1
    dlabels = -(1 - smoothing) * log_softmax(z) * g  # ∂ℓ/∂q_k = −log p_k
    return dz.astype(logits.dtype), dlabels.astype(labels.dtype)


_sce_probs.defvjp(_sce_probs_fwd, _sce_probs_bwd)


def softmax_cross_entropy(logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, *,
                          label_smoothing: float = 0.0, ignore_label: int | None = None,
                          reduction: str = "mean") -> jax.Array:
    """Softmax cross-entropy of logits ``(N, *spatial, K)`` against integer labels
    ``(N, *spatial)`` or class probabilities shaped like the logits.

    Per position ``ℓ = −Σ_k q_k log softmax(Z)_k`` with ``q`` the one-hot label
    (or the given probabilities), mixed as ``(1 − ε)·q + ε/K`` when
    ``label_smoothing = ε``; computed stably (log-sum-exp).  Gradient
    ``dZ = softmax(Z) − q`` per position, times the reduction's weight
    (``1/count`` for the mean).  ``ignore_label`` positions contribute 0 and
    the mean runs over the others (PyTorch's ``ignore_index``; all ignored:
    NaN).  ``F.cross_entropy``'s values, with the classes last.

    **Out-of-range labels**: labels outside ``[0, K)`` (other than
    ``ignore_label``) raise ``ValueError`` when they are concrete (eager
    calls), but under ``jax.jit`` their values are unknown while tracing, so
    there the loss comes out **NaN** instead of an error — check
    ``jnp.isfinite(loss)`` in a jitted training loop, or validate labels once
    before training.

    Args:
      logits: ``(N, K)`` or ``(N, *spatial, K)`` floats.
      labels: integer class indices ``logits.shape[:-1]``, or float probabilities
        ``logits.shape`` (these also get a gradient, ``−(1 − ε) log p``).
      label_smoothing: ``ε`` in ``[0, 1]``.
      ignore_label: an integer label whose positions are left out (integer labels only).
      reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (the losses, ``logits.shape[:-1]``).

    Returns:
      The loss, float32 for bf16/f16 logits.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> logits = jnp.array([[0.0, 0.0], [0.0, 0.0]])
      >>> round(float(jcnn.softmax_cross_entropy(logits, jnp.array([0, 1]))), 4)
      0.6931
      >>> import jax
      >>> bool(jnp.isnan(jax.jit(jcnn.softmax_cross_entropy)(logits, jnp.array([0, 5]))))
      True
      >>> seg = jnp.zeros((1, 2, 2, 3))  # per pixel: (N, H, W, K), one pixel ignored
      >>> labels = jnp.array([[[0, 1], [2, -1]]])
      >>> per_pixel = jcnn.softmax_cross_entropy(seg, labels, ignore_label=-1, reduction="none")
      >>> [[round(v, 4) for v in row] for row in per_pixel[0].tolist()]  # log 3, or 0
      [[1.0986, 1.0986], [1.0986, 0.0]]
    """
    fn = "softmax_cross_entropy"
    logits = _class_logits(fn, logits)
    reduction = _check_reduction(fn, reduction)
    if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(
            label_smoothing, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: `label_smoothing` must be a Python number, got "
                        f"{label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: `label_smoothing` must be in [0, 1], got {label_smoothing!r}")
    if ignore_label is not None and (isinstance(ignore_label, (bool, np.bool_))
                                     or not isinstance(ignore_label, (int, np.integer))):
        raise TypeError(f"{fn}: `ignore_label` must be None or an int, got {ignore_label!r}")
    labels = jnp.asarray(labels)
    smoothing = float(label_smoothing)
    if jnp.issubdtype(labels.dtype, jnp.floating) and labels.shape == logits.shape:
        if ignore_label is not None:
            raise ValueError(f"{fn}: `ignore_label` applies to integer labels only, got "
                             f"probabilities (labels.shape={labels.shape})")
        return _reduce(_sce_probs(logits, labels, smoothing), reduction)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: labels must be integer class indices of shape "
                        f"{logits.shape[:-1]} or probabilities of the logits' shape "
                        f"{logits.shape}, got dtype {labels.dtype} (labels.shape={labels.shape})")
    labels = _class_labels(fn, logits, labels, ignore_label)
    ignore = None if ignore_label is None else int(ignore_label)
    keep = None if ignore is None else labels != ignore
    return _reduce(_sce_int(logits, labels, smoothing, ignore), reduction, keep)


# ----------------------------------------------------------------- focal loss
@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _focal(logits, labels, gamma):
    lpt = _picked(log_softmax(logits.astype(acc_dtype(logits.dtype))), labels)  # log p_t
    return -((-jnp.expm1(lpt)) ** gamma) * lpt  # −(1 − p_t)^γ log p_t


def _focal_fwd(logits, labels, gamma):
    return _focal(logits, labels, gamma), (logits, labels)


def _focal_bwd(gamma, res, g):
    logits, labels = res
    z = logits.astype(acc_dtype(logits.dtype))
    p = softmax(z)
    lpt = _picked(log_softmax(z), labels)
    pt, om = jnp.exp(lpt), -jnp.expm1(lpt)  # p_t and 1 − p_t
    # γ·p_t·(1 − p_t)^(γ−1)·log p_t → 0 as p_t → 1 (also for γ < 1, where the power blows up)
    om_safe = jnp.where(om > 0, om, 1)
    bend = jnp.where(om > 0, gamma * pt * om_safe ** (gamma - 1) * lpt, 0)
    c = om ** gamma - bend
    dz = (c * g)[..., None] * (p - jax.nn.one_hot(labels, z.shape[-1], dtype=z.dtype))
    return dz.astype(logits.dtype), None


_focal.defvjp(_focal_fwd, _focal_bwd)


def focal_loss(logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, *,
               gamma: float = 2.0, reduction: str = "mean") -> jax.Array:
    """Multi-class focal loss ``−(1 − p_t)^γ log p_t`` on softmax probabilities
    (Lin et al., 2017), ``p_t`` the probability of the label.

    ``γ = 0`` is `jcnn.softmax_cross_entropy`; larger ``γ`` shrinks the loss of
    positions already classified well.  Gradient per position
    ``c·(softmax(Z) − onehot(t))`` with the scalar
    ``c = (1 − p_t)^γ − γ·p_t·(1 − p_t)^(γ−1)·log p_t``.  Out-of-range labels
    behave as in `jcnn.softmax_cross_entropy` (ValueError eagerly, NaN under jit).

    Args:
      logits: ``(N, K)`` or ``(N, *spatial, K)`` floats.
      labels: integer class indices, ``logits.shape[:-1]``.
      gamma: the focusing exponent ``γ >= 0``.
      reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
      The loss, float32 for bf16/f16 logits.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> logits = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))  # p_t = 0.5 and 0.9
      >>> losses = jcnn.focal_loss(logits, jnp.array([0, 0]), gamma=2.0, reduction="none")
      >>> [round(v, 6) for v in losses.tolist()]  # 0.5²·log 2, 0.1²·(−log 0.9)
      [0.173287, 0.001054]
    """
    fn = "focal_loss"
    logits = _class_logits(fn, logits)
    reduction = _check_reduction(fn, reduction)
    if isinstance(gamma, (bool, np.bool_)) or not isinstance(
            gamma, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: `gamma` must be a Python number, got {gamma!r}")
    if not gamma >= 0:
        raise ValueError(f"{fn}: `gamma` must be >= 0, got {gamma!r}")
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: labels must be integer class indices, got dtype {labels.dtype} "
                        f"(labels.shape={labels.shape})")
    labels = _class_labels(fn, logits, labels)
    return _reduce(_focal(logits, labels, float(gamma)), reduction)
