"""The arrangements of conv's windowed sums: forward, dX and dW, one function each.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§3, §6, §9).

Every forward arrangement computes the article's sum (§3, §6, §7)::

    Z[n, p, o] = Σ_k Σ_i  X_pad[n, p·s + k·d, i] · W[k, i, o]

every input-gradient arrangement its full convolution of the cotangent with
rot180(W) (§9), every weight-gradient arrangement the correlation of X with dZ.
They differ only in how the work is laid out for the compiler; none of them
chooses — :mod:`jcnn.conv_plan` does, per platform and shape.  All take the
same keywords: ``block`` (examples per batch block; arrangements that build a
patch or product matrix run block by block), ``precision`` (of every
contraction, as ``lax.dot``'s) and ``platforms`` (where the program will run:
what a nested convolution plans for).

Forward arrangements return the accumulation dtype (f32 for bf16/f16 inputs);
dX and dW return the inputs' dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import window as win
from ._checks import acc_dtype
from .conv_pallas import forward_pallas
from .conv_pallas_wgrad import weight_grad_pallas
from .conv_phases import input_grad_pallas, input_grad_phases
from .padding import conv_out_shape

__all__ = [
    "FORWARD",
    "INPUT_GRAD",
    "WEIGHT_GRAD",
    "Geometry",
    "forward_depthwise",
    "forward_gather",
    "forward_offsets",
    "forward_scan",
    "forward_shift",
    "input_grad_fullconv",
    "input_grad_scatter",
    "rot180",
    "weight_grad_depthwise",
    "weight_grad_gather",
    "weight_grad_offsets",
    "weight_grad_scan",
]


@dataclass(frozen=True)
class Geometry:
    """One convolution's static shape: what every arrangement and the plan read."""

    x_shape: tuple[int, ...]  # (N, *spatial, C_in)
    w_shape: tuple[int, ...]  # (*window, C_in // groups, C_out)
    stride: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int

    @property
    def window(self) -> tuple[int, ...]:
        return tuple(self.w_shape[:-2])

    @property
    def in_sizes(self) -> tuple[int, ...]:
        return tuple(self.x_shape[1:-1])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return conv_out_shape(self.in_sizes, self.window, self.stride, self.pads, self.dilation)

    @property
    def cig(self) -> int:  # input channels per group
        return self.w_shape[-2]

    @property
    def c_out(self) -> int:
        return self.w_shape[-1]

    @property
    def k_total(self) -> int:  # kernel offsets
        return math.prod(self.window)

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.cig == 1

    @property
    def patch_size(self) -> int:
        """Elements of one example's patch matrix (``Π out · K · C_in/G``)."""
        return math.prod(self.out_shape) * self.k_total * self.cig


