"""Max and average pooling as windowed reductions, with hand-written backwards.

Layout is channels-last, ``x`` is ``(N, *spatial, C)``; each channel is pooled
on its own (article §10).  The windows are the same strided slices ``conv``
sums over (:mod:`jcnn.window`); pooling reduces them with ``max`` or the mean.

Both reductions are separable — the max (sum) over a box is the max (sum)
over its first dim of the maxes (sums) over the rest — so an N-d window is
reduced one spatial dim at a time: ``f₁ + f₂`` slices instead of ``f₁·f₂``.
Reducing the last dim first, the row-major first maximum of a box is exactly
the first maximum (along dim 1) of the rows' first maxima, so chaining the
1-D backward rules gives the N-d rule below.

Backward (§11): pooling has no parameters and only routes gradients.

* max: each window's cotangent goes to **the first maximal element in
  row-major window order** (the rule of ``lax.reduce_window`` and PyTorch's
  CPU kernel).  Ties never split or duplicate a gradient: the total a window
  sends down is exactly its incoming cotangent.  A window holding a NaN
  outputs NaN and sends its cotangent to its first NaN.  Padding never wins
  (it acts as −inf); a window of only −inf sends to its first real element.
  Overlapping windows (stride < window) accumulate.
* average: each cotangent is spread evenly over the elements its window
  counted — ``dX += dY / divisor`` — matching the forward's divisor.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import window as win
from ._checks import acc_dtype, as_float_array, check_batched
from .padding import PaddingLike, ntuple, padding_pairs

__all__ = ["avg_pool", "global_avg_pool", "global_max_pool", "max_pool"]


def _canonicalize(fn, x, window, stride, padding, ceil_mode):
    """Check a pool call; returns ``(x, window, stride, pads, out_shape, pads_total)``.

    ``pads`` is the declared padding; ``pads_total`` adds the high-side overhang
    that ``ceil_mode`` lets the last window reach (never counted by any divisor).
    """
    x = as_float_array(x, "x", fn)
    nd = check_batched(x, "x", fn)
    if nd > 3:
        raise ValueError(f"{fn}: 1 to 3 spatial dims are supported, got x.shape={x.shape}")
    window = ntuple(window, nd, "window", fn)
    stride = window if stride is None else ntuple(stride, nd, "stride", fn)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"{fn}: `ceil_mode` must be a bool, got {ceil_mode!r}")
    sizes = x.shape[1:-1]
    pads = padding_pairs(padding, sizes, window, stride, (1,) * nd, fn)
    out_shape, pads_total = [], []
    for i, (n, f, s, (lo, hi)) in enumerate(zip(sizes, window, stride, pads)):
        if lo > f // 2 or hi > f // 2:
            raise ValueError(
                f"{fn}: padding ({lo}, {hi}) in spatial dim {i} is wider than half the "
                f"window ({f} // 2 = {f // 2}) (x.shape={x.shape}, window={window})"
            )
        span = n + lo + hi - f
        if span < 0:
            raise ValueError(
                f"{fn}: window {f} is larger than the padded input ({n} + {lo} + {hi} = "
                f"{n + lo + hi}) in spatial dim {i} (x.shape={x.shape}, window={window})"
            )
        out = span // s + 1
        if ceil_mode:
            out = -(-span // s) + 1
            if (out - 1) * s >= n + lo:  # the last window would start in the padding
                out -= 1
        out_shape.append(out)
        pads_total.append((lo, hi + max((out - 1) * s + f - (n + lo + hi), 0)))
    return x, window, stride, pads, tuple(out_shape), tuple(pads_total)


def _window_counts(sizes, window, stride, pads, out_shape, include_pad):
    """Static ``(1, *out, 1)`` array: how many elements each window counts."""
    per_dim = []
    for n, f, s, (lo, hi), m in zip(sizes, window, stride, pads, out_shape):
        first = np.arange(m)[:, None] * s + np.arange(f)[None, :]  # padded coords
        lo_ok, hi_ok = (0, n + lo + hi) if include_pad else (lo, lo + n)
        per_dim.append(((first >= lo_ok) & (first < hi_ok)).sum(axis=1))
    counts = per_dim[0]
    for c in per_dim[1:]:
        counts = np.multiply.outer(counts, c)
    return np.maximum(counts, 1).reshape(1, *out_shape, 1)


def _real_mask(offset, sizes, stride, pads, out_shape):
    """Static ``(1, *out, 1)`` bool: does offset ``offset`` land on a real element?"""
    mask = np.ones((), bool)
    for k, n, s, (lo, _), m in zip(offset, sizes, stride, pads, out_shape):
        pos = np.arange(m) * s + k
        mask = np.logical_and.outer(mask, (pos >= lo) & (pos < lo + n))
    return mask.reshape(1, *out_shape, 1)


def _crop(xp, pads_total, sizes):
    return win.pad_spatial(xp, [(-lo, -(p - lo - n)) for (lo, _), n, p in
                                zip(pads_total, sizes, xp.shape[1:-1])])


# --------------------------------------------------------------------------- #
# max pooling
# --------------------------------------------------------------------------- #
def _one_dim(i, window, stride, pads_total, out_shape, sizes):
    """Window, stride, padding and output shape of the 1-D pass along spatial dim ``i``."""
    nd = len(window)
    unit = [1] * nd
    w1, s1 = list(unit), list(unit)
    w1[i], s1[i] = window[i], stride[i]
    p1 = [(0, 0)] * nd
    p1[i] = pads_total[i]
    shape = list(sizes)
    shape[i] = out_shape[i]
    return tuple(w1), tuple(s1), tuple(p1), tuple(shape)


def _passes(window, stride, pads_total, out_shape, sizes):
    """The 1-D passes (skipping trivial dims), as ``(window, stride, pads, out)``.

    The last spatial dim goes first: the first maximum (along dim 1) of the
    rows' first maxima is then the box's first maximum in row-major order."""
    out, cur = [], list(sizes)
    for i in reversed(range(len(window))):
        if window[i] == 1 and stride[i] == 1 and pads_total[i] == (0, 0):
            continue
        w1, s1, p1, _ = _one_dim(i, window, stride, pads_total, out_shape, cur)
        cur[i] = out_shape[i]
        out.append((w1, s1, p1, tuple(cur)))
    return out


def _max_forward(x, window, stride, pads_total, out_shape):
    xp = win.pad_spatial(x, pads_total, -jnp.inf)
    out = None
    for k in win.offsets(window):
        sl = win.window_slice(xp, k, out_shape, stride, (1,) * len(window))
        out = sl if out is None else jnp.maximum(out, sl)  # NaN propagates
    return out


def max_pool_mask(x, y, window, stride, pads_total, out_shape):
    """Yield ``(offset, hit)``: ``hit`` marks, per output, whether the window's
    first maximum (row-major) sits at ``offset``.  Exactly one hit per window."""
    xp = win.pad_spatial(x, pads_total, -jnp.inf)
    sizes = x.shape[1:-1]
    padded = any(lo or hi for lo, hi in pads_total)
    y_nan = jnp.isnan(y)
    taken = jnp.zeros(y.shape, bool)
    for k in win.offsets(window):
        sl = win.window_slice(xp, k, out_shape, stride, (1,) * len(window))
        hit = ((sl == y) | (jnp.isnan(sl) & y_nan)) & ~taken
        if padded:
            hit = hit & _real_mask(k, sizes, stride, pads_total, out_shape)
        taken = taken | hit
        yield k, hit


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_pool(x, window, stride, pads_total, out_shape):
    return _max_forward(x, window, stride, pads_total, out_shape)


def _max_pool_fwd(x, window, stride, pads_total, out_shape):
    y = _max_forward(x, window, stride, pads_total, out_shape)
    return y, (x, y)


def _max_pool_bwd(window, stride, pads_total, out_shape, res, g):
    x, y = res
    padded_shape = [n + lo + hi for n, (lo, hi) in zip(x.shape[1:-1], pads_total)]
    dxp = None
    zero = jnp.zeros((), g.dtype)
    for k, hit in max_pool_mask(x, y, window, stride, pads_total, out_shape):
        term = win.scatter_slice(jnp.where(hit, g, zero), k, padded_shape, stride,
                                 (1,) * len(window))
        dxp = term if dxp is None else dxp + term
    return (_crop(dxp, pads_total, x.shape[1:-1]),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool(
    x: jax.typing.ArrayLike,
    window: int | tuple[int, ...],
    *,
    stride: int | tuple[int, ...] | None = None,
    padding: PaddingLike = "VALID",
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Max pooling over ``(N, *spatial, C)`` (1–3 spatial dims), channels pooled apart.

    ``Y[n, p, c] = max_k X_pad[n, p·s + k, c]``

    Args:
      x: input ``(N, *spatial, C)``.
      window: window size, an int or one per spatial dim.
      stride: defaults to ``window``.
      padding: same forms as :func:`jcnn.conv`; padding acts as −inf (never
        wins) and may be at most half the window on each side (as PyTorch).
      ceil_mode: PyTorch's rule — round the output size up, so a last window
        may overhang the input (it never starts in the padding).

      return_indices: also return, per output, the flat spatial index of the
        element that won (PyTorch's convention), for :func:`max_unpool`.

    Backward: each window's cotangent goes to its first maximal element in
    row-major window order; ties are not split, NaN windows route to their
    first NaN (see the module docstring).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.arange(16, dtype=jnp.float32).reshape(1, 4, 4, 1)
      >>> jcnn.max_pool(x, 2)[0, :, :, 0]
      Array([[ 5.,  7.],
             [13., 15.]], dtype=float32)
    """
    if return_indices:
        return max_pool_with_indices(x, window, stride=stride, padding=padding,
                                     ceil_mode=ceil_mode)
    x, window, stride, _, out_shape, pads_total = _canonicalize(
        "max_pool", x, window, stride, padding, ceil_mode
    )
    for w1, s1, p1, o1 in _passes(window, stride, pads_total, out_shape, x.shape[1:-1]):
        x = _max_pool(x, w1, s1, p1, o1)  # one spatial dim at a time (separable)
    return x


