"""Max and average pooling as windowed reductions, with hand-written backwards.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§10–§11).

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
from ._pool_windows import (
    canonicalize,
    crop,
    first_maximum,
    max_forward,
    passes,
    spatial_dims,
    window_counts,
    window_spread,
    window_sum,
)
from .padding import PaddingLike

__all__ = ["avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d", "global_avg_pool",
           "global_avg_pool1d", "global_avg_pool2d", "global_avg_pool3d", "global_max_pool",
           "global_max_pool1d", "global_max_pool2d", "global_max_pool3d", "max_pool",
           "max_pool1d", "max_pool2d", "max_pool3d"]


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_pool(x, window, stride, pads_total, out_shape):
    return max_forward(x, window, stride, pads_total, out_shape)


def _max_pool_fwd(x, window, stride, pads_total, out_shape):
    y = max_forward(x, window, stride, pads_total, out_shape)
    return y, (x, y)


def _max_pool_bwd(window, stride, pads_total, out_shape, res, g):
    """The cotangent routed through the mask of the maxima: each input element
    collects ``g`` from every window whose first maximum it is."""
    x, y = res
    padded_shape = [n + lo + hi for n, (lo, hi) in zip(x.shape[1:-1], pads_total)]
    idx = first_maximum(x, y, window, stride, pads_total, out_shape)
    zero = jnp.zeros((), g.dtype)
    dxp = win.spread_by_phase(lambda i, idx, g: jnp.where(idx == i, g, zero), (idx, g),
                              (-1, 0), window, stride, padded_shape)
    return (crop(dxp, pads_total, x.shape[1:-1]),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool(
    x: jax.typing.ArrayLike,
    window: int | tuple[int, ...],
    *,
    stride: int | tuple[int, ...] | None = None,
    padding: PaddingLike = "VALID",
    ceil_mode: bool = False,
) -> jax.Array:
    """Max pooling over ``(N, *spatial, C)`` (1–3 spatial dims), channels pooled apart.

    ``Y[n, p, c] = max_k X_pad[n, p·s + k, c]``

    Args:
      x: input ``(N, *spatial, C)``.
      window: window size, one per spatial dim — its length says how many
        spatial dims are pooled (``max_pool2d(x, 2)`` takes an int).
      stride: defaults to ``window``.
      padding: same forms as :func:`jcnn.conv`; padding acts as −inf (never
        wins) and may be at most half the window on each side (as PyTorch).
      ceil_mode: PyTorch's rule — round the output size up, so a last window
        may overhang the input (it never starts in the padding).

    For the index of each window's winner (PyTorch's ``return_indices``), see
    :func:`jcnn.max_pool_with_indices`.

    Backward: each window's cotangent goes to its first maximal element in
    row-major window order; ties are not split, NaN windows route to their
    first NaN (see the module docstring).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.arange(16, dtype=jnp.float32).reshape(1, 4, 4, 1)
      >>> jcnn.max_pool(x, (2, 2))[0, :, :, 0]
      Array([[ 5.,  7.],
             [13., 15.]], dtype=float32)
    """
    return _max_pool_nd("max_pool", None, x, window, stride, padding, ceil_mode)


def _max_pool_nd(fn, nd, x, window, stride, padding, ceil_mode):
    x, window, stride, _, out_shape, pads_total = canonicalize(
        fn, x, window, stride, padding, ceil_mode, nd)
    for w1, s1, p1, o1 in passes(window, stride, pads_total, out_shape, x.shape[1:-1]):
        x = _max_pool(x, w1, s1, p1, o1)  # one spatial dim at a time (separable)
    return x


# --------------------------------------------------------------------------- #
# average pooling
# --------------------------------------------------------------------------- #
def _avg_forward(x, window, stride, pads_total, out_shape, counts):
    total = window_sum(x, window, stride, pads_total, out_shape)
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
    dx = window_spread(share, window, stride, pads_total, out_shape, counts.sizes)
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
      window: window size, one per spatial dim — its length says how many
        spatial dims are pooled (``avg_pool2d(x, 2)`` takes an int).
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
      >>> jcnn.avg_pool(x, (2, 2))[0, :, :, 0]
      Array([[ 2.5,  4.5],
             [10.5, 12.5]], dtype=float32)
    """
    return _avg_pool_nd("avg_pool", None, x, window, stride, padding, count_include_pad,
                        ceil_mode)


def _avg_pool_nd(fn, nd, x, window, stride, padding, count_include_pad, ceil_mode):
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"{fn}: `count_include_pad` must be a bool, got {count_include_pad!r}")
    x, window, stride, pads, out_shape, pads_total = canonicalize(
        fn, x, window, stride, padding, ceil_mode, nd)
    counts = window_counts(x.shape[1:-1], window, stride, pads, out_shape,
                            bool(count_include_pad))
    return _avg_pool(x, window, stride, pads_total, out_shape, _Static(counts, x.shape[1:-1]))


