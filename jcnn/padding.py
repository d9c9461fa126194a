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

from collections.abc import Sequence
from typing import Union

import jax.numpy as jnp

from ._padding_rules import (
    PADDING_MODES,
    as_int,
    border_pad_vjp,
    check_padding_mode,
    ntuple,
    pad_spatial_zeros,
    resolve_padding,
    same_pair,
)

PaddingLike = Union[str, int, Sequence[int | Sequence[int]]]
Pairs = tuple[tuple[int, int], ...]

__all__ = ["PADDING_MODES", "PaddingLike", "border_pad", "output_size", "padding_pairs",
           "same_padding"]


def same_padding(n: int, f: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """The ``(low, high)`` padding of ``"SAME"`` for one dim (lax/TF rule).

    >>> same_padding(5, 3)   # article §4: p = (f - 1) / 2
    (1, 1)
    >>> same_padding(4, 2)   # even kernel: the odd extra goes high
    (0, 1)
    """
    return same_pair(as_int(n, "n", "same_padding"), as_int(f, "f", "same_padding"),
                     as_int(stride, "stride", "same_padding"),
                     as_int(dilation, "dilation", "same_padding"))

def padding_pairs(
    padding: PaddingLike,
    in_sizes: Sequence[int],
    window: Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
) -> tuple[tuple[int, int], ...]:
    """Any accepted padding form as one ``(low, high)`` pair of ints per spatial dim.

    Args:
      padding: ``"VALID"``, ``"SAME"``, an int, one int per spatial dim, or one
        ``(low, high)`` pair per spatial dim.
      in_sizes: the input's spatial sizes.
      window: the window's size per spatial dim (one int per dim).
      stride: an int or one int per spatial dim (``"SAME"`` depends on it).
      dilation: an int or one int per spatial dim (``"SAME"`` depends on it).

    Examples:
      >>> from jcnn import padding_pairs
      >>> padding_pairs("SAME", (7, 8), (3, 2), stride=(2, 1))
      ((1, 1), (0, 1))
    """
    fn = "padding_pairs"
    if isinstance(in_sizes, (str, bytes)) or not isinstance(in_sizes, Sequence):
        raise TypeError(f"{fn}: in_sizes must be a sequence of ints, got {in_sizes!r}")
    sizes = tuple(as_int(v, "in_sizes", fn) for v in in_sizes)
    window = ntuple(window, len(sizes), "window", fn)
    stride = ntuple(stride, len(sizes), "stride", fn)
    dilation = ntuple(dilation, len(sizes), "dilation", fn)
    return resolve_padding(padding, sizes, window, stride, dilation, fn)




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
    n, f = as_int(n, "n", fn), as_int(f, "f", fn)
    (s,), (d,) = ntuple(stride, 1, "stride", fn), ntuple(dilation, 1, "dilation", fn)
    if n < 0 or f < 1:
        raise ValueError(f"{fn}: need n >= 0 and f >= 1, got n={n}, f={f}")
    if isinstance(padding, Sequence) and not isinstance(padding, str):
        padding = [tuple(padding)]
    ((lo, hi),) = resolve_padding(padding, (n,), (f,), (s,), (d,), fn)
    f_eff = (f - 1) * d + 1
    if n + lo + hi < f_eff:
        raise ValueError(
            f"{fn}: the (dilated) kernel ({f_eff}) is larger than the padded input "
            f"({n} + {lo} + {hi} = {n + lo + hi})"
        )
    return (n + lo + hi - f_eff) // s + 1


# --------------------------------------------------------------------------- #
# Padding with a border mode, and its hand-written backward.
# --------------------------------------------------------------------------- #


def border_pad(x, pads, mode: str):
    """Pad the spatial dims of ``(N, *spatial, C)`` by ``pads`` (one ``(low,
    high)`` pair per spatial dim), the padding holding ``mode``'s values:
    ``"zeros"``, or copies of border pixels — ``"reflect"`` (mirrored, edge not
    repeated), ``"replicate"`` (the edge repeated), ``"circular"`` (wrapped).

    Backward: the gradient of every copied pixel folds back onto its source
    pixel — ``dX[src(i)] += dX_pad[i]`` — one scatter-add per dim.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.arange(3.0).reshape(1, 3, 1)
      >>> jcnn.border_pad(x, ((2, 1),), "reflect")[0, :, 0].tolist()
      [2.0, 1.0, 0.0, 1.0, 2.0, 1.0]
      >>> jcnn.border_pad(x, ((1, 1),), "zeros")[0, :, 0].tolist()
      [0.0, 0.0, 1.0, 2.0, 0.0]
    """
    fn = "border_pad"
    x = jnp.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"{fn}: x must be (N, *spatial, C) with at least one spatial dim, "
                         f"got x.shape={x.shape}")
    sizes = x.shape[1:-1]
    if (isinstance(pads, (str, bytes)) or not isinstance(pads, Sequence)
            or len(pads) != len(sizes)):
        raise ValueError(f"{fn}: pads must be one (low, high) pair per spatial dim "
                         f"({len(sizes)}), got {pads!r}")
    pairs = resolve_padding(tuple(pads), sizes, (1,) * len(sizes), (1,) * len(sizes),
                            (1,) * len(sizes), fn)
    check_padding_mode(mode, pairs, sizes, fn)
    if mode == "zeros":
        return pad_spatial_zeros(x, pairs)
    return border_pad_vjp(x, pairs, mode)