# --------------------------------------------------------------------------- #
# average pooling
# --------------------------------------------------------------------------- #
def _window_sum(x, window, stride, pads_total, out_shape):
    """Σ over each window, one spatial dim at a time, in the accumulation dtype."""
    x = x.astype(acc_dtype(x.dtype))
    for w1, s1, p1, o1 in _passes(window, stride, pads_total, out_shape, x.shape[1:-1]):
        xp = win.pad_spatial(x, p1)
        total = None
        for k in win.offsets(w1):
            sl = win.window_slice(xp, k, o1, s1, (1,) * len(w1))
            total = sl if total is None else total + sl
        x = total
    return x


def _window_spread(g, window, stride, pads_total, out_shape, sizes):
    """Transpose of ``_window_sum``: each value added back over its window.

    Tiling windows (stride = window) broadcast each value over its tile; others
    are one sum of ``Π f`` strided placements (not one pass per dim like the
    forward), which XLA fuses into a single loop with no intermediate array —
    faster than spreading one dim at a time on the CPU suite's pools (the
    pooling table of BENCHMARKS.md)."""
    padded = [n + lo + hi for n, (lo, hi) in zip(sizes, pads_total)]
    if tuple(stride) == tuple(window):  # tiling windows: every input in at most one window
        tiles = g.reshape(g.shape[0], *(a for m in out_shape for a in (m, 1)), g.shape[-1])
        tiles = jnp.broadcast_to(tiles, (g.shape[0], *(a for m, f in zip(out_shape, window)
                                                        for a in (m, f)), g.shape[-1]))
        total = tiles.reshape(g.shape[0], *(m * f for m, f in zip(out_shape, window)),
                              g.shape[-1])
        rest = [(0, p - m * f) for p, m, f in zip(padded, out_shape, window)]
        return _crop(win.pad_spatial(total, rest), pads_total, sizes)
    total = None
    for k in win.offsets(window):
        term = win.scatter_slice(g, k, padded, stride, (1,) * len(window))
        total = term if total is None else total + term
    return _crop(total, pads_total, sizes)