def global_max_pool(x: jax.typing.ArrayLike) -> jax.Array:
    """Max over all spatial positions: ``(N, *spatial, C) → (N, C)`` (first-max rule).

    Every dim between the first and the last is spatial; to have the rank
    checked, use :func:`global_max_pool2d` (``1d``, ``3d``).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.global_max_pool(jnp.arange(8.0).reshape(1, 2, 2, 2)).tolist()
      [[6.0, 7.0]]
    """
    return _global("global_max_pool", None, x, _max_pool_nd)


def global_avg_pool(x: jax.typing.ArrayLike) -> jax.Array:
    """Mean over all spatial positions: ``(N, *spatial, C) → (N, C)``.

    Every dim between the first and the last is spatial; to have the rank
    checked, use :func:`global_avg_pool2d` (``1d``, ``3d``).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.global_avg_pool(jnp.arange(8.0).reshape(1, 2, 2, 2)).tolist()
      [[3.0, 4.0]]
    """
    return _global("global_avg_pool", None, x, _avg_pool_nd)


def _global(fn, nd, x, pool):
    """Both global pools reduce the flattened positions ``(N, H·W·…, C)``: no window
    sizes are asked for, so a symbolic (exported) image size pools as a concrete one."""
    x = as_float_array(x, "x", fn)
    if nd is not None:
        spatial_dims(fn, x, None, "window", nd)
    elif x.ndim < 3:
        check_batched(x, "x", fn)
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    if pool is _max_pool_nd:
        return _global_max(flat, flat.shape[1])
    total = jnp.sum(flat, axis=1, dtype=acc_dtype(x.dtype))
    return (total / flat.shape[1]).astype(x.dtype)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _global_max(flat, positions):
    return _global_max_fwd(flat, positions)[0]


def _global_max_fwd(flat, positions):
    # argmax takes the first maximum (a NaN counts as the largest), the rule above
    idx = jnp.argmax(flat, axis=1, keepdims=True)
    return jnp.take_along_axis(flat, idx, axis=1)[:, 0], idx


def _global_max_bwd(positions, idx, g):
    """Each ``(n, c)`` cotangent goes to the position of its first maximum."""
    hit = jnp.arange(positions)[None, :, None] == idx
    return (jnp.where(hit, g[:, None, :], jnp.zeros((), g.dtype)),)


_global_max.defvjp(_global_max_fwd, _global_max_bwd)


# --------------------------------------------------------------------------- #
# Rank-checked entry points: max_pool2d(x, 2) and friends.
# --------------------------------------------------------------------------- #
def _rank_specific(nd):
    shape = ", ".join(["N", *{1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}[nd], "C"])
    unit = (3,) * nd

    def max_pool_nd(x, window, *, stride=None, padding="VALID", ceil_mode=False):
        return _max_pool_nd(f"max_pool{nd}d", nd, x, window, stride, padding, ceil_mode)

    def avg_pool_nd(x, window, *, stride=None, padding="VALID", count_include_pad=True,
                    ceil_mode=False):
        return _avg_pool_nd(f"avg_pool{nd}d", nd, x, window, stride, padding,
                            count_include_pad, ceil_mode)

    def global_max_pool_nd(x):
        return _global(f"global_max_pool{nd}d", nd, x, _max_pool_nd)

    def global_avg_pool_nd(x):
        return _global(f"global_avg_pool{nd}d", nd, x, _avg_pool_nd)

    out = {}
    for f, base, what in ((max_pool_nd, "max_pool", "window"),
                          (avg_pool_nd, "avg_pool", "window"),
                          (global_max_pool_nd, "global_max_pool", None),
                          (global_avg_pool_nd, "global_avg_pool", None)):
        name = f"{base}{nd}d"
        f.__name__ = f.__qualname__ = name
        call = f"jcnn.{name}(x, 3)" if what else f"jcnn.{name}(x)"
        res = f"(2, {', '.join(['1'] * nd)}, 4)" if what else "(2, 4)"
        f.__doc__ = (
            f""":func:`{base}` for ``x`` of shape ``({shape})``: the rank is checked
    {'and an int window means the same size in every spatial dim' if what else ''}.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.ones((2, {', '.join(map(str, unit))}, 4))
      >>> {call}.shape
      {res}
    """)
        out[name] = f
    return out


_RANK = {**_rank_specific(1), **_rank_specific(2), **_rank_specific(3)}
max_pool1d, avg_pool1d = _RANK["max_pool1d"], _RANK["avg_pool1d"]
max_pool2d, avg_pool2d = _RANK["max_pool2d"], _RANK["avg_pool2d"]
max_pool3d, avg_pool3d = _RANK["max_pool3d"], _RANK["avg_pool3d"]
global_max_pool1d, global_avg_pool1d = _RANK["global_max_pool1d"], _RANK["global_avg_pool1d"]
global_max_pool2d, global_avg_pool2d = _RANK["global_max_pool2d"], _RANK["global_avg_pool2d"]
global_max_pool3d, global_avg_pool3d = _RANK["global_max_pool3d"], _RANK["global_avg_pool3d"]