# --------------------------------------------------------------------------- #
# Small pieces the arrangements share.
# --------------------------------------------------------------------------- #
def _grouped(a: jax.Array, groups: int) -> jax.Array:
    """``(..., C)`` → ``(..., G, C // G)``."""
    return a.reshape(*a.shape[:-1], groups, a.shape[-1] // groups)


def _blocks(block, arrays):
    """The arrays split along the batch into ``(n // block, block, ...)``."""
    n = arrays[0].shape[0]
    return tuple(a.reshape(n // block, block, *a.shape[1:]) for a in arrays)


def _map_blocks(fn, block, *arrays):
    """``fn`` on consecutive batch blocks of ``block`` examples (a ``lax.map``), the
    results concatenated — ``fn(*arrays)`` itself when one block is the batch."""
    n = arrays[0].shape[0]
    if not block or block >= n:
        return fn(*arrays)
    out = jax.lax.map(lambda c: fn(*c), _blocks(block, arrays))
    return out.reshape(n, *out.shape[2:])


def _sum_blocks(fn, block, *arrays):
    """``Σ fn(block)`` over consecutive batch blocks (a ``lax.scan`` with one
    accumulator) — ``fn(*arrays)`` itself when one block is the batch."""
    if not block or block >= arrays[0].shape[0]:
        return fn(*arrays)
    init = jax.eval_shape(fn, *(a[:block] for a in arrays))
    return jax.lax.scan(lambda tot, c: (tot + fn(*c), None),
                        jnp.zeros(init.shape, init.dtype), _blocks(block, arrays))[0]


def _contract(sl, w_i, groups, acc, precision):
    """``(N, *out, C_in) · (C_in/G, C_out)`` per group → ``(N, *out, C_out)``."""
    if groups == 1:
        return jnp.matmul(sl, w_i, precision=precision, preferred_element_type=acc)
    out = jnp.einsum("...gi,igo->...go", _grouped(sl, groups), _grouped(w_i, groups),
                     precision=precision, preferred_element_type=acc)
    return out.reshape(*out.shape[:-2], w_i.shape[-1])


def _slices(xp, geo):
    return [win.window_slice(xp, k, geo.out_shape, geo.stride, geo.dilation)
            for k in win.offsets(geo.window)]


def _add_all(terms):
    out = None
    for t in terms:
        out = t if out is None else out + t
    return out


def rot180(w: jax.Array, groups: int = 1) -> jax.Array:
    """The kernel rotated by 180° with input/output channels swapped per group.

    ``(*window, C_in/G, C_out)`` → ``(*window, C_out/G, C_in)``: the kernel that
    carries a cotangent back through the layer (article §9).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> w = jnp.arange(4.0).reshape(2, 2, 1, 1)
      >>> jcnn.rot180(w)[..., 0, 0].tolist()
      [[3.0, 2.0], [1.0, 0.0]]
    """
    nd = w.ndim - 2
    cig, c_out = w.shape[-2:]
    flipped = jnp.flip(w, axis=tuple(range(nd)))
    split = flipped.reshape(*w.shape[:-1], groups, c_out // groups)  # (*win, cig, G, cog)
    swapped = jnp.swapaxes(split, -3, -1)  # (*win, cog, G, cig)
    return swapped.reshape(*w.shape[:-2], c_out // groups, groups * cig)


# --------------------------------------------------------------------------- #
# Forward: Σ_k slice_k(X_pad) · W[k].
# --------------------------------------------------------------------------- #
def forward_gather(x, w, geo, *, block, precision, platforms):
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
        wg = _grouped(w.reshape(geo.k_total, geo.cig, c_out), groups)  # (K, cig, G, cog)
        out = jnp.einsum("...kgi,kigo->...go", _grouped(patches, groups), wg,
                         precision=precision, preferred_element_type=acc)
        return out.reshape(*out.shape[:-2], c_out)

    return _map_blocks(run, block, x)


def forward_offsets(x, w, geo, *, block, precision, platforms):
    """One matmul per offset, unrolled, the products added."""
    acc = acc_dtype(x.dtype)
    wk = w.reshape(geo.k_total, geo.cig, geo.c_out)
    xp = win.pad_spatial(x, geo.pads)
    return _add_all(_contract(sl, wk[i], geo.groups, acc, precision)
                    for i, sl in enumerate(_slices(xp, geo)))


def forward_scan(x, w, geo, *, block, precision, platforms):
    """One matmul per offset as a ``lax.scan`` adding into one accumulator: one
    slice live at a time, for layers whose patch matrix does not fit."""
    acc = acc_dtype(x.dtype)
    wk = w.reshape(geo.k_total, geo.cig, geo.c_out)
    xp = win.pad_spatial(x, geo.pads)
    starts = jnp.asarray(win.offset_starts(geo.window, geo.dilation))

    def body(total, item):
        start, w_i = item
        sl = win.offset_slice(xp, start, geo.out_shape, geo.stride)
        return total + _contract(sl, w_i, geo.groups, acc, precision), None

    init = jnp.zeros((x.shape[0], *geo.out_shape, geo.c_out), acc)
    return jax.lax.scan(body, init, (starts, wk))[0]


def forward_shift(x, w, geo, *, block, precision, platforms):
    """Every offset's products in one matmul over the padded input, then each
    offset's plane shifted (strided-sliced) into place and added."""
    acc, groups = acc_dtype(x.dtype), geo.groups
    wk = w.reshape(geo.k_total, geo.cig, geo.c_out)
    xp = win.pad_spatial(x, geo.pads)
    if groups == 1:
        prods = jnp.einsum("...i,kio->...ko", xp, wk, precision=precision,
                           preferred_element_type=acc)
    else:
        prods = jnp.einsum("...gi,kigo->...kgo", _grouped(xp, groups), _grouped(wk, groups),
                           precision=precision, preferred_element_type=acc)
        prods = prods.reshape(*prods.shape[:-2], geo.c_out)
    return _add_all(win.window_slice(prods[..., i, :], k, geo.out_shape, geo.stride,
                                     geo.dilation)
                    for i, k in enumerate(win.offsets(geo.window)))


def forward_depthwise(x, w, geo, *, block, precision, platforms):
    """One input channel per group: a multiply-add per offset (nothing to contract)."""
    acc = acc_dtype(x.dtype)
    mult = geo.c_out // geo.groups
    wk = w.reshape(geo.k_total, geo.c_out)
    xp = win.pad_spatial(x, geo.pads)
    return _add_all((jnp.repeat(sl, mult, axis=-1) if mult > 1 else sl).astype(acc)
                    * wk[i].astype(acc) for i, sl in enumerate(_slices(xp, geo)))


# --------------------------------------------------------------------------- #
# dX: the full convolution of the (stride-spread) cotangent with rot180(W).
# --------------------------------------------------------------------------- #
def input_grad_scatter(g, w, geo, *, block, precision, platforms):
    """Each cotangent value scatters ``W · dZ[p]`` back over the window it came
    from: one matmul ``dZ · W[k]ᵀ`` for all offsets, then every offset's plane put
    back where the forward's slice read it (:func:`jcnn.window.scatter_patches`:
    one dim at a time, strided dims split by phase — no product with an
    inserted zero), batch block by batch block."""
    acc, groups, cig, c_out = acc_dtype(g.dtype), geo.groups, geo.cig, geo.c_out
    wk = w.reshape(geo.k_total, cig, c_out)
    padded = [n + lo + hi for n, (lo, hi) in zip(geo.in_sizes, geo.pads)]

    def scatter(gc):
        if geo.depthwise:  # elementwise products, summed per group
            prods = gc[..., None, :].astype(acc) * wk[:, 0].astype(acc)  # (.., K, C_out)
            prods = _grouped(prods, groups).sum(-1)  # (B, *out, K, C_in)
        elif groups == 1:  # a plain 2-D GEMM (a size-1 group axis made XLA's dot 2× slower)
            prods = jnp.einsum("...o,kio->...ki", gc, wk, precision=precision,
                               preferred_element_type=acc)
        else:  # one matmul for all offsets: (B, *out, C_out) · (C_out, K·C_in)
            prods = jnp.einsum("...go,kigo->...kgi", _grouped(gc, groups), _grouped(wk, groups),
                               precision=precision, preferred_element_type=acc)
            prods = prods.reshape(*prods.shape[:-2], groups * cig)  # (B, *out, K, C_in)
        dxp = win.scatter_patches(prods, geo.window, padded, geo.stride, geo.dilation)
        return win.pad_spatial(dxp, [(-lo, -hi) for lo, hi in geo.pads]).astype(g.dtype)

    return _map_blocks(scatter, block, g)


def input_grad_fullconv(g, w, geo, *, block, precision, platforms):
    """The article's formula literally: spread ``dZ`` by the stride (``s − 1``
    zeros between values), pad it by ``f_eff − 1`` minus the forward's padding
    (the full convolution) and convolve with ``rot180(W)`` — by :func:`jcnn.conv`
    itself, planned for the same platforms.  High rows the forward never read
    (``(n + 2p − f) mod s ≠ 0``) get zero."""
    from .convolution import conv_planned  # conv is built on these arrangements

    config = []
    for n, f, s, (lo, hi), d in zip(geo.in_sizes, geo.window, geo.stride, geo.pads,
                                    geo.dilation):
        f_eff = (f - 1) * d + 1
        unread = (n + lo + hi - f_eff) % s  # high rows the forward never reached
        config.append((f_eff - 1 - lo, f_eff - 1 - hi + unread, s - 1))
    gp = jax.lax.pad(g, jnp.zeros((), g.dtype), [(0, 0, 0), *config, (0, 0, 0)])
    nd = len(geo.window)
    return conv_planned(gp, rot180(w, geo.groups), None, (1,) * nd, ((0, 0),) * nd,
                        geo.dilation, geo.groups, precision, platforms)


# --------------------------------------------------------------------------- #
# dW[k] = Σ_{n,p} X_pad[n, p·s + k·d]ᵀ · dZ[n, p]: the correlation of X with dZ.
# --------------------------------------------------------------------------- #
def _correlate(sl, gc, geo, acc, precision):
    """``Σ_m slice[m]ᵀ dZ[m]`` per group → ``(cig, G, cog)``."""
    groups, cig, c_out = geo.groups, geo.cig, geo.c_out
    if geo.depthwise:  # elementwise products summed over positions (not flattened: 4× faster)
        positions = tuple(range(sl.ndim - 1))
        if c_out == groups:
            return (sl.astype(acc) * gc.astype(acc)).sum(positions).reshape(1, groups, 1)
        prod = sl[..., None].astype(acc) * _grouped(gc, groups).astype(acc)
        return prod.sum(positions)[None]
    sl2 = _grouped(sl.reshape(-1, groups * cig), groups)  # (M, G, cig)
    g2 = _grouped(gc.reshape(-1, c_out), groups)  # (M, G, cog)
    if groups == 1:  # a plain 2-D GEMM (no batch dimension of size 1)
        return jnp.matmul(sl2[:, 0].T, g2[:, 0], precision=precision,
                          preferred_element_type=acc)[:, None]
    return jnp.einsum("mgi,mgo->igo", sl2, g2, precision=precision, preferred_element_type=acc)


def weight_grad_gather(x, g, geo, *, block, precision, platforms):
    """One GEMM ``dZᵀ · patches`` (``(C_out, M) · (M, K·C_in)``) per batch block,
    the blocks' sums added, transposed once."""
    acc, groups, cig, c_out, k_total = (acc_dtype(x.dtype), geo.groups, geo.cig, geo.c_out,
                                        geo.k_total)

    def gathered(xc, gc):
        patches = win.patches(win.pad_spatial(xc, geo.pads), geo.window, geo.out_shape,
                              geo.stride, geo.dilation)
        gc2 = _grouped(gc.reshape(-1, c_out), groups)
        if groups == 1:  # dWᵀ = dZᵀ · patches (1.4× faster than patchesᵀ · dZ on a CPU)
            flat = patches.reshape(-1, k_total * cig)
            if flat.dtype != acc and "cpu" in platforms:  # XLA CPU has no bf16·bf16→f32
                flat, gc2 = flat.astype(acc), gc2.astype(acc)  # dot this way round
            return jnp.matmul(gc2[:, 0].T, flat, precision=precision, preferred_element_type=acc)
        patches = _grouped(patches.reshape(-1, k_total, groups * cig), groups)
        return jnp.einsum("mkgi,mgo->kigo", patches, gc2, precision=precision,
                          preferred_element_type=acc)

    dw = _sum_blocks(gathered, block, x, g)
    if groups == 1:
        dw = dw.T  # summed as dWᵀ, transposed once
    return dw.reshape(geo.w_shape).astype(x.dtype)


def weight_grad_offsets(x, g, geo, *, block, precision, platforms):
    """One correlation per offset, unrolled, batch block by batch block."""
    acc = acc_dtype(x.dtype)

    def per_offset(xc, gc):
        xpc = win.pad_spatial(xc, geo.pads)
        return jnp.stack([_correlate(sl, gc, geo, acc, precision) for sl in _slices(xpc, geo)])

    return _sum_blocks(per_offset, block, x, g).reshape(geo.w_shape).astype(x.dtype)


def weight_grad_scan(x, g, geo, *, block, precision, platforms):
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


def weight_grad_depthwise(x, g, geo, *, block, precision, platforms):
    """One input channel per group: every offset's products ``slice_k · dZ`` summed
    over positions in one variadic reduction (``lax.reduce`` with one operand per
    offset), batch block by batch block — one pass over ``dZ`` and the input for
    all ``K`` offsets, where ``"offsets"`` makes one pass per offset (1.6× faster
    on the CPU suite's depthwise layer)."""
    acc, groups, mult = acc_dtype(x.dtype), geo.groups, geo.c_out // geo.groups

    def per_block(xc, gc):
        xp = win.pad_spatial(xc, geo.pads)
        gg = _grouped(gc, groups).astype(acc) if mult > 1 else gc.astype(acc)
        prods = [(sl[..., None] if mult > 1 else sl).astype(acc) * gg
                 for sl in _slices(xp, geo)]
        sums = jax.lax.reduce(prods, [jnp.zeros((), acc)] * len(prods),
                              lambda a, b: [u + v for u, v in zip(a, b)],
                              tuple(range(xc.ndim - 1)))
        return jnp.stack(sums)  # (K, C) or (K, C, mult)

    return _sum_blocks(per_block, block, x, g).reshape(geo.w_shape).astype(x.dtype)


# The registry: name → arrangement.  The plan picks names; tests run them all.
FORWARD = {
    "gather": forward_gather,
    "offsets": forward_offsets,
    "scan": forward_scan,
    "shift": forward_shift,
    "depthwise": forward_depthwise,
    "pallas": forward_pallas,  # a fused Pallas kernel (jcnn/conv_pallas.py); CUDA, where measured
}
INPUT_GRAD = {
    "scatter": input_grad_scatter,
    "fullconv": input_grad_fullconv,
    "phases": input_grad_phases,  # by stride phase, no inserted zeros (jcnn/conv_phases.py)
    "pallas": input_grad_pallas,  # the phases on the Pallas kernel; CUDA, where measured
}
WEIGHT_GRAD = {
    "gather": weight_grad_gather,
    "offsets": weight_grad_offsets,
    "scan": weight_grad_scan,
    "depthwise": weight_grad_depthwise,
    "pallas": weight_grad_pallas,  # fused Pallas kernel (conv_pallas_wgrad.py); only when forced
}
