"""Depthwise convolution's forward and weight gradient as Pallas kernels.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§3, §9).  With one input channel per group every output channel reads one
input channel, so the article's sums have no contraction over channels — they
are elementwise products summed over kernel offsets (forward) or over positions
(weight gradient)::

    Z[n, p, q, cm + u]  = Σ_i Σ_j   X_pad[n, p·s_h+i·d_h, q·s_w+j·d_w, c] · W[i, j, 0, cm + u]
    dW[i, j, 0, cm + u] = Σ_n Σ_p Σ_q X_pad[n, p·s_h+i·d_h, q·s_w+j·d_w, c] · dZ[n, p, q, cm + u]

(``m`` output channels per input channel, ``cm = c·m``).  The general kernels would run one
call per group, and a matrix unit has nothing to multiply; these kernels tile
output positions × channels and accumulate the products in f32, one multiplier
``u`` per call.  The forward kernel's program owns one tile of one image; the
weight-gradient kernel's program owns one kernel offset, one tile of channels
and one share of the batch (partial sums added afterwards).  Reached through
the ``"pallas"`` arrangements (:mod:`jcnn.conv_pallas`,
:mod:`jcnn.conv_pallas_wgrad`) when the layer is depthwise.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ._checks import acc_dtype
from .conv_pallas import _pow2_at_least, call, pad_for_tiles, unravel
from .conv_pallas_wgrad import batch_shares

__all__ = ["depthwise_forward", "depthwise_tiles", "depthwise_weight_grad"]

TILE_POSITIONS = 64  # output positions (rows × columns) per program
TILE_DEPTH = 64  # channels per program, at most


def depthwise_tiles(out_h: int, out_w: int, channels: int) -> dict:
    """One program's tile, every size a power of two: ``rows × cols`` output
    positions (about :data:`TILE_POSITIONS`) and ``depth``
    channels (up to :data:`TILE_DEPTH`).

    Examples:
      >>> from jcnn.conv_pallas_depthwise import depthwise_tiles
      >>> depthwise_tiles(56, 56, 96)
      {'rows': 1, 'cols': 64, 'depth': 64}
      >>> depthwise_tiles(7, 7, 3)
      {'rows': 8, 'cols': 8, 'depth': 4}
    """
    cols = min(_pow2_at_least(out_w), TILE_POSITIONS)
    rows = max(min(_pow2_at_least(out_h), TILE_POSITIONS // cols), 1)
    return {"rows": rows, "cols": cols, "depth": min(_pow2_at_least(channels), TILE_DEPTH)}


def _padded(xp, out_hw, t, geo, channels):
    """``xp`` padded for the tiles (:func:`~jcnn.conv_pallas.pad_for_tiles`), the
    grid of position tiles, and the padded channel count."""
    steps = (pl.cdiv(out_hw[0], t["rows"]), pl.cdiv(out_hw[1], t["cols"]))
    c_pad = pl.cdiv(channels, t["depth"]) * t["depth"]
    return pad_for_tiles(xp, steps, t, geo.window, geo.stride, geo.dilation, c_pad), steps, c_pad


def _forward_kernel(x_ref, w_ref, o_ref, *, geo, t, acc):
    (kh, kw), (sh, sw), (dh, dw) = geo.window, geo.stride, geo.dilation
    rows, cols, depth = t["rows"], t["cols"], t["depth"]
    h0 = pl.program_id(1) * rows * sh
    w0 = pl.program_id(2) * cols * sw
    c0 = pl.program_id(3) * depth
    total = jnp.zeros((rows, cols, depth), acc)
    for i in range(kh):
        for j in range(kw):
            xs = x_ref[pl.ds(h0 + i * dh, rows, sh), pl.ds(w0 + j * dw, cols, sw),
                       pl.ds(c0, depth)]
            total += xs.astype(acc) * w_ref[i, j, pl.ds(c0, depth)].astype(acc)
    o_ref[...] = total.astype(o_ref.dtype)


def _weight_grad_kernel(x_ref, g_ref, o_ref, *, geo, t, per_share, steps, acc):
    kw = geo.window[1]
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    rows, cols, depth = t["rows"], t["cols"], t["depth"]
    steps_h, steps_w = steps
    i, j = unravel(pl.program_id(0), (None, kw))
    c0 = pl.program_id(1) * depth
    n0 = pl.program_id(2) * per_share

    def body(step, total):
        b, r, v = unravel(step, (None, steps_h, steps_w))
        b = n0 + b
        xs = x_ref[b, pl.ds(r * rows * sh + i * dh, rows, sh),
                   pl.ds(v * cols * sw + j * dw, cols, sw), pl.ds(c0, depth)]
        gs = g_ref[b, pl.ds(r * rows, rows), pl.ds(v * cols, cols), pl.ds(c0, depth)]
        return total + xs.astype(acc) * gs.astype(acc)

    total = jax.lax.fori_loop(jnp.int32(0), jnp.int32(per_share * steps_h * steps_w), body,
                              jnp.zeros((rows, cols, depth), acc))
    o_ref[...] = total.reshape(rows * cols, depth).sum(axis=0)


def _per_multiplier(fn, w_or_g, m):
    """``fn`` on each multiplier's channels ``u::m``, interleaved back."""
    outs = [fn(w_or_g[..., u::m]) for u in range(m)]
    out = jnp.stack(outs, axis=-1)
    return out.reshape(*out.shape[:-2], -1)


