"""Layer, group and instance normalisation with a hand-written backward pass.

Batch norm (`jcnn.batch_norm`) takes one mean and variance per channel over the
whole batch.  These take them over each example's own values, so they behave
the same in training and evaluation and keep no running statistics:

=============  =================================================  ==========
function       statistics over (per example)                      γ, β
=============  =================================================  ==========
layer_norm     the given ``axes`` (default: the channels)         those axes
group_norm     the spatial axes × each group of ``C/G`` channels  ``(C,)``
instance_norm  the spatial axes, each channel alone (``G = C``)   ``(C,)``
=============  =================================================  ==========

For one set ``S`` of ``M`` values sharing a mean and a variance::

    μ = mean_S(x),  σ² = mean_S((x − μ)²),  x̂ = (x − μ) / √(σ² + ε),  y = γ·x̂ + β

and the backward pass is batch norm's closed form with the means over ``S``::

    dβ = Σ dy        dγ = Σ dy·x̂        (each over every position sharing that γ, β)
    dx̂ = γ·dy
    dx = (dx̂ − mean_S(dx̂) − x̂·mean_S(dx̂·x̂)) / √(σ² + ε)

Low-precision inputs (bf16, f16) are normalised in f32 (their statistics
too) and the result cast back to the input dtype.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._checks import acc_dtype, as_float_array

__all__ = ["group_norm", "instance_norm", "layer_norm"]


def _mean(v, axes):
    return jnp.mean(v, axis=axes, keepdims=True)


def _sum_to(v, shape):
    """Sum ``v`` over the axes where ``shape`` (same rank) has a broadcast 1."""
    axes = tuple(i for i, (a, b) in enumerate(zip(v.shape, shape)) if b == 1 and a != 1)
    return jnp.sum(v, axis=axes, keepdims=True)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _normalize(x, scale, offset, axes, eps):
    """``γ·x̂ + β`` with the statistics over ``axes``; ``scale``/``offset`` broadcast to x."""
    return _forward(x, scale, offset, axes, eps)[0]


def _forward(x, scale, offset, axes, eps):
    xf = x.astype(acc_dtype(x.dtype))
    mean = _mean(xf, axes)
    var = _mean(jnp.square(xf - mean), axes)
    inv = lax.rsqrt(var + eps)
    xhat = (xf - mean) * inv
    y = xhat * scale.astype(xf.dtype) + offset.astype(xf.dtype)
    return y.astype(x.dtype), (xhat, inv)


def _normalize_fwd(x, scale, offset, axes, eps):
    y, (xhat, inv) = _forward(x, scale, offset, axes, eps)
    return y, (xhat, inv, scale, offset)


def _normalize_bwd(axes, eps, res, dy):
    xhat, inv, scale, offset = res
    x_dtype = dy.dtype  # y has x's dtype
    dy = dy.astype(xhat.dtype)
    dscale = _sum_to(dy * xhat, scale.shape)  # dγ = Σ dy·x̂
    doffset = _sum_to(dy, offset.shape)  # dβ = Σ dy
    dxhat = dy * scale.astype(xhat.dtype)  # dx̂ = γ·dy
    dx = (dxhat - _mean(dxhat, axes) - xhat * _mean(dxhat * xhat, axes)) * inv
    return dx.astype(x_dtype), dscale.astype(scale.dtype), doffset.astype(offset.dtype)


_normalize.defvjp(_normalize_fwd, _normalize_bwd)


# ----------------------------------------------------------------- checks
def _check_eps(fn, eps):
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer,
                                                                 np.floating)):
        raise TypeError(f"{fn}: `eps` must be a Python number, got {eps!r}")
    if not eps > 0:
        raise ValueError(f"{fn}: `eps` must be positive, got {eps!r}")
    return float(eps)


def _affine(fn, x, scale, offset, shape, where):
    """``scale`` and ``offset`` as float arrays of ``shape``, else a named error."""
    out = []
    for label, v in (("scale", scale), ("offset", offset)):
        v = as_float_array(v, label, fn)
        if v.shape != shape:
            raise ValueError(f"{fn}: `{label}` must have shape {shape} ({where}) for x of "
                             f"shape {tuple(x.shape)}, got {label}.shape={tuple(v.shape)}")
        out.append(v)
    return out


def _canonical_axes(fn, x, axes):
    seq = axes if isinstance(axes, (tuple, list)) else (axes,)
    for a in seq:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{fn}: `axes` must be an int or a sequence of ints, got {axes!r}")
    if not seq:
        raise ValueError(f"{fn}: `axes` must name at least one axis, got {axes!r}")
    if any(not -x.ndim <= a < x.ndim for a in seq):
        raise ValueError(f"{fn}: `axes` {axes!r} is out of range for x.shape={tuple(x.shape)}")
    canon = sorted(int(a) % x.ndim for a in seq)
    if len(set(canon)) != len(canon):
        raise ValueError(f"{fn}: `axes` {axes!r} names an axis twice (x.ndim={x.ndim})")
    return tuple(canon)


# ----------------------------------------------------------------- public
def layer_norm(x: jax.typing.ArrayLike, scale: jax.typing.ArrayLike,
               offset: jax.typing.ArrayLike, *, axes: int | tuple[int, ...] = -1,
               eps: float = 1e-5) -> jax.Array:
    """Normalise ``x`` over ``axes`` (the channels by default), then scale and offset.

    ``y = γ·(x − μ)/√(σ² + ε) + β`` with ``μ``, ``σ²`` (biased) over ``axes``
    separately at every other index; ``scale`` (γ) and ``offset`` (β) have
    the shape of those axes, ``tuple(x.shape[a] for a in sorted(axes))``.
    ``axes=(1, 2, 3)`` on an ``(N, H, W, C)`` batch normalises each image as
    a whole (PyTorch's ``F.layer_norm(x, x.shape[1:])``).  The gradient is
    the closed form in the module docstring.

    Args:
      x: a float array, e.g. ``(N, *spatial, C)``.
      scale: γ, shaped like ``x``'s ``axes``.
      offset: β, shaped like ``x``'s ``axes``.
      axes: the axis or axes the statistics run over.
      eps: added to the variance, ``> 0``.

    Returns:
      ``y``, the shape and dtype of ``x``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.array([[1.0, 3.0], [10.0, 30.0]])
      >>> jcnn.layer_norm(x, jnp.ones(2), jnp.zeros(2), eps=1e-12).round(4).tolist()
      [[-1.0, 1.0], [-1.0, 1.0]]
    """
    fn = "layer_norm"
    x = as_float_array(x, "x", fn)
    if x.ndim == 0:
        raise ValueError(f"{fn}: x must have at least one axis, got a scalar")
    axes = _canonical_axes(fn, x, axes)
    eps = _check_eps(fn, eps)
    shape = tuple(x.shape[a] for a in axes)
    scale, offset = _affine(fn, x, scale, offset, shape, f"x's axes {axes}")
    bshape = tuple(d if i in axes else 1 for i, d in enumerate(x.shape))
    return _normalize(x, scale.reshape(bshape), offset.reshape(bshape), axes, eps)


def _group_norm(x, scale, offset, groups, eps):
    c = x.shape[-1]
    xg = x.reshape(*x.shape[:-1], groups, c // groups)  # (N, *spatial, G, C/G)
    axes = (*range(1, x.ndim - 1), x.ndim)  # the spatial axes and the channels in a group
    bshape = (1,) * (x.ndim - 1) + (groups, c // groups)
    y = _normalize(xg, scale.reshape(bshape), offset.reshape(bshape), axes, eps)
    return y.reshape(x.shape)


def group_norm(x: jax.typing.ArrayLike, scale: jax.typing.ArrayLike,
               offset: jax.typing.ArrayLike, *, groups: int, eps: float = 1e-5) -> jax.Array:
    """Normalise each example over its spatial axes and each group of ``C/groups``
    consecutive channels (PyTorch's ``F.group_norm``), then scale and offset per channel.

    For ``x`` of shape ``(N, *spatial, C)`` the channels split into ``groups``
    runs of ``C/groups``; ``μ``, ``σ²`` (biased) are taken over one example's
    spatial positions and one run, ``y = γ_c·(x − μ)/√(σ² + ε) + β_c``.
    ``groups=1`` normalises each example as a whole; ``groups=C`` is
    `jcnn.instance_norm`.  The gradient is the closed form in the module
    docstring.

    Args:
      x: ``(N, *spatial, C)`` (no spatial axes, ``(N, C)``, is allowed).
      scale: γ, ``(C,)``.
      offset: β, ``(C,)``.
      groups: how many channel groups; must divide ``C``.
      eps: added to the variance, ``> 0``.

    Returns:
      ``y``, the shape and dtype of ``x``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.array([[[1.0, 3.0, 0.0, 0.0], [1.0, 3.0, 4.0, 4.0]]])  # (1, 2, 4)
      >>> y = jcnn.group_norm(x, jnp.ones(4), jnp.zeros(4), groups=2, eps=1e-12)
      >>> y.round(4).tolist()  # group 0: mean 2, var 1; group 1: mean 2, var 4
      [[[-1.0, 1.0, -1.0, -1.0], [-1.0, 1.0, 1.0, 1.0]]]
    """
    fn = "group_norm"
    x = as_float_array(x, "x", fn)
    if x.ndim < 2:
        raise ValueError(f"{fn}: x must be (N, *spatial, C), got x.shape={tuple(x.shape)}")
    c = x.shape[-1]
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"{fn}: `groups` must be an int, got {groups!r}")
    if groups < 1 or c % groups:
        raise ValueError(f"{fn}: `groups` (={groups}) must be positive and divide the channels "
                         f"(={c}) of x.shape={tuple(x.shape)}")
    eps = _check_eps(fn, eps)
    scale, offset = _affine(fn, x, scale, offset, (c,), "one per channel, last axis")
    return _group_norm(x, scale, offset, int(groups), eps)


def instance_norm(x: jax.typing.ArrayLike, scale: jax.typing.ArrayLike,
                  offset: jax.typing.ArrayLike, *, eps: float = 1e-5) -> jax.Array:
    """Normalise each example's every channel over its spatial axes, then scale and
    offset: `jcnn.group_norm` with one channel per group.

    ``y[n, …, c] = γ_c·(x[n, …, c] − μ_nc)/√(σ²_nc + ε) + β_c`` with ``μ_nc``,
    ``σ²_nc`` (biased) over the spatial positions of example ``n``, channel ``c``.

    Args:
      x: ``(N, *spatial, C)`` with at least one spatial axis.
      scale: γ, ``(C,)``.
      offset: β, ``(C,)``.
      eps: added to the variance, ``> 0``.

    Returns:
      ``y``, the shape and dtype of ``x``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.array([[[1.0, 5.0], [3.0, 5.0]]])  # (1, 2 positions, 2 channels)
      >>> jcnn.instance_norm(x, jnp.ones(2), jnp.array([0.0, 7.0]), eps=1e-12).round(4).tolist()
      [[[-1.0, 7.0], [1.0, 7.0]]]
    """
    fn = "instance_norm"
    x = as_float_array(x, "x", fn)
    if x.ndim < 3:
        raise ValueError(f"{fn}: x must be (N, *spatial, C) with at least one spatial axis, "
                         f"got x.shape={tuple(x.shape)}")
    eps = _check_eps(fn, eps)
    c = x.shape[-1]
    scale, offset = _affine(fn, x, scale, offset, (c,), "one per channel, last axis")
    return _group_norm(x, scale, offset, c, eps)
