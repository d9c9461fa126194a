"""The one windowed-sum iterator that ``conv`` and the pools share.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§3, §6, §10).

A windowed op over a padded input ``xp`` of shape ``(N, *spatial, C)`` visits
every kernel offset ``k`` (row-major over the window) and reads the strided
slice

    xp[:, k·d : k·d + (out − 1)·s + 1 : s, :]        (per spatial dim)

which holds, for every output position, the input element under offset ``k``.
Summing ``slice_k @ W[k]`` over ``k`` is the convolution (article §3, §6);
taking the max or the mean over ``k`` is pooling (§10).  ``scatter_slice`` is
the exact transpose of ``window_slice`` (it puts values back where the slice
read them, zeros elsewhere): the backward passes are sums of those, and
``spread_by_phase`` computes such a sum one stride phase at a time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["offset_slice", "offset_starts", "offsets", "pad_spatial", "patches",
           "scatter_patches", "scatter_slice", "spread_by_phase", "strided", "window_slice"]


def offsets(window: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Kernel offsets in row-major order (the order ties are broken in)."""
    return itertools.product(*(range(f) for f in window))


def pad_spatial(x: jax.Array, pads: Sequence[tuple[int, int]], value=0) -> jax.Array:
    """Pad (or, with negative entries, crop) the spatial dims of ``(N, *sp, C)``."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    config = [(0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)]
    return lax.pad(x, jnp.asarray(value, x.dtype), config)


def window_slice(
    xp: jax.Array,
    offset: Sequence[int],
    out_shape: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> jax.Array:
    """The elements of ``xp`` under kernel offset ``offset`` for every output."""
    starts = [k * d for k, d in zip(offset, dilation)]
    limits = [a + (m - 1) * s + 1 for a, m, s in zip(starts, out_shape, stride)]
    return lax.slice(
        xp,
        (0, *starts, 0),
        (xp.shape[0], *limits, xp.shape[-1]),
        (1, *stride, 1),
    )


def strided(a: jax.Array, stride: Sequence[int]) -> jax.Array:
    """Every ``s``-th element along the spatial dims of ``(N, *spatial, C)``."""
    if all(st == 1 for st in stride):
        return a
    return lax.slice(a, (0,) * a.ndim, a.shape, (1, *stride, 1))


def offset_starts(window: Sequence[int], dilation: Sequence[int]) -> np.ndarray:
    """``(K, nd)`` int array: where each kernel offset's slice starts (``k·d``),
    offsets row-major — the rows a loop over offsets indexes with a traced ``k``."""
    return np.array([[k * d for k, d in zip(off, dilation)] for off in offsets(window)],
                    np.int32).reshape(-1, len(window))


def offset_slice(
    xp: jax.Array, start: jax.Array, out_shape: Sequence[int], stride: Sequence[int]
) -> jax.Array:
    """``window_slice`` at a traced start (an ``offset_starts`` row)."""
    zero = jnp.zeros((), jnp.int32)
    span = [(m - 1) * st + 1 for m, st in zip(out_shape, stride)]
    return strided(lax.dynamic_slice(
        xp, (zero, *start, zero), (xp.shape[0], *span, xp.shape[-1])), stride)


def scatter_slice(
    y: jax.Array,
    offset: Sequence[int],
    padded_shape: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> jax.Array:
    """Transpose of ``window_slice``: ``y`` placed where that slice was read.

    ``padded_shape`` is the spatial shape of the padded input; the result is
    ``(N, *padded_shape, C)`` with zeros everywhere the slice did not read.
    """
    config = [(0, 0, 0)]
    for k, d, m, s, p in zip(offset, dilation, y.shape[1:-1], stride, padded_shape):
        lo = k * d
        config.append((lo, p - lo - ((m - 1) * s + 1), s - 1))
    config.append((0, 0, 0))
    return lax.pad(y, jnp.zeros((), y.dtype), config)


def spread_by_phase(term, arrays, fills, window, stride, padded_shape):
    """``Σ_k scatter_slice(term(i, *arrays), k, padded_shape, stride, 1)`` over the
    window's offsets ``k`` (``i``: the offset's row-major index), computed by
    stride phase with no interior padding.

    Per spatial dim, the padded rows ``a + s·t`` of phase ``a`` receive, from every
    offset ``k ≡ a (mod s)``, the output row ``t − (k − a)/s``: each phase is one
    sum of shifted slices of ``arrays`` (padded once, with ``fills``), which XLA
    fuses into one vectorised loop; the phases are then interleaved.  A sum of
    ``scatter_slice`` placements instead evaluates every interior-padded
    placement per element (slower for a max pool's backward on a CPU).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn.window import scatter_slice, spread_by_phase
      >>> g = jnp.arange(1, 4, dtype=jnp.float32).reshape(1, 3, 1)  # 3 outputs: 3-wide, stride 2
      >>> spread_by_phase(lambda i, g: g * (i + 1), (g,), (0,), (3,), (2,), (7,))[0, :, 0]
      Array([1., 2., 5., 4., 9., 6., 9.], dtype=float32)
      >>> sum(scatter_slice(g * (i + 1), (i,), (7,), (2,), (1,)) for i in range(3))[0, :, 0]
      Array([1., 2., 5., 4., 9., 6., 9.], dtype=float32)
    """
    nd = len(window)
    n, out_shape, c = arrays[0].shape[0], arrays[0].shape[1:-1], arrays[0].shape[-1]
    rows = [-(-p // s) for p, s in zip(padded_shape, stride)]  # rows per phase (rounded up)
    left = [(f - 1) // s for f, s in zip(window, stride)]  # the largest shift
    padded = [jnp.pad(a, ((0, 0), *((lo, max(t - m, 0)) for lo, t, m in
                                    zip(left, rows, out_shape)), (0, 0)), constant_values=v)
              for a, v in zip(arrays, fills)]
    flat = {k: i for i, k in enumerate(offsets(window))}
    phases = []
    for a in itertools.product(*(range(s) for s in stride)):
        total = None
        for k in itertools.product(*(range(ai, f, s) for ai, f, s in zip(a, window, stride))):
            shift = [(ki - ai) // s for ki, ai, s in zip(k, a, stride)]
            index = (slice(None), *(slice(lo - e, lo - e + t) for lo, e, t in
                                    zip(left, shift, rows)), slice(None))
            t = term(flat[k], *(p[index] for p in padded))
            total = t if total is None else total + t
        if total is None:  # a stride wider than the window: rows no offset reaches
            total = jnp.zeros((n, *rows, c), jax.eval_shape(
                lambda *a: term(0, *a), *arrays).dtype)
        phases.append(total)
    if len(phases) == 1:
        full = phases[0]
    else:  # (s_1, …, s_nd, N, t_1, …, t_nd, C) → (N, t_1·s_1, …, t_nd·s_nd, C)
        stacked = jnp.stack(phases).reshape(*stride, *phases[0].shape)
        order = [nd, *(x for i in range(nd) for x in (nd + 1 + i, i)), 2 * nd + 1]
        full = stacked.transpose(order).reshape(n, *(t * s for t, s in zip(rows, stride)), c)
    return full[(slice(None), *(slice(0, p) for p in padded_shape), slice(None))]


def patches(
    xp: jax.Array,
    window: Sequence[int],
    out_shape: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> jax.Array:
    """Every offset's ``window_slice`` stacked: ``(N, *out, K, C)``, offsets row-major.

    Equal to ``stack([window_slice(xp, k, ...) for k in offsets(window)], -2)``,
    built one spatial dim at a time (last dim first): each pass stacks that
    dim's ``f`` strided slices in front of the channels, so every copy moves
    runs of ``f_later · C`` contiguous values instead of ``C`` (what makes a
    7×7 window over 3 channels cheap).
    """
    nd = len(window)
    n, c = xp.shape[0], xp.shape[-1]
    a = xp
    for j in reversed(range(nd)):
        f, m, s, d = window[j], out_shape[j], stride[j], dilation[j]
        index = [slice(None)] * a.ndim
        pieces = []
        for k in range(f):
            index[1 + j] = slice(k * d, k * d + (m - 1) * s + 1, s)
            pieces.append(a[tuple(index)])
        a = jnp.stack(pieces, axis=-2)
        a = a.reshape(*a.shape[:-2], a.shape[-2] * a.shape[-1])  # (f_j, f_later.., C)
    return a.reshape(n, *out_shape, math.prod(window), c)


def scatter_patches(
    p: jax.Array,
    window: Sequence[int],
    padded_shape: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> jax.Array:
    """Transpose of ``patches``: ``(N, *out, K, C)`` → ``(N, *padded_shape, C)``.

    Equal to ``Σ_k scatter_slice(p[..., k, :], k, ...)``, done one spatial dim
    at a time (first dim first), so ``Σ f`` planes of ``f_later · C`` contiguous
    values are placed instead of ``Π f`` planes of ``C``.  Along a dim with
    stride ``s`` offset ``k`` writes positions ``o·s + k·d``: all in phase
    ``r = k·d mod s``, at index ``o + ⌊k·d/s⌋`` of that phase's grid.  Each phase
    is summed densely (plain shifts, no inserted zeros) and the ``s`` phases are
    interleaved once.
    """
    nd = len(window)
    n, c = p.shape[0], p.shape[-1]
    out_shape = p.shape[1:1 + nd]
    a = p.reshape(n, *out_shape, *window, c)
    for j in range(nd):
        f, m, s, d, size = window[j], out_shape[j], stride[j], dilation[j], padded_shape[j]
        q = -(-size // s)  # phase-grid length
        phases = {}
        for k in range(f):
            plane = lax.index_in_dim(a, k, 1 + nd, keepdims=False)  # this dim's kernel axis
            t, r = divmod(k * d, s)  # grid shift, phase
            config = [(0, 0, 0)] * plane.ndim
            config[1 + j] = (t, q - t - m, 0)
            term = lax.pad(plane, jnp.zeros((), plane.dtype), config)
            phases[r] = term if r not in phases else phases[r] + term
        if s == 1:
            a = phases[0]
            continue
        ref = next(iter(phases.values()))
        grid = jnp.stack([phases.get(r, jnp.zeros_like(ref)) for r in range(s)], axis=2 + j)
        grid = grid.reshape(*ref.shape[:1 + j], q * s, *ref.shape[2 + j:])  # interleave
        a = lax.slice_in_dim(grid, 0, size, axis=1 + j)
    return a