def depthwise_forward(xp, w, geo, interpret):
    """``xp`` padded ``(N, Hp, Wp, C)``, ``w`` ``(kh, kw, 1, C·m)`` (a 2-D
    geometry) → ``(N, OH, OW, C·m)`` in the accumulation dtype."""
    n, _, _, c = xp.shape
    out_h, out_w = geo.out_shape
    t = depthwise_tiles(out_h, out_w, c)
    xp, (gh, gw), c_pad = _padded(xp, (out_h, out_w), t, geo, c)
    acc = acc_dtype(xp.dtype)
    kh, kw = geo.window
    kernel = functools.partial(_forward_kernel, geo=geo, t=t, acc=acc)

    def one(wu):  # (kh, kw, C): one multiplier's kernel
        wu = jnp.pad(wu, ((0, 0), (0, 0), (0, c_pad - c)))
        out = call(
            kernel,
            out_shape=jax.ShapeDtypeStruct((n, gh * t["rows"], gw * t["cols"], c_pad), acc),
            grid=(n, gh, gw, c_pad // t["depth"]),
            in_specs=[pl.BlockSpec((None, *xp.shape[1:]), lambda b, h, v, d: (b, 0, 0, 0)),
                      pl.BlockSpec((kh, kw, c_pad), lambda b, h, v, d: (0, 0, 0))],
            out_specs=pl.BlockSpec((None, t["rows"], t["cols"], t["depth"]),
                                   lambda b, h, v, d: (b, h, v, d)),
            name="jcnn_depthwise_forward",
            interpret=interpret,
        )(xp, wu)
        return out[:, :out_h, :out_w, :c]

    return _per_multiplier(one, w[:, :, 0], geo.c_out // c)


def depthwise_weight_grad(xp, g, geo, interpret):
    """``xp`` padded ``(N, Hp, Wp, C)``, ``g`` ``(N, OH, OW, C·m)`` (a 2-D
    geometry) → ``(kh, kw, 1, C·m)`` in the accumulation dtype."""
    n, out_h, out_w, _ = g.shape
    c = xp.shape[-1]
    kh, kw = geo.window
    t = depthwise_tiles(out_h, out_w, c)
    xp, steps, c_pad = _padded(xp, (out_h, out_w), t, geo, c)
    shares = batch_shares(n, kh * kw * (c_pad // t["depth"]))
    acc = acc_dtype(xp.dtype)
    kernel = functools.partial(_weight_grad_kernel, geo=geo, t=t, per_share=n // shares,
                               steps=steps, acc=acc)

    def one(gu):  # (N, OH, OW, C): one multiplier's cotangent
        gu = pad_for_tiles(gu, steps, t, (1, 1), (1, 1), (1, 1), c_pad)  # whole dZ tiles
        parts = call(
            kernel,
            out_shape=jax.ShapeDtypeStruct((shares, kh * kw, c_pad), acc),
            grid=(kh * kw, c_pad // t["depth"], shares),
            in_specs=[pl.BlockSpec(xp.shape, lambda k, d, s: (0, 0, 0, 0)),
                      pl.BlockSpec(gu.shape, lambda k, d, s: (0, 0, 0, 0))],
            out_specs=pl.BlockSpec((None, None, t["depth"]), lambda k, d, s: (s, k, d)),
            name="jcnn_depthwise_weight_grad",
            interpret=interpret,
        )(xp, gu)
        return parts.sum(0)[:, :c].reshape(kh, kw, c)

    return _per_multiplier(one, g, geo.c_out // c)[:, :, None]