def _avg_forward(x, window, stride, pads_total, out_shape, counts):
    total = _window_sum(x, window, stride, pads_total, out_shape)
    return (total / counts.astype(total.dtype)).astype(x.dtype)


class _Static:
    """Hashable static divisor array (plus the input's spatial sizes)."""

    def __init__(self, array: np.ndarray, sizes: tuple[int, ...]):
        self.array, self.sizes = array, sizes

    def __hash__(self):
        return hash((self.sizes, self.array.shape, self.array.tobytes()))

    def __eq__(self, other):
        return (isinstance(other, _Static) and self.sizes == other.sizes
                and np.array_equal(self.array, other.array))


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _avg_pool(x, window, stride, pads_total, out_shape, counts):
    return _avg_forward(x, window, stride, pads_total, out_shape, counts.array)


def _avg_pool_fwd(x, window, stride, pads_total, out_shape, counts):
    y = _avg_forward(x, window, stride, pads_total, out_shape, counts.array)
    return y, None  # linear in x: the backward needs no residual


def _avg_pool_bwd(window, stride, pads_total, out_shape, counts, _, g):
    acc = acc_dtype(g.dtype)
    share = g.astype(acc) / counts.array.astype(acc)  # dX += dY / divisor
    dx = _window_spread(share, window, stride, pads_total, out_shape, counts.sizes)
    return (dx.astype(g.dtype),)


_avg_pool.defvjp(_avg_pool_fwd, _avg_pool_bwd)


