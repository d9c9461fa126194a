"""Conv's weight gradient as one fused Pallas kernel.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§9).  The weight gradient is the correlation of the input with the cotangent::

    dW[i, j, c, o] = Σ_n Σ_p Σ_q  X[n, p·s_h + i·d_h − lo_h, q·s_w + j·d_w − lo_w, c]
                                   · dZ[n, p, q, o]

One program owns one kernel row ``i``, one tile of the row's flattened
``(j, c)`` pairs (``kw·C_in/G`` of them, contiguous in ``W`` — at unit
dilation contiguous in ``X`` too, as in ``jcnn.conv_pallas``), one tile of
output channels and one share of the positions (flattened over the batch).  It
walks its share tile by tile, loads the matching values of ``X`` — masked:
taps outside the image read zero, nothing is padded — and the tile of ``dZ``,
and adds their product (``Xᵀ · dZ``, a reduction over positions) into one f32
accumulator.  ``X`` and ``dZ`` are read once per program, nothing else is
written but the result: straight into ``dW`` (in ``X``'s dtype) when one share
gives enough programs, else a few shares' partial sums, added by one small
reduction afterwards.

Like the forward kernel it compiles through Triton (``interpret=False``) or
runs in Pallas' interpret mode (``interpret=True``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ._checks import acc_dtype
from ._pallas_base import (
    TileSizes,
    as_2d,
    call,
    flat_ref,
    load,
    pow2_at_least,
    shares,
    store,
    unravel,
)

__all__ = ["DEFAULT", "weight_grad_pallas"]

DEFAULT = TileSizes(chunk=32)  # a chunk of 64 nearly fills the registers at 4 warps


def _kernel(x_ref, g_ref, o_ref, *, geo, t, per, precision, acc):
    n, h_in, w_in, c_in = geo.x_shape
    oh, ow = geo.out_shape
    (kh, kw), (sh, sw), (dh, dw) = geo.window, geo.stride, geo.dilation
    (lo_h, _), (lo_w, _) = geo.pads
    cig, cout = geo.cig, geo.c_out
    cog = cout // geo.groups
    m_t, e_t, o_t = t["positions"], t["chunk"], t["out"]
    span = kw * cig  # one kernel row's (j, c) pairs
    grp, i, et = unravel(pl.program_id(0), (None, kh, pl.cdiv(span, e_t)))
    o = pl.program_id(1) * o_t + jnp.arange(o_t, dtype=jnp.int32)
    o_ok = o < cog
    whole = cig % e_t == 0  # the tile inside one tap: per-row masks only
    e = et * e_t + (0 if whole else jnp.arange(e_t, dtype=jnp.int32))
    j, c = unravel(e, (None, cig))
    if whole:
        c = c + jnp.arange(e_t, dtype=jnp.int32)
        e = e + jnp.arange(e_t, dtype=jnp.int32)
    e_ok = e < span
    first = pl.program_id(2) * per

    def step(k, total):
        m = (first + k) * m_t + jnp.arange(m_t, dtype=jnp.int32)
        nn, p, q = unravel(m, (None, oh, ow))
        h, col0 = p * sh + i * dh - lo_h, q * sw - lo_w
        row_ok = nn < n
        ok = row_ok & (h >= 0) & (h < h_in)
        if whole:
            col = col0 + j * dw
            mask = (ok & (col >= 0) & (col < w_in))[:, None]
        else:
            col = col0[:, None] + (j * dw)[None, :]
            mask = ok[:, None] & (col >= 0) & (col < w_in) & e_ok[None, :]
        rows = ((nn * h_in + h) * w_in + col0) * c_in + grp * cig
        a = load(x_ref, rows[:, None] + (j * dw * c_in + c)[None, :], mask)
        b = load(g_ref, (m * cout + grp * cog)[:, None] + o[None, :],
                 row_ok[:, None] & o_ok[None, :])
        return total + jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())), precision=precision,
                                           preferred_element_type=acc)

    total = jax.lax.fori_loop(jnp.int32(0), jnp.int32(per), step, jnp.zeros((e_t, o_t), acc))
    rows = ((pl.program_id(2) * kh + i) * span + e) * cout + grp * cog
    store(o_ref, rows[:, None] + o[None, :], total, e_ok[:, None] & o_ok[None, :])


def _tiles(geo, tile: TileSizes) -> dict:
    """Powers of two, at least ``tile.min_dim``: ``positions`` per product (the
    contracted dimension), ``chunk`` of a kernel row's ``(j, c)`` pairs, ``out``
    output channels per program."""
    span = geo.window[1] * geo.cig
    return {"positions": tile.positions,
            "chunk": max(min(tile.chunk, pow2_at_least(span)), tile.min_dim),
            "out": max(min(tile.out, pow2_at_least(geo.c_out // geo.groups)), tile.min_dim)}


def weight_grad_pallas(x, g, geo, *, precision, interpret, tile=None):
    """dW on the fused kernel (module docstring): ``x`` ``(N, *in, C_in)`` and the
    cotangent ``g`` ``(N, *out, C_out)`` of the 1-D or 2-D, not depthwise geometry
    ``geo`` → ``(*window, C_in/G, C_out)`` in ``x``'s dtype.  ``tile`` (a
    ``jcnn._pallas_base.TileSizes``) defaults to ``DEFAULT``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn.conv_geometry import Geometry
      >>> from jcnn.conv_pallas_wgrad import weight_grad_pallas
      >>> geo = Geometry((1, 3, 3, 1), (2, 2, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
      >>> dw = weight_grad_pallas(jnp.ones((1, 3, 3, 1)), jnp.ones((1, 2, 2, 1)), geo,
      ...                         precision=None, interpret=True)
      >>> dw[:, :, 0, 0].tolist()  # every tap sums 4 ones
      [[4.0, 4.0], [4.0, 4.0]]
    """
    tile = DEFAULT if tile is None else tile
    x, _, geo, lifted = as_2d(x, None, geo)
    g = g[:, None] if lifted else g
    t = _tiles(geo, tile)
    kh, kw = geo.window
    cog = geo.c_out // geo.groups
    programs = (geo.groups * kh * pl.cdiv(kw * geo.cig, t["chunk"]), pl.cdiv(cog, t["out"]))
    steps = pl.cdiv(g.size // geo.c_out, t["positions"])
    split = shares(steps, programs[0] * programs[1])
    per = pl.cdiv(steps, split)
    size = split * kh * kw * geo.cig * geo.c_out
    acc = acc_dtype(x.dtype)
    kernel = functools.partial(_kernel, geo=geo, t=t, per=per, precision=precision, acc=acc)
    parts = call(kernel,
                 out_shape=jax.ShapeDtypeStruct((size,), x.dtype if split == 1 else acc),
                 grid=(*programs, split),
                 in_specs=[flat_ref(x.shape), flat_ref(g.shape)], out_specs=flat_ref((size,)),
                 name="jcnn_conv_weight_grad", interpret=interpret, tile=tile
                 )(x.reshape(-1), g.reshape(-1))
    parts = parts.reshape(split, kh, kw, geo.cig, geo.c_out)
    dw = parts[0] if split == 1 else parts.sum(0).astype(x.dtype)
    return dw[0] if lifted else dw
