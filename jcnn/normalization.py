"""Batch normalisation with a hand-written backward pass.

For a channels-last ``x`` of shape ``(N, *spatial, C)``, every channel ``c`` is
normalised with the mean and (biased) variance of its ``M = N·Π spatial``
values, then scaled and offset::

    μ = mean(x),  σ² = mean((x − μ)²),  x̂ = (x − μ) / √(σ² + ε),  y = γ·x̂ + β

The backward pass is the closed form (for one channel, sums over its ``M``
values)::

    dγ = Σ dy·x̂        dβ = Σ dy        dx̂ = γ·dy
    dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) / √(σ² + ε)

plus, because :func:`batch_norm` also returns ``μ`` and ``σ²``, the terms of
their cotangents: ``dμ / M + dσ²·2(x − μ) / M``.  With ``axis_name`` the
statistics (and the two means of the backward pass) are averaged over that
mapped axis too — synchronised batch norm for ``shard_map``/``pmap``/``vmap``
data parallelism, each device holding an equal share of the batch.

Low-precision inputs (bf16, f16) are normalised in f32 and the result cast
back; the returned statistics are f32.  The normalisations with per-example
statistics (layer, group, instance norm) are in `jcnn.feature_norm`, with the
same closed-form backward.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["batch_norm", "batch_norm_inference"]


def _mean(v, axes, axis_name):
    m = jnp.mean(v, axis=axes)
    return m if axis_name is None else lax.pmean(m, axis_name)


def _compute_dtype(dtype):
    return jnp.promote_types(dtype, jnp.float32)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _batch_norm(x, scale, offset, eps, axis_name):
    y, mean, var, _ = _forward(x, scale, offset, eps, axis_name)
    return y, mean, var


def _forward(x, scale, offset, eps, axis_name):
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(_compute_dtype(x.dtype))
    mean = _mean(xf, axes, axis_name)
    var = _mean(jnp.square(xf - mean), axes, axis_name)
    inv = lax.rsqrt(var + eps)
    xhat = (xf - mean) * inv
    y = xhat * scale.astype(xf.dtype) + offset.astype(xf.dtype)
    return y.astype(x.dtype), mean, var, (xhat, inv)


def _fwd(x, scale, offset, eps, axis_name):
    y, mean, var, (xhat, inv) = _forward(x, scale, offset, eps, axis_name)
    return (y, mean, var), (xhat, inv, scale, offset)


def _bwd(eps, axis_name, res, cts):
    xhat, inv, scale, offset = res
    dy, dmean, dvar = cts
    x_dtype = dy.dtype  # y has x's dtype
    axes = tuple(range(xhat.ndim - 1))
    dy = dy.astype(xhat.dtype)
    dscale = jnp.sum(dy * xhat, axis=axes)  # dγ = Σ dy·x̂
    doffset = jnp.sum(dy, axis=axes)  # dβ = Σ dy
    dxhat = dy * scale.astype(xhat.dtype)  # dx̂ = γ·dy
    dx = (dxhat - _mean(dxhat, axes, axis_name)
          - xhat * _mean(dxhat * xhat, axes, axis_name)) * inv
    # the returned statistics' own cotangents: dμ/dx = 1/M, dσ²/dx = 2(x − μ)/M
    # (with axis_name every device's copy of μ and σ² depends on every device's x)
    count = xhat.size // xhat.shape[-1]
    if axis_name is not None:
        count = count * lax.psum(1, axis_name)
        dmean, dvar = lax.psum(dmean, axis_name), lax.psum(dvar, axis_name)
    dx = dx + (dmean + 2.0 * dvar * xhat / inv) / count
    return dx.astype(x_dtype), dscale.astype(scale.dtype), doffset.astype(offset.dtype)


_batch_norm.defvjp(_fwd, _bwd)


def _check(name, x, scale, offset, eps):
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{name}: x must be (N, ..., C) with at least 2 dims, got shape "
                         f"{tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: x must be floating point, got {x.dtype}")
    c = x.shape[-1]
    for label, v in (("scale", scale), ("offset", offset)):
        if jnp.shape(v) != (c,):
            raise ValueError(f"{name}: `{label}` must have shape ({c},) for x of shape "
                             f"{tuple(x.shape)} (one per channel, last axis), got "
                             f"{tuple(jnp.shape(v))}")
    if not eps > 0:
        raise ValueError(f"{name}: `eps` must be positive, got {eps!r}")
    return x


def batch_norm(x, scale, offset, *, eps: float = 1e-5, axis_name=None):
    """Normalise ``x`` per channel (last axis) with its batch statistics; returns
    ``(y, mean, var)``.

    ``mean`` and ``var`` (biased, ``1/M``, as the normalisation uses) are over
    every axis but the last, and over ``axis_name`` when given (a mapped axis of
    ``shard_map``/``pmap``/``vmap``).  The gradient is the hand-written closed
    form in the module docstring.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.array([[1.0, 10.0], [3.0, 30.0]])
      >>> y, mean, var = jcnn.batch_norm(x, jnp.ones(2), jnp.zeros(2), eps=1e-12)
      >>> y.round(4).tolist(), mean.tolist(), var.tolist()
      ([[-1.0, -1.0], [1.0, 1.0]], [2.0, 20.0], [1.0, 100.0])
    """
    x = _check("batch_norm", x, scale, offset, eps)
    return _batch_norm(x, jnp.asarray(scale), jnp.asarray(offset), float(eps), axis_name)


def batch_norm_inference(x, scale, offset, mean, var, *, eps: float = 1e-5):
    """``γ·(x − mean)/√(var + ε) + β`` with given (running) statistics — evaluation
    mode of :func:`batch_norm`; plain autodiff, it is elementwise.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.batch_norm_inference(jnp.array([[3.0]]), jnp.array([2.0]), jnp.array([1.0]),
      ...                           jnp.array([1.0]), jnp.array([4.0]), eps=0.0).tolist()
      [[3.0]]
    """
    x = _check("batch_norm_inference", x, scale, offset, eps if eps > 0 else 1.0)
    c = x.shape[-1]
    for label, v in (("mean", mean), ("var", var)):
        if jnp.shape(v) != (c,):
            raise ValueError(f"batch_norm_inference: `{label}` must have shape ({c},) for x of "
                             f"shape {tuple(x.shape)}, got {tuple(jnp.shape(v))}")
    if eps < 0:
        raise ValueError(f"batch_norm_inference: `eps` must be >= 0, got {eps!r}")
    ct = _compute_dtype(x.dtype)
    xf = x.astype(ct)
    y = (xf - mean.astype(ct)) * lax.rsqrt(var.astype(ct) + eps) * scale.astype(ct) \
        + offset.astype(ct)
    return y.astype(x.dtype)