def avg_pool(
    x: jax.typing.ArrayLike,
    window: int | tuple[int, ...],
    *,
    stride: int | tuple[int, ...] | None = None,
    padding: PaddingLike = "VALID",
    count_include_pad: bool = True,
    ceil_mode: bool = False,
) -> jax.Array:
    """Average pooling over ``(N, *spatial, C)`` (1–3 spatial dims).

    ``Y[n, p, c] = (1 / divisor[p]) Σ_k X_pad[n, p·s + k, c]``

    Args:
      x: input ``(N, *spatial, C)``.
      window: window size, an int or one per spatial dim.
      stride: defaults to ``window``.
      padding: same forms as :func:`jcnn.conv`, at most half the window per side.
      count_include_pad: PyTorch's rule — ``True`` divides by the window size
        (the declared padding counts, a ``ceil_mode`` overhang does not);
        ``False`` divides by the number of real input elements in the window.
      ceil_mode: round the output size up (PyTorch's rule).

    Backward: ``dX += dY / divisor`` spread over each window's counted elements.
    bf16/f16 inputs are summed in f32.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.arange(16, dtype=jnp.float32).reshape(1, 4, 4, 1)
      >>> jcnn.avg_pool(x, 2)[0, :, :, 0]
      Array([[ 2.5,  4.5],
             [10.5, 12.5]], dtype=float32)
    """
    fn = "avg_pool"
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"{fn}: `count_include_pad` must be a bool, got {count_include_pad!r}")
    x, window, stride, pads, out_shape, pads_total = _canonicalize(
        fn, x, window, stride, padding, ceil_mode
    )
    counts = _window_counts(x.shape[1:-1], window, stride, pads, out_shape,
                            bool(count_include_pad))
    return _avg_pool(x, window, stride, pads_total, out_shape, _Static(counts, x.shape[1:-1]))


def global_max_pool(x: jax.typing.ArrayLike) -> jax.Array:
    """Max over all spatial positions: ``(N, *spatial, C) → (N, C)`` (first-max rule)."""
    x = as_float_array(x, "x", "global_max_pool")
    check_batched(x, "x", "global_max_pool")
    return max_pool(x, x.shape[1:-1]).reshape(x.shape[0], x.shape[-1])


def global_avg_pool(x: jax.typing.ArrayLike) -> jax.Array:
    """Mean over all spatial positions: ``(N, *spatial, C) → (N, C)``."""
    x = as_float_array(x, "x", "global_avg_pool")
    check_batched(x, "x", "global_avg_pool")
    return avg_pool(x, x.shape[1:-1]).reshape(x.shape[0], x.shape[-1])


# --------------------------------------------------------------------------- #
# max_pool indices and max_unpool
# --------------------------------------------------------------------------- #
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
    """:func:`max_pool` plus, per output, the flat spatial index (row-major over the
    unpadded input's spatial dims, per batch element and channel — PyTorch's
    ``return_indices`` convention) of the element that won (the first maximum)."""
    x, window, stride, _, out_shape, pads_total = _canonicalize(
        "max_pool", x, window, stride, padding, ceil_mode)
    y = max_pool(x, window, stride=stride, padding=padding, ceil_mode=ceil_mode)
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

    ``y`` and ``indices`` are ``max_pool(..., return_indices=True)``'s outputs.
    The output's spatial size is ``output_size`` or PyTorch's default
    ``(n − 1)·s − p_low − p_high + f``.  Values sharing an index (overlapping
    windows with the same winner) are summed, so ``max_unpool`` is exactly the
    transpose of gathering at ``indices`` — its backward.
    """
    fn = "max_unpool"
    y = as_float_array(y, "y", fn)
    nd = check_batched(y, "y", fn)
    indices = jnp.asarray(indices)
    if not jnp.issubdtype(indices.dtype, jnp.integer) or indices.shape != y.shape:
        raise ValueError(f"{fn}: indices must be integers shaped like y, got "
                         f"{indices.dtype}{list(indices.shape)} for y.shape={y.shape}")
    window = ntuple(window, nd, "window", fn)
    stride = window if stride is None else ntuple(stride, nd, "stride", fn)
    pads = padding_pairs(padding, y.shape[1:-1], window, stride, (1,) * nd, fn)
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


# --------------------------------------------------------------------------- #
# adaptive pools (PyTorch's windows: start ⌊i·n/o⌋, end ⌈(i+1)·n/o⌉)
# --------------------------------------------------------------------------- #
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
    nd = check_batched(x, "x", fn)
    if nd > 3:
        raise ValueError(f"{fn}: 1 to 3 spatial dims are supported, got x.shape={x.shape}")
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
    windows may differ in size and overlap.  Backward: ``dX = Aᵀ dY``.
    """
    return _adaptive("adaptive_avg_pool", x, output_size, _adaptive_avg_last)


def adaptive_max_pool(x: jax.typing.ArrayLike, output_size) -> jax.Array:
    """Max pooling to a target spatial size (PyTorch's windows); gradients go to
    each window's first maximum in row-major order, as :func:`max_pool`."""
    return _adaptive("adaptive_max_pool", x, output_size, _adaptive_max_last)
