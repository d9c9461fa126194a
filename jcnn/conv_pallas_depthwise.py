"""Depthwise convolution's forward, input gradient and weight gradient as fused
Pallas kernels.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§3, §9).  With one input channel per group every output channel reads one
input channel, so the article's sums have no contraction over channels — they
are elementwise products summed over kernel offsets (forward, input gradient)
or over positions (weight gradient)::

    Z[n, p, q, cm + u]  = Σ_i Σ_j    X[n, h, w, c] · W[i, j, 0, cm + u]
    dW[i, j, 0, cm + u] = Σ_n Σ_p Σ_q  X[n, h, w, c] · dZ[n, p, q, cm + u]

    h = p·s_h + i·d_h − lo_h,   w = q·s_w + j·d_w − lo_w   (zero outside the image)

(``m`` output channels per input channel, ``cm = c·m``).  A matrix unit has
nothing to multiply; the kernels tile positions × channels and accumulate in
f32.  ``depthwise_tap_sum`` is the forward sum and, walked by stride phase
with ``transpose`` (summing the ``m`` multipliers of each input channel), the
input gradient (``jcnn.conv_pallas_dgrad``).  Like the general kernel
(``jcnn.conv_pallas``) every load is masked, so the input is never padded
and only valid outputs are written.  The weight gradient's program owns one
kernel offset, one tile of channels and one share of the positions: it adds
``X · dZ`` into a positions × channels accumulator and reduces it over the
positions once, at the end; the few shares' partial sums are added afterwards.
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
    forward_walk,
    load,
    pick,
    pow2_at_least,
    shares,
    store,
    unravel,
)

__all__ = ["DEFAULT", "depthwise_tap_sum", "forward_pallas_depthwise",
           "weight_grad_pallas_depthwise"]

DEFAULT = TileSizes(positions=64, out=64)  # ``out``: channels per program, at most


def _tiles(positions: int, channels: int, tile: TileSizes) -> tuple[int, int]:
    return (min(pow2_at_least(positions), tile.positions),
            min(pow2_at_least(channels), tile.out))


def _sum_kernel(src_ref, w_ref, dst_ref, *, n, src, dst, walks, kw, mult, transpose, t, acc):
    (hs, ws, cs), (hd, wd, cd) = src, dst
    wh, ww = walks
    m_t, c_t = t
    pm, po = unravel(pl.program_id(0), (None, pl.cdiv(cd, c_t)))  # as in jcnn.conv_pallas
    ph_h, ph_w = unravel(pl.program_id(1), (None, ww.phases))
    taps_w = pick(ww.taps, ph_w)
    m = pm * m_t + jnp.arange(m_t, dtype=jnp.int32)
    nn, th, tw = unravel(m, (None, max(wh.extent), max(ww.extent)))
    dst_h, dst_w = pick(wh.y0, ph_h) + wh.s * th, pick(ww.y0, ph_w) + ww.s * tw
    inside = (nn < n) & (dst_h < hd) & (dst_w < wd)
    src_h, src_w = wh.a * th + pick(wh.e0, ph_h), ww.a * tw + pick(ww.e0, ph_w)
    row0 = ((nn * hs + src_h) * ws + src_w) * cs
    o = po * c_t + jnp.arange(c_t, dtype=jnp.int32)
    o_ok = o < cd
    tap_i0, tap_j0 = pick(wh.i0, ph_h), pick(ww.i0, ph_w)

    def step(k, total):
        u, v = unravel(k, (None, taps_w))
        h, col = src_h + wh.b * u, src_w + ww.b * v
        mask = (inside & (h >= 0) & (h < hs) & (col >= 0) & (col < ws))[:, None] & o_ok[None, :]
        row = row0 + (wh.b * u * ws + ww.b * v) * cs
        tap = (tap_i0 + wh.step * u) * kw + tap_j0 + ww.step * v
        # forward: channel o reads input o // m; transposed: input o sums o·m + r
        for r in range(mult if transpose else 1):
            ch = o * mult + r if transpose else jax.lax.div(o, jnp.int32(mult))
            wch = ch if transpose else o
            a = load(src_ref, row[:, None] + ch[None, :], mask)
            b = load(w_ref, tap * (cd * mult if transpose else cd) + wch, o_ok)
            total = total + a.astype(acc) * b.astype(acc)[None, :]
        return total

    steps = pick(wh.taps, ph_h) * taps_w
    total = jax.lax.fori_loop(jnp.int32(0), jnp.int32(steps), step, jnp.zeros((m_t, c_t), acc))
    row = ((nn * hd + dst_h) * wd + dst_w) * cd
    store(dst_ref, row[:, None] + o[None, :], total, inside[:, None] & o_ok[None, :])


def depthwise_tap_sum(src, w, walks, channels: int, *, transpose: bool, out_dtype,
                      interpret: bool, tile: TileSizes):
    """The depthwise sum of a layer on ``channels`` input channels, on the unpadded
    2-D image ``src`` ``(N, H, W, C')`` and ``w`` ``(kh, kw, 1, channels·m)``
    walked by ``walks`` (``jcnn._pallas_base.Walk``): the forward ``(N,
    *out, channels·m)``, or with ``transpose`` (``src`` a cotangent of
    ``channels·m`` channels) the input gradient ``(N, *in, channels)``, in
    ``out_dtype``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn._pallas_base import TileSizes, input_grad_walk
      >>> from jcnn.conv_pallas_depthwise import depthwise_tap_sum
      >>> walks = (input_grad_walk(1, 1, 1, 1, 0, 1), input_grad_walk(4, 2, 2, 1, 0, 2))
      >>> w = jnp.array([1.0, 10.0]).reshape(1, 2, 1, 1)  # 1×2 window, stride 2
      >>> dx = depthwise_tap_sum(jnp.ones((1, 1, 2, 1)), w, walks, 1, transpose=True,
      ...                        out_dtype=jnp.float32, interpret=True, tile=TileSizes())
      >>> dx[0, 0, :, 0].tolist()  # each input under one tap
      [1.0, 10.0, 1.0, 10.0]
    """
    n = src.shape[0]
    kw, cw = w.shape[1], w.shape[-1]
    dst = (walks[0].dst, walks[1].dst, channels if transpose else cw)
    positions = n * max(walks[0].extent) * max(walks[1].extent)
    t = _tiles(positions, dst[2], tile)
    kernel = functools.partial(_sum_kernel, n=n, src=src.shape[1:], dst=dst, walks=walks,
                               kw=kw, mult=cw // channels, transpose=transpose, t=t,
                               acc=acc_dtype(src.dtype))
    out_shape = (n, *dst)
    out = call(kernel, out_shape=jax.ShapeDtypeStruct((n * dst[0] * dst[1] * dst[2],), out_dtype),
               grid=(pl.cdiv(positions, t[0]) * pl.cdiv(dst[2], t[1]),
                     walks[0].phases * walks[1].phases),
               in_specs=[flat_ref(src.shape), flat_ref(w.shape)], out_specs=flat_ref(out_shape),
               name="jcnn_depthwise_transposed" if transpose else "jcnn_depthwise_forward",
               interpret=interpret, tile=tile)(src.reshape(-1), w.reshape(-1))
    return out.reshape(out_shape)


def _weight_grad_kernel(x_ref, g_ref, o_ref, *, n, x_shape, g_shape, walks, window, t, per,
                        acc):
    _, h_in, w_in, c = x_shape
    _, oh, ow, cw = g_shape
    kh, kw = window
    wh, ww = walks
    m_t, c_t = t
    i, j = unravel(pl.program_id(0), (None, kw))
    o = pl.program_id(1) * c_t + jnp.arange(c_t, dtype=jnp.int32)
    o_ok = o < cw
    ch = jax.lax.div(o, jnp.int32(cw // c))  # output channel o reads input o // m
    first = pl.program_id(2) * per

    def step(k, total):
        m = (first + k) * m_t + jnp.arange(m_t, dtype=jnp.int32)
        nn, p, q = unravel(m, (None, oh, ow))
        h = wh.a * p + wh.e0[0] + wh.b * i
        col = ww.a * q + ww.e0[0] + ww.b * j
        ok = (nn < n) & (h >= 0) & (h < h_in) & (col >= 0) & (col < w_in)
        a = load(x_ref, (((nn * h_in + h) * w_in + col) * c)[:, None] + ch[None, :],
                 ok[:, None] & o_ok[None, :])
        b = load(g_ref, (m * cw)[:, None] + o[None, :], (nn < n)[:, None] & o_ok[None, :])
        return total + a.astype(acc) * b.astype(acc)

    total = jax.lax.fori_loop(jnp.int32(0), jnp.int32(per), step, jnp.zeros((m_t, c_t), acc))
    # reduced over the positions once, at the end: (share, i, j, o)
    store(o_ref, (pl.program_id(2) * kh * kw + pl.program_id(0)) * cw + o, total.sum(axis=0),
          o_ok)


def _weight_grad(x, g, walks, window, *, interpret, tile):
    """``(kh, kw, 1, C·m)`` from the unpadded 2-D ``x`` and ``g``, in ``x``'s dtype."""
    n, _, _, _ = x.shape
    _, oh, ow, cw = g.shape
    kh, kw = window
    t = _tiles(n * oh * ow, cw, tile)
    steps = pl.cdiv(n * oh * ow, t[0])
    split = shares(steps, kh * kw * pl.cdiv(cw, t[1]))
    per = pl.cdiv(steps, split)
    acc = acc_dtype(x.dtype)
    kernel = functools.partial(_weight_grad_kernel, n=n, x_shape=x.shape, g_shape=g.shape,
                               walks=walks, window=window, t=t, per=per, acc=acc)
    size = split * kh * kw * cw
    parts = call(kernel,
                 out_shape=jax.ShapeDtypeStruct((size,), x.dtype if split == 1 else acc),
                 grid=(kh * kw, pl.cdiv(cw, t[1]), split),
                 in_specs=[flat_ref(x.shape), flat_ref(g.shape)], out_specs=flat_ref((size,)),
                 name="jcnn_depthwise_weight_grad", interpret=interpret, tile=tile
                 )(x.reshape(-1), g.reshape(-1))
    parts = parts.reshape(split, kh, kw, 1, cw)
    return parts[0] if split == 1 else parts.sum(0).astype(x.dtype)


def _walks(geo):
    return tuple(forward_walk(n, f, s, d, lo, m) for n, f, s, d, (lo, _), m in
                 zip(geo.in_sizes, geo.window, geo.stride, geo.dilation, geo.pads,
                     geo.out_shape))


def forward_pallas_depthwise(x, w, geo, *, precision, interpret, tile=None, out_dtype=None):
    """The depthwise forward kernel (module docstring) on ``x`` ``(N, *in, C)`` and
    ``w`` ``(*window, 1, C·m)`` of a 1-D or 2-D depthwise geometry: ``(N, *out,
    C·m)`` in ``out_dtype``, by default the accumulation dtype.  ``precision`` is
    not used (no matrix product); ``tile`` defaults to ``DEFAULT``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn.conv_geometry import Geometry
      >>> from jcnn.conv_pallas_depthwise import forward_pallas_depthwise
      >>> geo = Geometry((1, 3, 3, 2), (2, 2, 1, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 2)
      >>> w = jnp.stack([jnp.ones((2, 2)), -jnp.ones((2, 2))], -1)[:, :, None]
      >>> forward_pallas_depthwise(jnp.ones((1, 3, 3, 2)), w, geo, precision=None,
      ...                          interpret=True)[0, 0, 0].tolist()
      [4.0, -4.0]
    """
    x, w, geo, lifted = as_2d(x, w, geo)
    y = depthwise_tap_sum(x, w, _walks(geo), x.shape[-1], transpose=False,
                          out_dtype=acc_dtype(x.dtype) if out_dtype is None else out_dtype,
                          interpret=interpret,
                          tile=DEFAULT if tile is None else tile)
    return y[:, 0] if lifted else y


def weight_grad_pallas_depthwise(x, g, geo, *, precision, interpret, tile=None):
    """The depthwise weight-gradient kernel (module docstring): ``x`` ``(N, *in,
    C)`` and the cotangent ``g`` ``(N, *out, C·m)`` → ``(*window, 1, C·m)`` in
    ``x``'s dtype.  ``precision`` is not used; ``tile`` defaults to ``DEFAULT``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn.conv_geometry import Geometry
      >>> from jcnn.conv_pallas_depthwise import weight_grad_pallas_depthwise
      >>> geo = Geometry((1, 3, 3, 1), (2, 2, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
      >>> dw = weight_grad_pallas_depthwise(jnp.ones((1, 3, 3, 1)), jnp.ones((1, 2, 2, 1)),
      ...                                   geo, precision=None, interpret=True)
      >>> dw[:, :, 0, 0].tolist()
      [[4.0, 4.0], [4.0, 4.0]]
    """
    x, _, geo, lifted = as_2d(x, None, geo)
    g = g[:, None] if lifted else g
    dw = _weight_grad(x, g, _walks(geo), geo.window, interpret=interpret,
                      tile=DEFAULT if tile is None else tile)
    return dw[0] if lifted else dw
