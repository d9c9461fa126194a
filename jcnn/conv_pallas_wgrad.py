"""Conv's weight gradient as one fused Pallas kernel (an arrangement).

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§9).  The weight gradient is the correlation of the input with the cotangent::

    dW[i, j, c, o] = Σ_n Σ_p Σ_q  X_pad[n, p·s_h + i·d_h, q·s_w + j·d_w, c] · dZ[n, p, q, o]

One program owns one kernel offset ``(i, j)``, one tile of input channels ×
output channels and one share of the batch; it walks that share tile of output
positions by tile, loads the offset's strided slice of ``X_pad`` and the
matching tile of ``dZ`` straight from memory and adds their product
(``sliceᵀ · dZ``, a reduction over positions) into one f32 accumulator.  No
patch matrix and no per-offset product is written.  The shares' partial sums
(a few per offset, so that a GPU has enough programs) are added afterwards.
Groups run as one kernel call per group; depthwise layers run the depthwise
kernel (:mod:`jcnn.conv_pallas_depthwise`).

Like the forward kernel (:mod:`jcnn.conv_pallas`) it compiles through Triton on
a GPU, runs in interpret mode elsewhere.  The plan never picks it on its own:
on an H200 it lost to dW per offset on every layer timed (BENCHMARKS.md);
``plan=ConvPlan(..., weight_grad="pallas")`` forces it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ._checks import acc_dtype
from .conv_pallas import as_2d, call, on_platforms, pad_for_tiles, tiles, unravel

__all__ = ["MIN_PROGRAMS", "batch_shares", "weight_grad_pallas"]

MIN_PROGRAMS = 256  # split the batch until about this many programs run at once


def batch_shares(n: int, programs: int) -> int:
    """How many shares the batch is split into: the largest divisor of ``n`` that
    keeps ``programs · shares`` at most about :data:`MIN_PROGRAMS` (at least 1).

    Examples:
      >>> from jcnn.conv_pallas_wgrad import batch_shares
      >>> batch_shares(64, 9 * 2 * 1)  # 3×3, 64 → 64 channels: 18 programs per share
      8
      >>> batch_shares(64, 9 * 16 * 8)  # 512 → 512: enough programs already
      1
    """
    want = max(1, -(-MIN_PROGRAMS // max(programs, 1)))
    return max(d for d in range(1, n + 1) if n % d == 0 and d <= want)


def _kernel(x_ref, g_ref, o_ref, *, kw, stride, dilation, t, per_share, steps, precision,
            acc):
    (sh, sw), (dh, dw) = stride, dilation
    rows, cols, chunk, out = t["rows"], t["cols"], t["chunk"], t["out"]
    steps_h, steps_w = steps
    i, j = unravel(pl.program_id(0), (None, kw))
    c0 = pl.program_id(1) * chunk
    o0 = pl.program_id(2) * out
    n0 = pl.program_id(3) * per_share

    def body(step, total):
        b, r, v = unravel(step, (None, steps_h, steps_w))
        b = n0 + b
        xs = x_ref[b, pl.ds(r * rows * sh + i * dh, rows, sh),
                   pl.ds(v * cols * sw + j * dw, cols, sw), pl.ds(c0, chunk)]
        gs = g_ref[b, pl.ds(r * rows, rows), pl.ds(v * cols, cols), pl.ds(o0, out)]
        return total + jax.lax.dot_general(
            xs.reshape(rows * cols, chunk), gs.reshape(rows * cols, out),
            (((0,), (0,)), ((), ())), precision=precision, preferred_element_type=acc)

    total = jax.lax.fori_loop(jnp.int32(0), jnp.int32(per_share * steps_h * steps_w), body,
                              jnp.zeros((chunk, out), acc))
    o_ref[...] = total


def _wgrad2d(xp, g, window, stride, dilation, precision, interpret):
    """One group: ``xp`` padded ``(N, Hp, Wp, C)``, ``g`` ``(N, OH, OW, O)`` →
    ``(kh, kw, C, O)`` in f32 (the accumulation dtype)."""
    n, out_h, out_w, c_out = g.shape
    c_in = xp.shape[-1]
    kh, kw = window
    t = tiles(out_h, out_w, c_in, c_out)
    steps = (pl.cdiv(out_h, t["rows"]), pl.cdiv(out_w, t["cols"]))
    gc, go = pl.cdiv(c_in, t["chunk"]), pl.cdiv(c_out, t["out"])
    shares = batch_shares(n, kh * kw * gc * go)
    # zeros where a tile passes the image's or dZ's edge: every load stays inside
    xp = pad_for_tiles(xp, steps, t, window, stride, dilation, gc * t["chunk"])
    g = pad_for_tiles(g, steps, t, (1, 1), (1, 1), (1, 1), go * t["out"])  # whole dZ tiles
    acc = acc_dtype(xp.dtype)
    kernel = functools.partial(_kernel, kw=kw, stride=stride, dilation=dilation, t=t,
                               per_share=n // shares, steps=steps, precision=precision, acc=acc)
    parts = call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((shares, kh * kw, gc * t["chunk"], go * t["out"]), acc),
        grid=(kh * kw, gc, go, shares),
        in_specs=[pl.BlockSpec(xp.shape, lambda k, c, o, s: (0, 0, 0, 0)),
                  pl.BlockSpec(g.shape, lambda k, c, o, s: (0, 0, 0, 0))],
        out_specs=pl.BlockSpec((None, None, t["chunk"], t["out"]),
                               lambda k, c, o, s: (s, k, c, o)),
        name="jcnn_conv_weight_grad",
        interpret=interpret,
    )(xp, g)
    return parts.sum(0)[:, :c_in, :c_out].reshape(kh, kw, c_in, c_out)


def weight_grad_pallas(x, g, geo, *, block, precision, platforms):
    """dW on the fused kernel (module docstring); ``block`` is not used."""
    from .conv_pallas_depthwise import depthwise_weight_grad

    x, _, geo, lifted = as_2d(x, None, geo)
    g = g[:, None] if lifted else g
    xp = jnp.pad(x, ((0, 0), *geo.pads, (0, 0)))
    groups, cig, cog = geo.groups, geo.cig, geo.c_out // geo.groups

    def run(xp, g, interpret):
        if geo.depthwise:
            return depthwise_weight_grad(xp, g, geo, interpret)
        parts = [_wgrad2d(xp[..., k * cig:(k + 1) * cig], g[..., k * cog:(k + 1) * cog],
                          geo.window, geo.stride, geo.dilation, precision, interpret)
                 for k in range(groups)]
        return parts[0] if groups == 1 else jnp.concatenate(parts, axis=-1)

    dw = on_platforms(run, platforms, xp, g)
    return (dw[0] if lifted else dw).astype(x.dtype)
