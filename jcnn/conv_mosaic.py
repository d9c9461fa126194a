"""Conv's forward windowed sum as one Mosaic GPU (Hopper) kernel: TMA loads and
``wgmma`` products on the unpadded image (an arrangement).

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§3, §6).  The sum of `jcnn.conv_pallas`, with the padding left implicit::

    Z[n, p, q, o] = Σ_i Σ_j  X[n, p + i·d_h − p_h, q + j·d_w − p_w, :] · W[i, j, :, o]

(``X`` read as zero outside the image) as an implicit matrix product.  One
program owns a box of ``rows × cols`` output positions × ``out`` output channels
of one image and walks the steps ``(chunk c, offset i, offset j)``.  Each step
copies, by TMA, the input box that offset ``(i, j)`` reads — the output box
shifted by ``(i·d_h − p_h, j·d_w − p_w)``, straight from the unpadded image:
TMA fills what lies outside it (the padding, channels past ``C_in``) with
zeros — and a ``(chunk × out)`` tile of the kernel into shared memory, then
issues one ``wgmma`` of the ``(rows·cols × chunk)`` box against it into an f32
accumulator held in registers.  ``num_stages`` steps' copies are in flight (a
ring of shared-memory slots, one barrier per slot and operand).  The
accumulator leaves once, through shared memory, by a TMA store that drops the
positions and channels past the output's end.  So the layer is one kernel:
no pad pass, no patch matrix, no per-offset product and no cut of the output.

Stride 1, one group, 2-D (1-D lifted), bf16/f16 operands (``wgmma``'s): the
3×3 layers of a ResNet; other geometries use `jcnn.conv_pallas`.
``interpret=True`` runs the kernel in Pallas' Mosaic GPU interpret mode where
jax has one (≥ 0.11; else NotImplementedError).  That interpreter neither
reshapes shared-memory refs nor zero-fills before a box's start, so there the
low padding is a ``jnp.pad``, the box is copied once more to a 2-D buffer and
``wgmma`` reads its left operand from shared memory instead of registers.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ._checks import acc_dtype
from ._pallas_base import TileSizes, as_2d, pow2_at_least, unravel

__all__ = ["forward_mosaic", "mosaic_tiles"]

_DTYPES = (jnp.bfloat16, jnp.float16)


def _plgpu():
    """``jax.experimental.pallas.mosaic_gpu`` (imported late: a jax without it can
    still import jcnn)."""
    from jax.experimental.pallas import mosaic_gpu

    return mosaic_gpu


def mosaic_tiles(out_h: int, out_w: int, c_in: int, c_out: int,
                 tile: TileSizes = TileSizes()) -> dict:
    """One program's tile: a box of ``rows × cols`` output positions (powers of two,
    ``cols ≥ 8``, ``rows·cols`` about ``tile.positions`` and a multiple of 64,
    ``wgmma``'s M per warpgroup), ``out`` output channels (a power of two from 16
    up to ``tile.out``), ``chunk`` contracted channels per product (a power of two
    from 16 up to ``tile.chunk``, at most 64: one 128-byte row of bf16) and
    ``stages`` shared-memory slots (``tile.num_stages``, at least 2).

    Examples:
      >>> from jcnn.conv_mosaic import mosaic_tiles
      >>> mosaic_tiles(56, 56, 64, 64)
      {'rows': 2, 'cols': 64, 'out': 64, 'chunk': 64, 'stages': 3}
      >>> mosaic_tiles(7, 7, 3, 10)
      {'rows': 8, 'cols': 8, 'out': 16, 'chunk': 16, 'stages': 3}
    """
    positions = max(64, pow2_at_least(tile.positions))
    cols = max(8, min(pow2_at_least(out_w), positions))
    rows = max(64 // cols, min(pow2_at_least(out_h), positions // cols))
    return {"rows": rows, "cols": cols,
            "out": max(16, min(tile.out, pow2_at_least(c_out))),
            "chunk": max(16, min(tile.chunk, 64, pow2_at_least(c_in))),
            "stages": max(2, tile.num_stages)}


def _digits(index, sizes):
    """``unravel`` with a plain 0 for a radix of 1 (Mosaic lowers no splatted zeros)."""
    kept = [k for k, size in enumerate(sizes) if k == 0 or size != 1]
    digits = dict(zip(kept, unravel(index, tuple(sizes[k] for k in kept))))
    return tuple(digits.get(k, 0) for k in range(len(sizes)))


def _smem(shape, dtype):
    """A shared-memory buffer whose minor dim is swizzled as ``wgmma`` and TMA want."""
    plgpu = _plgpu()
    bits = shape[-1] * jnp.dtype(dtype).itemsize * 8
    swizzle = plgpu.find_swizzle(bits)
    elems = swizzle // jnp.dtype(dtype).itemsize
    return plgpu.SMEM(shape, dtype, transforms=(plgpu.TilingTransform((8, elems)),
                                                plgpu.SwizzleTransform(swizzle)))


def _kernel(x_gmem, w_gmem, o_gmem, x_smem, w_smem, o_smem, x_bar, w_bar, a_smem=None, *,
            window, pads, dilation, t, grid_w, steps, interpret):
    """One program: output rows ``[h0, h0 + rows)`` × columns ``[w0, w0 + cols)`` ×
    channels ``[o0, o0 + out)`` of image ``b``, walking ``steps`` (chunk, offset) pairs
    through ``stages`` slots."""
    plgpu = _plgpu()
    (kh, kw), (dh, dw), (ph, pw) = window, dilation, pads
    rows, cols, out, chunk, stages = (t[k] for k in ("rows", "cols", "out", "chunk", "stages"))
    b, hw, oi = (jax.lax.axis_index(a) for a in ("b", "hw", "o"))
    hi, wi = _digits(hw, (None, grid_w))
    h0, w0, o0 = hi * rows, wi * cols, pl.multiple_of(oi * out, out)
    zeros = plgpu.OOBFillMode.ZEROS  # the padding, and channels past C_in

    def fetch(k, slot):
        c, i, j = _digits(k, (None, kh, kw))
        c = pl.multiple_of(c * chunk, chunk)
        plgpu.copy_gmem_to_smem(
            x_gmem.at[b, pl.ds(h0 + i * dh - ph, rows), pl.ds(w0 + j * dw - pw, cols),
                      pl.ds(c, chunk)],
            x_smem.at[slot], x_bar.at[slot], oob_mode=zeros)
        plgpu.copy_gmem_to_smem(w_gmem.at[i, j, pl.ds(c, chunk), pl.ds(o0, out)],
                                w_smem.at[slot], w_bar.at[slot], oob_mode=zeros)

    for s in range(min(stages, steps)):  # fill the ring
        fetch(jnp.int32(s), s)

    def accumulate(acc_ref):
        def step(k, carry):
            slot = jax.lax.rem(k, jnp.int32(stages))
            plgpu.barrier_wait(x_bar.at[slot])
            plgpu.barrier_wait(w_bar.at[slot])
            if interpret:  # the interpreter reshapes no refs and reads A from SMEM only
                a_smem[...] = x_smem[slot].reshape(rows * cols, chunk)
                xs = a_smem
            else:
                xs = plgpu.load(x_smem.at[slot].reshape(rows * cols, chunk),
                                layout=plgpu.Layout.WGMMA, optimized=False)
            plgpu.wgmma(acc_ref, xs, w_smem.at[slot])
            plgpu.wgmma_wait(1)  # the product of step k - 1 is done: refill its slot
            nxt = k - 1 + stages

            @pl.when(jnp.logical_and(k >= 1, nxt < steps))
            def _():
                fetch(nxt, jax.lax.rem(nxt, jnp.int32(stages)))

            return carry

        jax.lax.fori_loop(jnp.int32(0), jnp.int32(steps), step, None)
        plgpu.wgmma_wait(0)
        return acc_ref[...]

    y = pl.run_scoped(accumulate, plgpu.ACC((rows * cols, out), jnp.float32))
    if interpret:
        o_smem[...] = y.reshape(rows, cols, out)
    else:
        o_smem.reshape(rows * cols, out)[...] = y
    plgpu.commit_smem()  # TMA drops the rows, columns and channels past the output's end
    plgpu.copy_smem_to_gmem(
        o_smem, o_gmem.at[b, pl.ds(h0, rows), pl.ds(w0, cols), pl.ds(o0, out)])
    plgpu.wait_smem_to_gmem(0)


def _interpret_params():
    """Pallas' GPU interpret mode, or NotImplementedError where jax has none."""
    try:
        return _plgpu().InterpretGPUParams()
    except (ImportError, AttributeError) as e:
        raise NotImplementedError(
            f"forward_mosaic: interpret=True needs Pallas' Mosaic GPU interpret mode "
            f"(jax.experimental.pallas.mosaic_gpu.InterpretGPUParams), absent from jax "
            f"{jax.__version__} ({e}); compile it for a GPU, or use jcnn.conv_pallas") from None


