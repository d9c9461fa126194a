"""The padding rules every windowed op shares, canonicalised once: ints and
per-dim tuples, the accepted padding forms as ``(low, high)`` pairs, and padding
with a border mode (its backward folds copies back onto their sources).  The
public entry points are in :mod:`jcnn.padding`."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = []


def as_int(value, name: str, fn: str) -> int:
    """``value`` as a Python int; TypeError for bools, floats and other kinds."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: `{name}` must be an integer, got the bool {value!r}")
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{fn}: `{name}` must be a Python int known while tracing, got a traced value "
            f"({type(value).__name__}); under jax.jit mark it static, e.g. "
            f"jax.jit(f, static_argnames=('{name}',))")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{fn}: `{name}` must be an integer, got {value!r} ({type(value).__name__})"
        ) from None


def ntuple(value, n: int, name: str, fn: str, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or a length-``n`` sequence of ints, as a tuple; each ``>= minimum``."""
    given = value
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        if isinstance(value, np.ndarray) and value.ndim == 1:
            value = tuple(value.tolist())
        else:
            value = (as_int(value, name, fn),) * n
    if len(value) != n:
        raise ValueError(
            f"{fn}: `{name}` needs one value per spatial dim ({n}), got {tuple(value)!r}"
        )
    out = tuple(as_int(v, name, fn) for v in value)
    if any(v < minimum for v in out):
        raise ValueError(f"{fn}: `{name}` must be >= {minimum}, got {given!r}")
    return out


def same_pair(n: int, f: int, stride: int, dilation: int) -> tuple[int, int]:
    """The ``(low, high)`` padding of ``"SAME"`` for one dim (lax/TF rule)."""
    out = -(-n // stride)
    f_eff = (f - 1) * dilation + 1
    total = max((out - 1) * stride + f_eff - n, 0)
    return total // 2, total - total // 2



def resolve_padding(padding, in_sizes, window, stride, dilation, fn: str):
    """:func:`padding_pairs` on checked sizes, its errors naming ``fn``."""
    n = len(in_sizes)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * n
        if mode == "SAME":
            return tuple(
                same_pair(*args) for args in zip(in_sizes, window, stride, dilation)
            )
        raise ValueError(
            f"{fn}: unknown padding {padding!r}; use 'VALID', 'SAME', an int, "
            "one int per spatial dim or one (low, high) pair per spatial dim"
        )
    if isinstance(padding, Sequence):
        if len(padding) != n:
            raise ValueError(
                f"{fn}: `padding` needs one entry per spatial dim ({n}), got {padding!r}"
            )
        pairs = []
        for entry in padding:
            if isinstance(entry, Sequence) and not isinstance(entry, str):
                if len(entry) != 2:
                    raise ValueError(
                        f"{fn}: each `padding` pair must be (low, high), got {entry!r}"
                    )
                pairs.append(tuple(as_int(v, "padding", fn) for v in entry))
            else:
                p = as_int(entry, "padding", fn)
                pairs.append((p, p))
        pairs = tuple(pairs)
    else:
        p = as_int(padding, "padding", fn)
        pairs = ((p, p),) * n
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{fn}: `padding` must be non-negative, got {padding!r}")
    return pairs



PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each padded position along one dim, the input index it copies."""
    i = np.arange(-lo, n + hi)
    if mode == "reflect":  # mirror without repeating the edge: [2 1 | 0 1 2 3 | 2 1]
        i = np.abs(i)
        i = np.where(i > n - 1, 2 * (n - 1) - i, i)
    elif mode == "replicate":  # repeat the edge: [0 0 | 0 1 2 3 | 3 3]
        i = np.clip(i, 0, n - 1)
    elif mode == "circular":  # wrap around: [2 3 | 0 1 2 3 | 0 1]
        i = np.mod(i, n)
    else:
        raise ValueError(f"border_pad: unknown padding mode {mode!r}; use one of {PADDING_MODES}")
    return i


def check_padding_mode(mode, pads, sizes, fn: str) -> str:
    """Validate ``padding_mode`` against the padding and the input sizes."""
    if mode not in PADDING_MODES:
        raise ValueError(f"{fn}: unknown padding_mode {mode!r}; use one of {PADDING_MODES}")
    for i, (n, (lo, hi)) in enumerate(zip(sizes, pads)):
        if mode == "reflect" and max(lo, hi) >= n:
            raise ValueError(f"{fn}: reflect padding ({lo}, {hi}) must be smaller than the "
                             f"input size {n} in spatial dim {i}")
        if mode == "circular" and max(lo, hi) > n:
            raise ValueError(f"{fn}: circular padding ({lo}, {hi}) must not exceed the input "
                             f"size {n} in spatial dim {i}")
    return mode


def mode_pad_forward(x, pads, mode):
    for axis, (lo, hi) in enumerate(pads, start=1):
        if lo or hi:
            x = jnp.take(x, source_index(x.shape[axis], lo, hi, mode), axis=axis)
    return x



def pad_spatial_zeros(x, pairs):
    """``x`` padded with zeros on its spatial dims (JAX's own ``pad`` transposes
    to a slice)."""
    return jnp.pad(x, ((0, 0), *pairs, (0, 0)))


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def border_pad_vjp(x, pads, mode):
    return mode_pad_forward(x, pads, mode)


def _border_pad_fwd(x, pads, mode):
    return mode_pad_forward(x, pads, mode), x.shape


def _border_pad_bwd(pads, mode, shape, g):
    for axis in reversed(range(1, len(shape) - 1)):
        lo, hi = pads[axis - 1]
        if lo or hi:
            idx = source_index(shape[axis], lo, hi, mode)
            folded = jnp.zeros((*g.shape[:axis], shape[axis], *g.shape[axis + 1:]), g.dtype)
            g = folded.at[(slice(None),) * axis + (idx,)].add(g)
    return (g,)


border_pad_vjp.defvjp(_border_pad_fwd, _border_pad_bwd)
