"""The windows pooling reduces, and their bookkeeping: argument checks, the
per-dim passes of a separable reduction, the mask of each window's first
maximum, window sums and their transposes (article §10–§11).  The pooling
operations and their ``custom_vjp`` rules are in :mod:`jcnn.pooling`."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from . import window as win
from ._checks import acc_dtype, as_float_array
from ._padding_rules import ntuple, resolve_padding

__all__ = []


def spatial_dims(fn, x, size, name="window", nd=None) -> int:
    """How many spatial dims a pool call means, and the rank check that goes with it.

    The N-d functions (``nd is None``) read it from ``size`` — one entry per
    spatial dim — never from ``x``: an unbatched image ``(H, W, C)`` would
    otherwise pool as a batch of 1-D signals.  The rank-specific ones
    (``max_pool2d`` …) are told ``nd`` and accept an int.
    """
    if nd is None:
        if not isinstance(size, (tuple, list)):
            guess = x.ndim - 2 if 1 <= x.ndim - 2 <= 3 else 2
            alias = (f", or call {fn}{guess}d(x, {size!r})" if fn in ("max_pool", "avg_pool")
                     else "")
            raise TypeError(
                f"{fn}: an int `{name}` ({size!r}) does not say how many spatial dims to "
                f"pool; give one per spatial dim, e.g. {name}={(size,) * guess!r}{alias} "
                f"(x.shape={x.shape}; one unbatched example needs a batch axis first: "
                f"x[None])")
        nd = len(size)
    if not 1 <= nd <= 3:
        raise ValueError(f"{fn}: 1 to 3 spatial dims are supported, got {name}={size!r} "
                         f"(x.shape={x.shape})")
    if x.ndim != nd + 2:
        raise ValueError(
            f"{fn}: `x` must be {nd + 2}-d (N, {', '.join(['spatial'] * nd)}, C) to pool "
            f"{nd} spatial dim{'s' * (nd > 1)}, got x.shape={x.shape}"
            + ("; a single example needs a batch axis: x[None]" if x.ndim == nd + 1 else ""))
    return nd


def canonicalize(fn, x, window, stride, padding, ceil_mode, nd=None):
    """Check a pool call; returns ``(x, window, stride, pads, out_shape, pads_total)``.

    ``pads`` is the declared padding; ``pads_total`` adds the high-side overhang
    that ``ceil_mode`` lets the last window reach (never counted by any divisor).
    """
    x = as_float_array(x, "x", fn)
    nd = spatial_dims(fn, x, window, "window", nd)
    window = ntuple(window, nd, "window", fn)
    stride = window if stride is None else ntuple(stride, nd, "stride", fn)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"{fn}: `ceil_mode` must be a bool, got {ceil_mode!r}")
    sizes = x.shape[1:-1]
    pads = resolve_padding(padding, sizes, window, stride, (1,) * nd, fn)
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


def window_counts(sizes, window, stride, pads, out_shape, include_pad):
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


def real_mask(offset, sizes, stride, pads, out_shape):
    """Static ``(1, *out, 1)`` bool: does offset ``offset`` land on a real element?"""
    mask = np.ones((), bool)
    for k, n, s, (lo, _), m in zip(offset, sizes, stride, pads, out_shape):
        pos = np.arange(m) * s + k
        mask = np.logical_and.outer(mask, (pos >= lo) & (pos < lo + n))
    return mask.reshape(1, *out_shape, 1)


def crop(xp, pads_total, sizes):
    return win.pad_spatial(xp, [(-lo, -(p - lo - n)) for (lo, _), n, p in
                                zip(pads_total, sizes, xp.shape[1:-1])])


# --------------------------------------------------------------------------- #
# max pooling
# --------------------------------------------------------------------------- #
def one_dim(i, window, stride, pads_total, out_shape, sizes):
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


def passes(window, stride, pads_total, out_shape, sizes):
    """The 1-D passes (skipping trivial dims), as ``(window, stride, pads, out)``.

    The last spatial dim goes first: the first maximum (along dim 1) of the
    rows' first maxima is then the box's first maximum in row-major order."""
    out, cur = [], list(sizes)
    for i in reversed(range(len(window))):
        if window[i] == 1 and stride[i] == 1 and pads_total[i] == (0, 0):
            continue
        w1, s1, p1, _ = one_dim(i, window, stride, pads_total, out_shape, cur)
        cur[i] = out_shape[i]
        out.append((w1, s1, p1, tuple(cur)))
    return out


def max_forward(x, window, stride, pads_total, out_shape):
    xp = win.pad_spatial(x, pads_total, -jnp.inf)
    out = None
    for k in win.offsets(window):
        sl = win.window_slice(xp, k, out_shape, stride, (1,) * len(window))
        out = sl if out is None else jnp.maximum(out, sl)  # NaN propagates
    return out


def first_maximum(x, y, window, stride, pads_total, out_shape):
    """Per output, the row-major index of its window's first maximum (the offset
    whose element equals ``y``, or is NaN when ``y`` is; ``prod(window)`` where no
    real element does — a window wholly in the padding).  One pass over the
    offsets, one small integer array out."""
    xp = win.pad_spatial(x, pads_total, -jnp.inf)
    sizes = x.shape[1:-1]
    padded = any(lo or hi for lo, hi in pads_total)
    y_nan = jnp.isnan(y)
    none = math.prod(window)
    idx = jnp.full(y.shape, none, jnp.int8 if none < 127 else jnp.int32)
    for i, k in enumerate(win.offsets(window)):
        sl = win.window_slice(xp, k, out_shape, stride, (1,) * len(window))
        hit = (sl == y) | (jnp.isnan(sl) & y_nan)
        if padded:
            hit = hit & real_mask(k, sizes, stride, pads_total, out_shape)
        idx = jnp.where((idx == none) & hit, jnp.asarray(i, idx.dtype), idx)
    return idx


def max_pool_mask(x, y, window, stride, pads_total, out_shape):
    """Yield ``(offset, hit)``: ``hit`` marks, per output, whether the window's
    first maximum (row-major) sits at ``offset``.  Exactly one hit per window."""
    idx = first_maximum(x, y, window, stride, pads_total, out_shape)
    for i, k in enumerate(win.offsets(window)):
        yield k, idx == i


def window_sum(x, window, stride, pads_total, out_shape):
    """Σ over each window, one spatial dim at a time, in the accumulation dtype."""
    x = x.astype(acc_dtype(x.dtype))
    for w1, s1, p1, o1 in passes(window, stride, pads_total, out_shape, x.shape[1:-1]):
        xp = win.pad_spatial(x, p1)
        total = None
        for k in win.offsets(w1):
            sl = win.window_slice(xp, k, o1, s1, (1,) * len(w1))
            total = sl if total is None else total + sl
        x = total
    return x


def window_spread(g, window, stride, pads_total, out_shape, sizes):
    """Transpose of ``_window_sum``: each value added back over its window.

    Tiling windows (stride = window) broadcast each value over its tile; others
    sum shifted slices per stride phase (:func:`jcnn.window.spread_by_phase`):
    one fused loop per phase, where a sum of ``Π f`` interior-padded placements
    evaluates every placement per element (slower on a CPU: BENCHMARKS.md)."""
    padded = [n + lo + hi for n, (lo, hi) in zip(sizes, pads_total)]
    if tuple(stride) == tuple(window):  # tiling windows: every input in at most one window
        tiles = g.reshape(g.shape[0], *(a for m in out_shape for a in (m, 1)), g.shape[-1])
        tiles = jnp.broadcast_to(tiles, (g.shape[0], *(a for m, f in zip(out_shape, window)
                                                        for a in (m, f)), g.shape[-1]))
        total = tiles.reshape(g.shape[0], *(m * f for m, f in zip(out_shape, window)),
                              g.shape[-1])
        rest = [(0, p - m * f) for p, m, f in zip(padded, out_shape, window)]
        return crop(win.pad_spatial(total, rest), pads_total, sizes)
    total = win.spread_by_phase(lambda i, g: g, (g,), (0,), window, stride, padded)
    return crop(total, pads_total, sizes)
