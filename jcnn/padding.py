"""Argument canonicalisation shared by every windowed op: tuples, paddings, sizes.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§4–§5).

The article's output-size formula (§4–§5) lives here::

    n_out = ⌊(n + p_low + p_high − f_eff) / s⌋ + 1,   f_eff = (f − 1)·d + 1

Padding forms accepted everywhere (``conv``, the pools, ``output_size``):

* ``"VALID"`` — no padding (either case);
* ``"SAME"`` — lax/TF rule: output size ``ceil(n / s)``, total padding
  ``max((out − 1)·s + f_eff − n, 0)``, the odd extra on the high side;
* an int ``p`` — ``p`` on both sides of every spatial dim;
* one entry per spatial dim, each an int (both sides) or a ``(low, high)`` pair.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import partial
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

PaddingLike = Union[str, int, Sequence[int | Sequence[int]]]
Pairs = tuple[tuple[int, int], ...]

__all__ = [
    "PADDING_MODES",
    "PaddingLike",
    "border_pad",
    "check_padding_mode",
    "conv_out_shape",
    "ntuple",
    "output_size",
    "padding_pairs",
    "same_padding",
]


def _as_int(value, name: str, fn: str) -> int:
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
            value = (_as_int(value, name, fn),) * n
    if len(value) != n:
        raise ValueError(
            f"{fn}: `{name}` needs one value per spatial dim ({n}), got {tuple(value)!r}"
        )
    out = tuple(_as_int(v, name, fn) for v in value)
    if any(v < minimum for v in out):
        raise ValueError(f"{fn}: `{name}` must be >= {minimum}, got {given!r}")
    return out


def same_padding(n: int, f: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """The ``(low, high)`` padding of ``"SAME"`` for one dim (lax/TF rule).

    >>> same_padding(5, 3)   # article §4: p = (f - 1) / 2
    (1, 1)
    >>> same_padding(4, 2)   # even kernel: the odd extra goes high
    (0, 1)
    """
    out = -(-n // stride)
    f_eff = (f - 1) * dilation + 1
    total = max((out - 1) * stride + f_eff - n, 0)
    return total // 2, total - total // 2


def padding_pairs(
    padding: PaddingLike,
    in_sizes: Sequence[int],
    window: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    fn: str,
) -> tuple[tuple[int, int], ...]:
    """Any accepted padding form as one ``(low, high)`` pair of ints per spatial dim.

    Examples:
      >>> from jcnn import padding_pairs
      >>> padding_pairs("SAME", (7, 8), (3, 2), (2, 1), (1, 1), "example")
      ((1, 1), (0, 1))
    """
    n = len(in_sizes)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * n
        if mode == "SAME":
            return tuple(
                same_padding(*args) for args in zip(in_sizes, window, stride, dilation)
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
                pairs.append(tuple(_as_int(v, "padding", fn) for v in entry))
            else:
                p = _as_int(entry, "padding", fn)
                pairs.append((p, p))
        pairs = tuple(pairs)
    else:
        p = _as_int(padding, "padding", fn)
        pairs = ((p, p),) * n
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{fn}: `padding` must be non-negative, got {padding!r}")
    return pairs


def output_size(
    n: int, f: int, *, stride: int = 1, padding: PaddingLike = 0, dilation: int = 1
) -> int:
    """The article's output size ``⌊(n + 2p − f)/s⌋ + 1`` (§5), with dilation.

    ``padding`` is an int (both sides), a ``(low, high)`` pair, ``"VALID"`` or
    ``"SAME"``.

    >>> output_size(6, 3)                        # 6×6 ∗ 3×3 valid → 4×4
    4
    >>> output_size(7, 3, stride=2, padding=1)
    4
    >>> output_size(5, 3, padding="SAME")
    5
    """
    fn = "output_size"
    n, f = _as_int(n, "n", fn), _as_int(f, "f", fn)
    (s,), (d,) = ntuple(stride, 1, "stride", fn), ntuple(dilation, 1, "dilation", fn)
    if n < 0 or f < 1:
        raise ValueError(f"{fn}: need n >= 0 and f >= 1, got n={n}, f={f}")
    if isinstance(padding, Sequence) and not isinstance(padding, str):
        padding = [tuple(padding)]
    ((lo, hi),) = padding_pairs(padding, (n,), (f,), (s,), (d,), fn)
    f_eff = (f - 1) * d + 1
    if n + lo + hi < f_eff:
        raise ValueError(
            f"{fn}: the (dilated) kernel ({f_eff}) is larger than the padded input "
            f"({n} + {lo} + {hi} = {n + lo + hi})"
        )
    return (n + lo + hi - f_eff) // s + 1


def conv_out_shape(in_sizes, window, stride, pads, dilation) -> tuple[int, ...]:
    """Spatial output shape, assuming arguments already checked."""
    return tuple(
        (n + lo + hi - ((f - 1) * d + 1)) // s + 1
        for n, f, s, (lo, hi), d in zip(in_sizes, window, stride, pads, dilation)
    )


# --------------------------------------------------------------------------- #
# Padding with a border mode, and its hand-written backward.
# --------------------------------------------------------------------------- #
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each padded position along one dim, the input index it copies."""
    i = np.arange(-lo, n + hi)
    if mode == "reflect":  # mirror without repeating the edge: [2 1 | 0 1 2 3 | 2 1]
        i = np.abs(i)
        i = np.where(i > n - 1, 2 * (n - 1) - i, i)
    elif mode == "replicate":  # repeat the edge: [0 0 | 0 1 2 3 | 3 3]
        i = np.clip(i, 0, n - 1)
    else:  # circular: wrap around: [2 3 | 0 1 2 3 | 0 1]
        i = np.mod(i, n)
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


def _mode_pad_forward(x, pads, mode):
    for axis, (lo, hi) in enumerate(pads, start=1):
        if lo or hi:
            x = jnp.take(x, _source_index(x.shape[axis], lo, hi, mode), axis=axis)
    return x


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def border_pad(x, pads, mode):
    """Pad the spatial dims of ``(N, *spatial, C)`` by ``pads`` copying border
    pixels (``mode``: ``"reflect"``, ``"replicate"`` or ``"circular"``).

    Backward: the gradient of every copied pixel folds back onto its source
    pixel — ``dX[src(i)] += dX_pad[i]`` — one scatter-add per dim.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.arange(3.0).reshape(1, 3, 1)
      >>> jcnn.border_pad(x, ((2, 1),), "reflect")[0, :, 0].tolist()
      [2.0, 1.0, 0.0, 1.0, 2.0, 1.0]
    """
    return _mode_pad_forward(x, pads, mode)


def _border_pad_fwd(x, pads, mode):
    return _mode_pad_forward(x, pads, mode), x.shape


def _border_pad_bwd(pads, mode, shape, g):
    for axis in reversed(range(1, len(shape) - 1)):
        lo, hi = pads[axis - 1]
        if lo or hi:
            idx = _source_index(shape[axis], lo, hi, mode)
            folded = jnp.zeros((*g.shape[:axis], shape[axis], *g.shape[axis + 1:]), g.dtype)
            g = folded.at[(slice(None),) * axis + (idx,)].add(g)
    return (g,)


border_pad.defvjp(_border_pad_fwd, _border_pad_bwd)
