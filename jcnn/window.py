"""The one windowed-sum iterator that ``conv`` and the pools share.

A windowed op over a padded input ``xp`` of shape ``(N, *spatial, C)`` visits
every kernel offset ``k`` (row-major over the window) and reads the strided
slice

    xp[:, k·d : k·d + (out − 1)·s + 1 : s, :]        (per spatial dim)

which holds, for every output position, the input element under offset ``k``.
Summing ``slice_k @ W[k]`` over ``k`` is the convolution (article §3, §6);
taking the max or the mean over ``k`` is pooling (§10).  ``scatter_slice`` is
the exact transpose of ``window_slice`` (it puts values back where the slice
read them, zeros elsewhere): the backward passes are sums of those.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["offsets", "pad_spatial", "scatter_slice", "window_slice"]


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
