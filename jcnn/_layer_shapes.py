"""Input shapes of layers: the checks every ``init`` runs and the per-dim sizes.

A layer's ``init`` takes ``input_shape = (N, *spatial, C)`` with ``N`` an int or
``-1`` (any batch size).  Window-like arguments (a kernel size, a pool window,
an adaptive pool's output size) may be one int for every spatial dim: the
layer expands it once it sees the input's rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def check_input_shape(fn: str, input_shape) -> tuple[int, ...]:
    """``input_shape`` as a tuple of ints (the batch may be ``-1``), else a clear error.

    Examples:
      >>> from jcnn._layer_shapes import check_input_shape
      >>> check_input_shape("Conv", [-1, 8, 8, 3])
      (-1, 8, 8, 3)
      >>> check_input_shape("Conv", (None, 8, 8, 3))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: Conv: input shape (None, 8, 8, 3) gives the batch size as None; ...
    """
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise TypeError(f"{fn}: `input_shape` must be a tuple of ints such as (-1, 28, 28, 1) "
                        f"(batch, *spatial, channels), got {input_shape!r}")
    shape = tuple(input_shape)
    if shape and shape[0] is None:
        rest = ", ".join(str(d) for d in shape[1:])
        raise ValueError(f"{fn}: input shape {shape} gives the batch size as None; write -1 "
                         f"for any batch size: (-1, {rest})")
    for i, d in enumerate(shape):
        ok = isinstance(d, (int, np.integer)) and not isinstance(d, bool)
        if not ok or d < (-1 if i == 0 else 0):
            what = "an int >= 0, or -1 for the batch" if i == 0 else "an int >= 0"
            raise ValueError(f"{fn}: input shape {shape} has {d!r} at position {i}; each size "
                             f"must be {what}")
    return tuple(int(d) for d in shape)


def per_dim(fn: str, value, input_shape, what: str = "window") -> tuple:
    """``value`` with one entry per spatial dim of ``input_shape`` (an int repeated);
    a sequence must already have one, else ValueError."""
    nd = len(input_shape) - 2
    if nd < 1:
        raise ValueError(f"{fn}: input shape {tuple(input_shape)} has no spatial dim (need "
                         f"(N, *spatial, C))")
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != nd:
            raise ValueError(f"{fn}: input shape {tuple(input_shape)} does not match the "
                             f"{what} {tuple(value)} (need (N, *spatial, C) with {len(value)} "
                             f"spatial dims)")
        return tuple(value)
    return (value,) * nd


def shape_of(fn, input_shape, *arg_shapes) -> tuple[int, ...]:
    """Output shape of ``fn`` on an input of ``input_shape`` (batch -1 → 1), by tracing."""
    concrete = tuple(1 if d == -1 else d for d in input_shape)
    structs = [jax.ShapeDtypeStruct(concrete, jnp.float32)]
    structs += [jax.ShapeDtypeStruct(s, jnp.float32) for s in arg_shapes]
    out = jax.eval_shape(fn, *structs).shape
    return (input_shape[0], *out[1:])