def _conv2d(x, w, geo, interpret, tile):
    """``x`` unpadded ``(N, H, W, C)``: TMA reads each offset's shifted box of it and
    fills what lies outside (the padding) with zeros; the output is written in place."""
    plgpu = _plgpu()
    n, _, _, c_in = x.shape
    kh, kw, _, c_out = w.shape
    out_h, out_w = geo.out_shape
    t = mosaic_tiles(out_h, out_w, c_in, c_out, tile)
    gh, gw, go = pl.cdiv(out_h, t["rows"]), pl.cdiv(out_w, t["cols"]), pl.cdiv(c_out, t["out"])
    c8, o8 = pl.cdiv(c_in, 8) * 8, pl.cdiv(c_out, 8) * 8  # TMA: rows of whole 16 bytes
    if c8 != c_in:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, c8 - c_in)))
    w = jnp.pad(w, ((0, 0), (0, 0), (0, c8 - c_in), (0, o8 - c_out)))
    pads = tuple(lo for lo, _ in geo.pads)
    if interpret:  # the interpreter's TMA zero-fills past the end only: pad the low side
        x = jnp.pad(x, ((0, 0), *((lo, 0) for lo in pads), (0, 0)))
        pads = (0, 0)
    acc, stages = acc_dtype(x.dtype), t["stages"]
    kernel = functools.partial(
        _kernel, window=(kh, kw), pads=pads, dilation=geo.dilation,
        t=t, grid_w=gw, steps=kh * kw * pl.cdiv(c8, t["chunk"]), interpret=interpret)
    box = (t["rows"], t["cols"])
    out = plgpu.kernel(
        kernel,
        out_type=jax.ShapeDtypeStruct((n, out_h, out_w, o8), acc),
        scratch_types=(plgpu.SMEM((stages, *box, t["chunk"]), x.dtype),
                       _smem((stages, t["chunk"], t["out"]), x.dtype),
                       plgpu.SMEM((*box, t["out"]), acc),
                       plgpu.Barrier(num_barriers=stages),
                       plgpu.Barrier(num_barriers=stages),
                       *[plgpu.SMEM((math.prod(box), t["chunk"]), x.dtype)] * interpret),
        grid=(n, gh * gw, go),
        grid_names=("b", "hw", "o"),
        interpret=_interpret_params() if interpret else None,
        kernel_name="jcnn_conv_forward_mosaic",
    )(x, w)
    return out if o8 == c_out else out[..., :c_out]


