"""The XLA arrangements of conv's backward (§9)::

    dX = full_conv(spread_s(dZ), rot180(W))        cropped by the padding
    dW[k] = Σ_{n,p} X_pad[n, p·s + k·d]ᵀ · dZ[n, p]

dX arrangements return ``g``'s dtype, dW arrangements ``x``'s.  Same keywords as
:mod:`jcnn.conv_forward`; ``"fullconv"`` runs the article's formula literally
through ``conv``, the planned convolution the registry passes in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import window as win
from ._checks import acc_dtype
from ._conv_blocks import grouped, map_blocks, slices, sum_blocks
from .conv_geometry import rot180

__all__ = ["input_grad_fullconv", "input_grad_scatter", "weight_grad_depthwise",
           "weight_grad_gather", "weight_grad_offsets", "weight_grad_scan"]


# --------------------------------------------------------------------------- #
# dX: the full convolution of the (stride-spread) cotangent with rot180(W).
# --------------------------------------------------------------------------- #
def input_grad_scatter(g, w, geo, *, block, precision, platforms, conv=None):
    """Each cotangent value scatters ``W · dZ[p]`` back over the window it came
    from: one matmul ``dZ · W[k]ᵀ`` for all offsets, then every offset's plane put
    back where the forward's slice read it (:func:`jcnn.window.scatter_patches`:
    one dim at a time, strided dims split by phase — no product with an
    inserted zero), batch block by batch block."""
    acc, groups, cig, c_out = acc_dtype(g.dtype), geo.groups, geo.cig, geo.c_out
    wk = w.reshape(geo.k_total, cig, c_out)
    def scatter(gc):
        if geo.depthwise:  # elementwise products, summed per group
            prods = gc[..., None, :].astype(acc) * wk[:, 0].astype(acc)  # (.., K, C_out)
            prods = grouped(prods, groups).sum(-1)  # (B, *out, K, C_in)
        elif groups == 1:  # a plain 2-D GEMM (XLA's dot is slower with a size-1 group axis)
            prods = jnp.einsum("...o,kio->...ki", gc, wk, precision=precision,
                               preferred_element_type=acc)
        else:  # one matmul for all offsets: (B, *out, C_out) · (C_out, K·C_in)
            prods = jnp.einsum("...go,kigo->...kgi", grouped(gc, groups), grouped(wk, groups),
                               precision=precision, preferred_element_type=acc)
            prods = prods.reshape(*prods.shape[:-2], groups * cig)  # (B, *out, K, C_in)
        dxp = win.scatter_patches(prods, geo.window, geo.padded, geo.stride, geo.dilation)
        return win.pad_spatial(dxp, [(-lo, -hi) for lo, hi in geo.pads]).astype(g.dtype)

    return map_blocks(scatter, block, g)


def input_grad_fullconv(g, w, geo, *, block, precision, platforms, conv=None):
    """The article's formula literally: spread ``dZ`` by the stride (``s − 1``
    zeros between values), pad it by ``f_eff − 1`` minus the forward's padding
    (the full convolution) and convolve with ``rot180(W)`` — by :func:`jcnn.conv`
    itself, planned for the same platforms.  High rows the forward never read
    (``(n + 2p − f) mod s ≠ 0``) get zero."""
    if conv is None:
        raise ValueError("conv: the 'fullconv' input gradient needs the planned convolution "
                         "(conv=) to run its full convolution through")
    config = [(f - 1 - lo, f - 1 - hi + u, s - 1)
              for f, s, (lo, hi), u in zip(geo.f_eff, geo.stride, geo.pads, geo.unread)]
    gp = jax.lax.pad(g, jnp.zeros((), g.dtype), [(0, 0, 0), *config, (0, 0, 0)])
    return conv(gp, rot180(w, geo.groups), (1,) * geo.nd, ((0, 0),) * geo.nd, geo.dilation,
                geo.groups, precision=precision, platforms=platforms)


# --------------------------------------------------------------------------- #
# dW[k] = Σ_{n,p} X_pad[n, p·s + k·d]ᵀ · dZ[n, p]: the correlation of X with dZ.
# --------------------------------------------------------------------------- #
def _correlate(sl, gc, geo, acc, precision):
    """``Σ_m slice[m]ᵀ dZ[m]`` per group → ``(cig, G, cog)``."""
    groups, cig, c_out = geo.groups, geo.cig, geo.c_out
    if geo.depthwise:  # elementwise products summed over positions (not flattened: faster)
        positions = tuple(range(sl.ndim - 1))
        if c_out == groups:
            return (sl.astype(acc) * gc.astype(acc)).sum(positions).reshape(1, groups, 1)
        prod = sl[..., None].astype(acc) * grouped(gc, groups).astype(acc)
        return prod.sum(positions)[None]
    sl2 = grouped(sl.reshape(-1, groups * cig), groups)  # (M, G, cig)
    g2 = grouped(gc.reshape(-1, c_out), groups)  # (M, G, cog)
    if groups == 1:  # a plain 2-D GEMM (no batch dimension of size 1)
        return jnp.matmul(sl2[:, 0].T, g2[:, 0], precision=precision,
                          preferred_element_type=acc)[:, None]
    return jnp.einsum("mgi,mgo->igo", sl2, g2, precision=precision, preferred_element_type=acc)


def weight_grad_gather(x, g, geo, *, block, precision, platforms, conv=None):
    """One GEMM ``dZᵀ · patches`` (``(C_out, M) · (M, K·C_in)``) per batch block,
    the blocks' sums added, transposed once."""
    acc, groups, cig, c_out, k_total = (acc_dtype(x.dtype), geo.groups, geo.cig, geo.c_out,
                                        geo.k_total)

    def gathered(xc, gc):
        patches = win.patches(win.pad_spatial(xc, geo.pads), geo.window, geo.out_shape,
                              geo.stride, geo.dilation)
        gc2 = grouped(gc.reshape(-1, c_out), groups)
        if groups == 1:  # dWᵀ = dZᵀ · patches (faster than patchesᵀ · dZ on a CPU)
            flat = patches.reshape(-1, k_total * cig)
            if flat.dtype != acc and "cpu" in platforms:  # XLA CPU has no bf16·bf16→f32
                flat, gc2 = flat.astype(acc), gc2.astype(acc)  # dot this way round
            return jnp.matmul(gc2[:, 0].T, flat, precision=precision, preferred_element_type=acc)
        patches = grouped(patches.reshape(-1, k_total, groups * cig), groups)
        return jnp.einsum("mkgi,mgo->kigo", patches, gc2, precision=precision,
                          preferred_element_type=acc)

    dw = sum_blocks(gathered, block, x, g)
    if groups == 1:
        dw = dw.T  # summed as dWᵀ, transposed once
    return dw.reshape(geo.w_shape).astype(x.dtype)


