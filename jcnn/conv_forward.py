"""The XLA arrangements of conv's forward windowed sum (§3, §6, §7)::

    Z[n, p, o] = Σ_k Σ_i  X_pad[n, p·s + k·d, i] · W[k, i, o]

each laid out differently for the compiler; none chooses (the plan does).  All
take ``(x, w, geo, *, block, precision, platforms, conv)``: ``block`` examples
per batch block for those that build a patch matrix, ``precision`` of every
contraction, ``platforms`` where the program runs and ``conv`` the planned
convolution for an arrangement that nests one (none of these).  They return the
accumulation dtype (f32 for bf16/f16 inputs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import window as win
from ._checks import acc_dtype
from ._conv_blocks import add_all, contract, grouped, map_blocks, slices

__all__ = ["forward_depthwise", "forward_gather", "forward_offsets", "forward_scan",
           "forward_shift"]


def forward_gather(x, w, geo, *, block, precision, platforms, conv=None):
    """Every offset's slice stacked (:func:`jcnn.window.patches`), one matmul with
    contraction length ``K·C_in/G``, batch block by batch block."""
    acc, groups, c_out = acc_dtype(x.dtype), geo.groups, geo.c_out

    def run(xc):
        patches = win.patches(win.pad_spatial(xc, geo.pads), geo.window, geo.out_shape,
                              geo.stride, geo.dilation)  # (B, *out, K, C_in)
        if groups == 1:
            flat = patches.reshape(*patches.shape[:-2], geo.k_total * geo.cig)
            return jnp.matmul(flat, w.reshape(-1, c_out), precision=precision,
                              preferred_element_type=acc)
        wg = grouped(w.reshape(geo.k_total, geo.cig, c_out), groups)  # (K, cig, G, cog)
        out = jnp.einsum("...kgi,kigo->...go", grouped(patches, groups), wg,
                         precision=precision, preferred_element_type=acc)
        return out.reshape(*out.shape[:-2], c_out)

    return map_blocks(run, block, x)


def forward_offsets(x, w, geo, *, block, precision, platforms, conv=None):
    """One matmul per offset, unrolled, the products added."""
    acc = acc_dtype(x.dtype)
    wk = w.reshape(geo.k_total, geo.cig, geo.c_out)
    xp = win.pad_spatial(x, geo.pads)
    return add_all(contract(sl, wk[i], geo.groups, acc, precision)
                    for i, sl in enumerate(slices(xp, geo)))


def forward_scan(x, w, geo, *, block, precision, platforms, conv=None):
    """One matmul per offset as a ``lax.scan`` adding into one accumulator: one
    slice live at a time, for layers whose patch matrix does not fit."""
    acc = acc_dtype(x.dtype)
    wk = w.reshape(geo.k_total, geo.cig, geo.c_out)
    xp = win.pad_spatial(x, geo.pads)
    starts = jnp.asarray(win.offset_starts(geo.window, geo.dilation))

    def body(total, item):
        start, w_i = item
        sl = win.offset_slice(xp, start, geo.out_shape, geo.stride)
        return total + contract(sl, w_i, geo.groups, acc, precision), None

    init = jnp.zeros((x.shape[0], *geo.out_shape, geo.c_out), acc)
    return jax.lax.scan(body, init, (starts, wk))[0]


def forward_shift(x, w, geo, *, block, precision, platforms, conv=None):
    """Every offset's products in one matmul over the padded input, then each
    offset's plane shifted (strided-sliced) into place and added."""
    acc, groups = acc_dtype(x.dtype), geo.groups
    wk = w.reshape(geo.k_total, geo.cig, geo.c_out)
    xp = win.pad_spatial(x, geo.pads)
    if groups == 1:
        prods = jnp.einsum("...i,kio->...ko", xp, wk, precision=precision,
                           preferred_element_type=acc)
    else:
        prods = jnp.einsum("...gi,kigo->...kgo", grouped(xp, groups), grouped(wk, groups),
                           precision=precision, preferred_element_type=acc)
        prods = prods.reshape(*prods.shape[:-2], geo.c_out)
    return add_all(win.window_slice(prods[..., i, :], k, geo.out_shape, geo.stride,
                                     geo.dilation)
                    for i, k in enumerate(win.offsets(geo.window)))


def forward_depthwise(x, w, geo, *, block, precision, platforms, conv=None):
    """One input channel per group: a multiply-add per offset (nothing to contract)."""
    acc = acc_dtype(x.dtype)
    mult = geo.c_out // geo.groups
    wk = w.reshape(geo.k_total, geo.c_out)
    xp = win.pad_spatial(x, geo.pads)
    return add_all((jnp.repeat(sl, mult, axis=-1) if mult > 1 else sl).astype(acc)
                    * wk[i].astype(acc) for i, sl in enumerate(slices(xp, geo)))