def forward_mosaic(x, w, geo, *, precision, interpret, tile=None):
    """The Mosaic GPU forward kernel (module docstring) on ``x`` ``(N, *in, C_in)``
    and ``w`` ``(*window, C_in, C_out)`` of the 1-D or 2-D geometry ``geo`` (stride
    1, one group, bf16/f16): ``(N, *out, C_out)`` in f32.  ``precision`` is
    accepted for the arrangements' common signature (``wgmma`` multiplies the
    operands exactly and accumulates in f32).  ``tile`` (a
    `jcnn._pallas_base.TileSizes`) defaults to ``TileSizes()``.

    Examples:
      >>> from jcnn.conv_geometry import Geometry
      >>> geo = Geometry((1, 4, 4, 1), (3, 3, 1, 1), (2, 2), ((1, 1), (1, 1)), (1, 1), 1)
      >>> forward_mosaic(None, None, geo, precision=None, interpret=True)
      Traceback (most recent call last):
      ...
      ValueError: forward_mosaic: stride 1 and one group only, got stride (2, 2), groups 1
    """
    del precision
    if geo.stride != (1,) * geo.nd or geo.groups != 1:
        raise ValueError(f"forward_mosaic: stride 1 and one group only, got stride "
                         f"{geo.stride}, groups {geo.groups}")
    if jnp.dtype(x.dtype) not in _DTYPES or x.dtype != w.dtype:
        raise TypeError(f"forward_mosaic: bfloat16 or float16 operands of one dtype only, got "
                        f"x.dtype={x.dtype}, w.dtype={w.dtype}")
    tile = TileSizes() if tile is None else tile
    x, w, geo, lifted = as_2d(x, w, geo)
    y = _conv2d(x, w, geo, interpret, tile)
    return y[:, 0] if lifted else y