def weight_grad_offsets(x, g, geo, *, block, precision, platforms, conv=None):
    """One correlation per offset, unrolled, batch block by batch block."""
    acc = acc_dtype(x.dtype)

    def per_offset(xc, gc):
        xpc = win.pad_spatial(xc, geo.pads)
        return jnp.stack([_correlate(sl, gc, geo, acc, precision) for sl in slices(xpc, geo)])

    return sum_blocks(per_offset, block, x, g).reshape(geo.w_shape).astype(x.dtype)


def weight_grad_scan(x, g, geo, *, block, precision, platforms, conv=None):
    """One offset per loop step (a ``lax.scan``): one slice live at a time, each
    step's contraction one plain GEMM on a materialised slice."""
    acc = acc_dtype(x.dtype)
    starts = jnp.asarray(win.offset_starts(geo.window, geo.dilation))
    xp = win.pad_spatial(x, geo.pads)

    def body(carry, start):
        sl = win.offset_slice(xp, start, geo.out_shape, geo.stride)
        return carry, _correlate(sl, g, geo, acc, precision)

    dw = jax.lax.scan(body, None, starts)[1]
    return dw.reshape(geo.w_shape).astype(x.dtype)


def weight_grad_depthwise(x, g, geo, *, block, precision, platforms, conv=None):
    """One input channel per group: every offset's products ``slice_k · dZ`` summed
    over positions in one variadic reduction (``lax.reduce`` with one operand per
    offset), batch block by batch block — one pass over ``dZ`` and the input for
    all ``K`` offsets, where ``"offsets"`` makes one pass per offset (faster on
    a CPU: BENCHMARKS.md)."""
    acc, groups, mult = acc_dtype(x.dtype), geo.groups, geo.c_out // geo.groups

    def per_block(xc, gc):
        xp = win.pad_spatial(xc, geo.pads)
        gg = grouped(gc, groups).astype(acc) if mult > 1 else gc.astype(acc)
        prods = [(sl[..., None] if mult > 1 else sl).astype(acc) * gg
                 for sl in slices(xp, geo)]
        sums = jax.lax.reduce(prods, [jnp.zeros((), acc)] * len(prods),
                              lambda a, b: [u + v for u, v in zip(a, b)],
                              tuple(range(xc.ndim - 1)))
        return jnp.stack(sums)  # (K, C) or (K, C, mult)

    return sum_blocks(per_block, block, x, g).reshape(geo.w_shape).astype(x.dtype)
