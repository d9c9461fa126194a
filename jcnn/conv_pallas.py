"""Conv's forward windowed sum as one fused Pallas kernel, which also runs the
input gradient (``jcnn.conv_pallas_dgrad``).

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§3, §6).  One program computes the article's sum for a tile of output
positions (flattened over the batch) × output channels of one group::

    Z[n, p, q, o] = Σ_i Σ_j Σ_c  X[n, p·s_h + i·d_h − lo_h, q·s_w + j·d_w − lo_w, c] · W[i, j, c, o]

walking the kernel rows ``i`` and, per row, the flattened ``(j, c)`` pairs in
chunks: at unit dilation one row's ``kw·C`` inputs of a position are contiguous
in the channels-last image and so are the matching ``kw·C`` weights (a 7×7 stem
on 3 channels contracts 21 values per row, not 3 per offset).  Every load is
masked: taps outside the image read zero, so the input is never padded; only
valid outputs are stored, in the output's own layout; channel tails are masked
too.  Nothing but ``x``, ``w`` and ``Z`` moves through memory, and the chunk
loop is one loop that Triton pipelines.

The same kernel computes the input gradient: a ``jcnn._pallas_base.Walk``
per spatial dim says which source rows and kernel offsets each output row
reads, per stride phase, and ``transpose`` reads ``W[i, j, o, c]`` (the
article's rot180 with channels swapped, by index arithmetic).

``interpret=False`` compiles the kernel through Pallas (Triton) for a GPU;
``interpret=True`` runs it in Pallas' interpret mode, which is how the tests
check it on a CPU.  Two spatial dims (1-D convolutions are lifted to 2-D).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ._checks import acc_dtype
from ._pallas_base import (
    TileSizes,
    Walk,
    as_2d,
    call,
    flat_ref,
    forward_walk,
    load,
    pick,
    pow2_at_least,
    store,
    unravel,
)

__all__ = ["DEFAULT", "forward_pallas", "tap_sum"]

DEFAULT = TileSizes(positions=64)  # 128 positions spill registers at 4 warps (f32)


@dataclasses.dataclass(frozen=True)
class _Sum:
    """The static shape of one tap sum (see ``tap_sum``)."""

    n: int
    src: tuple  # (H, W, C) of the source image
    dst: tuple  # (H, W, C) of the destination image
    walks: tuple  # (Walk, Walk)
    window: tuple  # (kh, kw) of ``w``
    w_io: tuple  # (C_in/G, C_out) of ``w``
    groups: int
    contracted: int  # source channels per group
    produced: int  # destination channels per group
    transpose: bool


def _kernel(src_ref, w_ref, dst_ref, *, sm: _Sum, t: dict, precision, acc):
    (hs, ws, cs), (hd, wd, cd) = sm.src, sm.dst
    wh, ww = sm.walks
    kw = sm.window[1]
    cig, cout = sm.w_io
    kc, oc = sm.contracted, sm.produced
    m_t, chunk, o_t = t["positions"], t["chunk"], t["out"]
    # axis 0: position tiles × channel tiles (a GPU's unbounded grid axis), axis 1: group, phase
    pm, po = unravel(pl.program_id(0), (None, pl.cdiv(oc, o_t)))
    grp, ph = unravel(pl.program_id(1), (None, wh.phases * ww.phases))
    ph_h, ph_w = unravel(ph, (None, ww.phases))
    taps_w = pick(ww.taps, ph_w)
    n_chunks = pick(tuple(-(-taps * kc // chunk) for taps in ww.taps), ph_w)
    steps = pick(wh.taps, ph_h) * n_chunks

    # the tile's positions: (n, t_h, t_w) over the batch and the phase's rows
    m = pm * m_t + jnp.arange(m_t, dtype=jnp.int32)
    n, th, tw = unravel(m, (None, max(wh.extent), max(ww.extent)))
    dst_h, dst_w = pick(wh.y0, ph_h) + wh.s * th, pick(ww.y0, ph_w) + ww.s * tw
    inside = (n < sm.n) & (dst_h < hd) & (dst_w < wd)
    src_h, src_w = wh.a * th + pick(wh.e0, ph_h), ww.a * tw + pick(ww.e0, ph_w)
    row0 = ((n * hs + src_h) * ws + src_w) * cs + grp * kc
    o = po * o_t + jnp.arange(o_t, dtype=jnp.int32)
    o_ok = o < oc
    tap_i0, tap_j0 = pick(wh.i0, ph_h), pick(ww.i0, ph_w)
    whole = kc % chunk == 0  # every chunk inside one tap: per-row masks only

    def step(k, total):
        u, c = unravel(k, (None, n_chunks))
        h = src_h + wh.b * u
        ok = inside & (h >= 0) & (h < hs)
        e = c * chunk + (0 if whole else jnp.arange(chunk, dtype=jnp.int32))
        v, ch = unravel(e, (None, kc))  # tap along the width, channel
        if whole:
            ch = ch + jnp.arange(chunk, dtype=jnp.int32)
            col = src_w + ww.b * v
            mask = (ok & (col >= 0) & (col < ws))[:, None]
            e_ok = None
        else:
            col = src_w[:, None] + (ww.b * v)[None, :]
            e_ok = e < taps_w * kc
            mask = ok[:, None] & (col >= 0) & (col < ws) & e_ok[None, :]
        offsets = (row0 + wh.b * u * ws * cs)[:, None] + (ww.b * v * cs + ch)[None, :]
        a = load(src_ref, offsets, mask)
        tap = (tap_i0 + wh.step * u) * kw + tap_j0 + ww.step * v
        if sm.transpose:  # W[i, j, o, g·C_out/G + c] as (o, c): contiguous rows, then Wᵀ
            w_mask = o_ok[:, None] if e_ok is None else o_ok[:, None] & e_ok[None, :]
            b = load(w_ref, (o * cout)[:, None] + (tap * cig * cout + grp * kc + ch)[None, :],
                     w_mask)
            dims = (((1,), (1,)), ((), ()))
        else:  # W[i, j, c, g·C_out/G + o] as (c, o)
            w_mask = o_ok[None, :] if e_ok is None else e_ok[:, None] & o_ok[None, :]
            b = load(w_ref, ((tap * cig + ch) * cout + grp * oc)[:, None] + o[None, :], w_mask)
            dims = (((1,), (0,)), ((), ()))
        return total + jax.lax.dot_general(a, b, dims, precision=precision,
                                           preferred_element_type=acc)

    total = jax.lax.fori_loop(jnp.int32(0), jnp.int32(steps), step,
                              jnp.zeros((m_t, o_t), acc))
    dst = (((n * hd + dst_h) * wd + dst_w) * cd + grp * oc)[:, None] + o[None, :]
    store(dst_ref, dst, total, inside[:, None] & o_ok[None, :])


def _tiles(sm: _Sum, tile: TileSizes, positions: int) -> dict:
    """Powers of two (Triton's blocks), at least ``tile.min_dim``: ``positions``
    per program, ``chunk`` contracted values per product (a whole number of
    channels when they fill it), ``out`` produced channels per program."""
    span = max(sm.walks[1].taps) * sm.contracted
    chunk = min(tile.chunk, pow2_at_least(span))
    return {"positions": max(min(tile.positions, pow2_at_least(positions)), tile.min_dim),
            "chunk": max(chunk, tile.min_dim),
            "out": max(min(tile.out, pow2_at_least(sm.produced)), tile.min_dim)}


def tap_sum(src, w, walks: tuple[Walk, Walk], groups: int, *, transpose: bool, out_dtype,
            precision, interpret: bool, tile: TileSizes):
    """The kernel on the unpadded 2-D image ``src`` ``(N, H, W, C)`` and ``w``
    ``(kh, kw, C_in/G, C_out)`` walked by ``walks``: the destination
    ``(N, walks[0].dst, walks[1].dst, C')`` in ``out_dtype``, where ``C' =
    C_out`` (``transpose=False``: the forward sum, contracting ``C_in/G`` per
    group) or ``C_in`` (``transpose=True``: the input gradient, contracting
    ``C_out/G``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn._pallas_base import TileSizes, forward_walk
      >>> from jcnn.conv_pallas import tap_sum
      >>> walks = (forward_walk(1, 1, 1, 1, 0, 1), forward_walk(5, 3, 1, 1, 1, 5))  # 1×3, pad 1
      >>> y = tap_sum(jnp.ones((1, 1, 5, 1)), jnp.ones((1, 3, 1, 1)), walks, 1, transpose=False,
      ...             out_dtype=jnp.float32, precision=None, interpret=True, tile=TileSizes())
      >>> y[0, 0, :, 0].tolist()
      [2.0, 3.0, 3.0, 3.0, 2.0]
    """
    n = src.shape[0]
    cig, cout = w.shape[2:]
    kc, oc = (cout // groups, cig) if transpose else (cig, cout // groups)
    sm = _Sum(n, src.shape[1:], (walks[0].dst, walks[1].dst, groups * oc), walks,
              w.shape[:2], (cig, cout), groups, kc, oc, transpose)
    positions = n * max(walks[0].extent) * max(walks[1].extent)
    t = _tiles(sm, tile, positions)
    kernel = functools.partial(_kernel, sm=sm, t=t, precision=precision,
                               acc=acc_dtype(src.dtype))
    out_shape = (n, *sm.dst)
    phases = walks[0].phases * walks[1].phases
    out = call(kernel,
               out_shape=jax.ShapeDtypeStruct((n * sm.dst[0] * sm.dst[1] * sm.dst[2],), out_dtype),
               grid=(pl.cdiv(positions, t["positions"]) * pl.cdiv(oc, t["out"]), groups * phases),
               in_specs=[flat_ref(src.shape), flat_ref(w.shape)], out_specs=flat_ref(out_shape),
               name="jcnn_conv_transposed" if transpose else "jcnn_conv_forward",
               interpret=interpret, tile=tile)(src.reshape(-1), w.reshape(-1))
    return out.reshape(out_shape)


def forward_pallas(x, w, geo, *, precision, interpret, tile=None, out_dtype=None):
    """The fused forward kernel (module docstring) on ``x`` ``(N, *in, C_in)`` and
    ``w`` ``(*window, C_in/G, C_out)`` of the 1-D or 2-D, not depthwise geometry
    ``geo``: ``(N, *out, C_out)`` in ``out_dtype``, by default the accumulation
    dtype (``x.dtype`` rounds the f32 sums once, in the kernel, and writes half
    the bytes for bf16).  ``tile`` (a ``jcnn._pallas_base.TileSizes``)
    defaults to ``DEFAULT``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn.conv_geometry import Geometry
      >>> from jcnn.conv_pallas import forward_pallas
      >>> geo = Geometry((1, 4, 4, 1), (3, 3, 1, 1), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
      >>> y = forward_pallas(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), geo,
      ...                    precision=None, interpret=True)
      >>> y[0, :, :, 0].tolist()[0]  # a corner sees 4 taps, an edge 6
      [4.0, 6.0, 6.0, 4.0]
    """
    x, w, geo, lifted = as_2d(x, w, geo)
    walks = tuple(forward_walk(n, f, s, d, lo, m) for n, f, s, d, (lo, _), m in
                  zip(geo.in_sizes, geo.window, geo.stride, geo.dilation, geo.pads,
                      geo.out_shape))
    out_dtype = acc_dtype(x.dtype) if out_dtype is None else out_dtype
    y = tap_sum(x, w, walks, geo.groups, transpose=False, out_dtype=out_dtype,
                precision=precision, interpret=interpret,
                tile=DEFAULT if tile is None else tile)
    return y[:, 0] if lifted else y
