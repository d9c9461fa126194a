"""Where each max came from: ``max_pool_with_indices`` and its inverse ``max_unpool``.

Indices follow PyTorch's ``return_indices`` convention (channels-last): per
batch element and channel, the flat row-major index into the unpadded input's
spatial dims of the element that won the window (the first maximum, as
:func:`jcnn.max_pool`'s backward routes gradients).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import as_float_array, check_batched
from ._padding_rules import ntuple, resolve_padding
from ._pool_windows import canonicalize, max_pool_mask, spatial_dims
from .pooling import _max_pool_nd

__all__ = ["max_pool_with_indices", "max_unpool"]


def _max_indices(x, y, window, stride, pads_total, out_shape):
    """Flat spatial index (into the unpadded input) of each window's first maximum."""
    sizes = x.shape[1:-1]
    idx = jnp.zeros(y.shape, jnp.int32)
    for k, hit in max_pool_mask(x, y, window, stride, pads_total, out_shape):
        coords = np.meshgrid(*(np.arange(m) * s + kk - lo for m, s, kk, (lo, _) in
                               zip(out_shape, stride, k, pads_total)), indexing="ij")
        flat = np.ravel_multi_index([np.clip(c, 0, n - 1) for c, n in zip(coords, sizes)],
                                    sizes).astype(np.int32)
        idx = jnp.where(hit, flat.reshape(1, *out_shape, 1), idx)
    return idx


def max_pool_with_indices(x, window, *, stride=None, padding="VALID", ceil_mode=False):
    """:func:`jcnn.max_pool` plus, per output, the flat spatial index (row-major over
    the unpadded input's spatial dims, per batch element and channel — PyTorch's
    ``return_indices`` convention) of the element that won (the first maximum).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.array([[[1.0], [3.0], [2.0], [0.0]]])  # (N=1, L=4, C=1)
      >>> y, idx = jcnn.max_pool_with_indices(x, (2,))
      >>> y[0, :, 0].tolist(), idx[0, :, 0].tolist()
      ([3.0, 2.0], [1, 2])
    """
    fn = "max_pool_with_indices"
    x, window, stride, _, out_shape, pads_total = canonicalize(
        fn, x, window, stride, padding, ceil_mode)
    y = _max_pool_nd(fn, len(window), x, window, stride, padding, ceil_mode)
    xs, ys = jax.lax.stop_gradient(x), jax.lax.stop_gradient(y)
    return y, _max_indices(xs, ys, window, stride, pads_total, out_shape)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _unpool(y, indices, out_shape):
    n, c = y.shape[0], y.shape[-1]
    flat_y, flat_i = y.reshape(n, -1, c), indices.reshape(n, -1, c)
    out = jnp.zeros((n, int(np.prod(out_shape)), c), y.dtype)
    rows = jnp.arange(n)[:, None, None]
    cols = jnp.arange(c)[None, None, :]
    return out.at[rows, flat_i, cols].add(flat_y).reshape(n, *out_shape, c)


def _unpool_fwd(y, indices, out_shape):
    return _unpool(y, indices, out_shape), indices


def _unpool_bwd(out_shape, indices, g):
    # the transpose of a scatter-add is a gather: each value reads back its slot
    n, c = g.shape[0], g.shape[-1]
    flat_g = g.reshape(n, -1, c)
    picked = jnp.take_along_axis(flat_g, indices.reshape(n, -1, c), axis=1)
    return picked.reshape(indices.shape), None


_unpool.defvjp(_unpool_fwd, _unpool_bwd)


def max_unpool(y, indices, window, *, stride=None, padding=0, output_size=None) -> jax.Array:
    """Put each pooled value back where its maximum came from; zeros elsewhere.

    ``y`` and ``indices`` are :func:`max_pool_with_indices`'s outputs; ``window``
    (and ``stride``, ``padding``) are the pool's, one per spatial dim.
    The output's spatial size is ``output_size`` or PyTorch's default
    ``(n − 1)·s − p_low − p_high + f``.  Values sharing an index (overlapping
    windows with the same winner) are summed, so ``max_unpool`` is exactly the
    transpose of gathering at ``indices`` — its backward.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.array([[[1.0], [3.0], [2.0], [0.0]]])
      >>> jcnn.max_unpool(*jcnn.max_pool_with_indices(x, (2,)), (2,))[0, :, 0].tolist()
      [0.0, 3.0, 2.0, 0.0]
    """
    fn = "max_unpool"
    y = as_float_array(y, "y", fn)
    check_batched(y, "y", fn)
    nd = spatial_dims(fn, y, window, "window")
    indices = jnp.asarray(indices)
    if not jnp.issubdtype(indices.dtype, jnp.integer) or indices.shape != y.shape:
        raise ValueError(f"{fn}: indices must be integers shaped like y, got "
                         f"{indices.dtype}{list(indices.shape)} for y.shape={y.shape}")
    window = ntuple(window, nd, "window", fn)
    stride = window if stride is None else ntuple(stride, nd, "stride", fn)
    pads = resolve_padding(padding, y.shape[1:-1], window, stride, (1,) * nd, fn)
    if output_size is None:
        out_shape = tuple((m - 1) * s - lo - hi + f for m, s, (lo, hi), f in
                          zip(y.shape[1:-1], stride, pads, window))
    else:
        out_shape = ntuple(output_size, nd, "output_size", fn)
    if not isinstance(indices, jax.core.Tracer) and indices.size:
        hi = int(jnp.max(indices))
        if int(jnp.min(indices)) < 0 or hi >= int(np.prod(out_shape)):
            raise ValueError(f"{fn}: indices must lie in [0, {int(np.prod(out_shape))}) for "
                             f"output size {out_shape}, got a maximum of {hi}")
    return _unpool(y, indices.astype(jnp.int32), out_shape)


